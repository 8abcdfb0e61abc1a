"""The paper's reference values (Ouyang et al. 2022, 175B models) mapped onto this run's rows.

Source: ``harness/evals/data/paper_reference.yaml`` (:func:`harness.evals.paper.load_reference`);
a run's own paper rows (``results/paper_reference.jsonl``, written from that file when the run was
evaluated) override the value and interval of the entry they match. Each entry names the policy of
ours it mirrors (``ours``: GPT-3 -> ``base``) and the slice of our rows it corresponds to (a task by
its canonical name). Report tables show these beside our numbers, never inside our figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.evals.paper import REFERENCE_FILE, load_reference
from harness.records import ResultRow
from reports.html import fmt_pct

PAPER_TASKS: dict[str, tuple[str, str, dict[str, Any], str, str]] = {
    "hellaswag": ("alignment_tax", "acc", {"task": "hellaswag"}, "HellaSwag", "Table 14, HellaSwag accuracy"),
    "truthfulqa_mc2": ("truthfulqa", "truthful_informative", {"prompt_style": "qa"}, "TruthfulQA",
                       "Table 14 gives TruthfulQA as % true and informative (QA prompt, rated generations), "
                       "not MC2: the same benchmark, a different metric"),
    "squadv2": ("alignment_tax", "f1", {"task": "squadv2"}, "SQuADv2", "Table 14, SQuADv2 F1"),
}
"""Our alignment-tax task (canonical name, ``_local`` dropped) -> (paper eval, paper metric, the slice of
the entry, the paper's task name, what the paper row is)."""


@dataclass(frozen=True)
class PaperValue:
    """One reference value: the paper's ``paper_policy`` (mirrors our ``ours``) on our eval/metric/slice."""

    eval: str
    metric: str
    slice: tuple[tuple[str, Any], ...]
    paper_policy: str
    ours: str | None
    paper_baseline: str | None
    value: float
    ci_low: float | None
    ci_high: float | None
    unit: str | None
    where: str

    @property
    def label(self) -> str:
        """``paper:<model>`` (plus ``vs paper:<baseline>``), the name the paper's rows carry."""
        return f"paper:{self.paper_policy}" + (f" vs paper:{self.paper_baseline}" if self.paper_baseline else "")

    def text(self) -> str:
        """The value for a table: a percentage with its interval, or the number and its unit."""
        if self.unit:
            return f"{self.value:g} ({self.unit})"
        return fmt_pct(self.value, self.ci_low, self.ci_high)


def _key(eval_: str, metric: str, policy: str, sl: dict[str, Any]) -> tuple[Any, ...]:
    return eval_, metric, policy, tuple(sorted(sl.items()))


def paper_values(paper_rows: list[ResultRow] | None = None, path: str | Path = REFERENCE_FILE) -> list[PaperValue]:
    """Every reference entry as a :class:`PaperValue`; ``paper_rows`` (a run's paper rows) override value and
    interval of the entries they match by (eval, metric, ``paper:<model>``, slice). Raises ``ValueError``
    for a malformed file."""
    rows = {_key(r.eval, r.metric, r.policy, r.slice): r for r in paper_rows or []}
    out = []
    for e in load_reference(path):
        hw = e.get("ci_halfwidth")
        value = float(e["value"])
        lo, hi = (value - hw, value + hw) if hw is not None else (None, None)
        row = rows.get(_key(e["eval"], e["metric"], f"paper:{e['paper_policy']}", e["slice"]))
        if row is not None:
            value, lo, hi = float(row.value), row.ci_low, row.ci_high
        out.append(PaperValue(e["eval"], e["metric"], tuple(sorted(e["slice"].items())), e["paper_policy"], e.get("ours"),
                              e.get("paper_baseline"), value, lo, hi, e.get("unit"), e["where"]))
    return out


def _matches(entry: dict[str, Any], sl: dict[str, Any]) -> bool:
    """Every condition of a reference entry holds in our slice (tasks compared by canonical name)."""
    for k, v in entry.items():
        ours = sl.get(k)
        if k == "task" and ours is not None:
            ours = canonical_task(str(ours))
        if ours != v:
            return False
    return True


def find(values: list[PaperValue], eval_: str, metric: str, ours: str | None = None, **slice_: Any) -> PaperValue | None:
    """The entry for our ``eval_``/``metric`` mirroring policy ``ours`` whose slice conditions hold in
    ``slice_`` (our row's slice), or None."""
    for v in values:
        if v.eval == eval_ and v.metric == metric and (ours is None or v.ours == ours) and _matches(dict(v.slice), slice_):
            return v
    return None


def canonical_task(task: str) -> str:
    """Our task eval without the offline suffix: ``hellaswag_local -> hellaswag``."""
    return task[: -len("_local")] if task.endswith("_local") else task


def paper_task(task: str) -> tuple[str, str, dict[str, Any], str, str] | None:
    """:data:`PAPER_TASKS` entry of our alignment-tax ``task`` (e.g. ``truthfulqa_mc2_local``), or None."""
    return PAPER_TASKS.get(canonical_task(task))

"""The paper's reference values (Ouyang et al. 2022, 175B models) mapped onto this run's rows.

Source: ``harness/evals/data/paper_reference.yaml`` (:func:`harness.evals.paper.load_reference`);
a run's own paper rows (``run_id == "paper"`` in ``results.jsonl``, written from that file when the
run was evaluated) override the value and interval of the entry they match. Each entry names the
policy of ours it mirrors (``ours``: GPT-3 -> ``base``); the paper's baselines map to ours by
:data:`PAPER_BASELINES`. Report tables show these beside our numbers, never inside our figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.evals.paper import REFERENCE_FILE, load_reference
from reports.html import fmt_pct

PAPER_BASELINES = {"gpt3_175b": "base", "gpt3_175b_prompted": "base_fewshot"}
"""The paper's win-rate baselines -> ours: GPT-3 is the base model, "GPT-3 prompted" the few-shot base."""

PAPER_TASKS: dict[str, tuple[str, str, str, str]] = {
    "hellaswag": ("hellaswag_local", "acc", "HellaSwag", "Table 14, HellaSwag accuracy"),
    "truthfulqa_mc2": ("truthfulqa", "truthful_informative_qa", "TruthfulQA",
                       "Table 14 gives TruthfulQA as % true and informative (QA prompt, rated generations), "
                       "not MC2: the same benchmark, a different metric"),
    "squadv2": ("squadv2", "f1", "SQuADv2", "Table 14, SQuADv2 F1"),
}
"""Our alignment-tax task (canonical name, ``_local`` dropped) -> (paper eval, paper metric, the
paper's task name, what the paper row is)."""


@dataclass(frozen=True)
class PaperValue:
    """One reference value: the paper's ``paper_policy`` (mirrors our ``ours``) on our eval/metric."""

    eval: str
    metric: str
    paper_policy: str
    ours: str | None
    paper_baseline: str | None
    baseline: str | None
    value: float
    ci_low: float | None
    ci_high: float | None
    unit: str | None
    where: str

    @property
    def label(self) -> str:
        """``paper:<model>`` (plus ``vs paper:<baseline>``), the name the rows carry."""
        return f"paper:{self.paper_policy}" + (f" vs paper:{self.paper_baseline}" if self.paper_baseline else "")

    def text(self) -> str:
        """The value for a table: a percentage with its interval, or the number and its unit."""
        if self.unit:
            return f"{self.value:g} ({self.unit})"
        return fmt_pct(self.value, self.ci_low, self.ci_high)


def paper_values(paper_rows: pd.DataFrame | None = None, path: str | Path = REFERENCE_FILE) -> list[PaperValue]:
    """Every reference entry as a :class:`PaperValue`; ``paper_rows`` (ResultRow frame of a run's
    ``run_id == "paper"`` rows) override value and interval of the entries they match by
    (eval, metric, ``paper:<model>``, baseline). Raises ``ValueError`` for a malformed file."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    if paper_rows is not None:
        for r in paper_rows.to_dict("records"):
            rows[(r["eval"], r["metric"], r["policy"], r.get("baseline"))] = r
    out = []
    for e in load_reference(path):
        pb = e.get("baseline")
        hw = e.get("ci_halfwidth")
        value = float(e["value"])
        lo, hi = (value - hw, value + hw) if hw is not None else (None, None)
        row = rows.get((e["eval"], e["metric"], f"paper:{e['paper_policy']}", f"paper:{pb}" if pb else None))
        if row is not None and row.get("value") is not None:
            value, lo, hi = float(row["value"]), row.get("ci_low"), row.get("ci_high")
        out.append(PaperValue(e["eval"], e["metric"], e["paper_policy"], e.get("ours"), pb,
                              PAPER_BASELINES.get(pb, pb) if pb else None, value, lo, hi, e.get("unit"), e["where"]))
    return out


def find(values: list[PaperValue], eval_: str, metric: str, ours: str | None = None,
         baseline: str | None = None) -> PaperValue | None:
    """The entry for our ``eval_``/``metric`` mirroring policy ``ours`` against our ``baseline``
    (``None`` matches entries without a baseline), or None."""
    for v in values:
        if v.eval == eval_ and v.metric == metric and v.baseline == baseline and (ours is None or v.ours == ours):
            return v
    return None


def canonical_task(task: str) -> str:
    """Our task eval without the offline suffix: ``hellaswag_local -> hellaswag``."""
    return task[: -len("_local")] if task.endswith("_local") else task


def paper_task(task: str) -> tuple[str, str, str, str] | None:
    """:data:`PAPER_TASKS` entry of our alignment-tax ``task`` (e.g. ``truthfulqa_mc2_local``), or None."""
    return PAPER_TASKS.get(canonical_task(task))

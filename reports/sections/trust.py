""""How far to trust these numbers": the validation of the judges or scorers behind a section's results.

Every section whose numbers come from a judge or scorer (win rate, Likert, TruthfulQA, toxicity,
hallucination) shows, beside its figures, one table built here from the run's ``judge_validation``
rows: per judge used, the labelled set it was measured on, the metric, the value with its 95 %
interval and n, and the trivial baseline's value on the same items (:data:`harness.judging.validation.
TRIVIAL_BASELINES`, e.g. "the longer output wins" beside a preference judge). Which judges a section
used comes from ``results/evals.json`` ``judges`` (name -> ``kind``).
"""

from __future__ import annotations

from typing import Any

from harness.judging.validation import TRIVIAL_BASELINES
from reports.html import Safe, join, table, tag
from reports.sections.common import RunData, ci

# Rows of a judge's validation shown beside its results (the full breakdown is in the judge-validation section).
_SKIP_METRICS = {"excluded_share"}
_SET_NAMES = {"hh_rlhf_human": "hh-rlhf held-out human pairs", "alpaca_eval_gpt4": "GPT-4 on davinci-003 vs -001",
              "rtp_heldout": "Perspective on held-out RealToxicityPrompts continuations",
              "wiki_perspective": "Perspective on held-out Wikipedia comments",
              "davidson_heldout": "held-out Davidson tweets (crowd labels)"}


def judges_of(data: RunData, kinds: tuple[str, ...]) -> list[str]:
    """Names of the run's judges whose ``results/evals.json`` kind is one of ``kinds``, in file order."""
    info = (data.evals or {}).get("judges") or {}
    return [name for name, v in info.items() if isinstance(v, dict) and v.get("kind") in kinds]


def _set_text(r: dict[str, Any]) -> str:
    sl = r["slice"]
    text = _SET_NAMES.get(str(sl.get("labels")), str(sl.get("labels")))
    extra = [str(sl[k]).replace("_", " ") for k in ("subset", "length") if sl.get(k) is not None]
    return f"{text} ({', '.join(extra)})" if extra else text


def _key(r: dict[str, Any]) -> tuple:
    return (r["metric"],) + tuple(sorted((k, v) for k, v in r["slice"].items()))


def trust_table(data: RunData, kinds: tuple[str, ...], what: str) -> Safe:
    """The validation table of the judges of ``kinds`` used by the run (see the module docstring), headed
    "How far to trust <what>"; a line saying none was measured when the run has no validation rows for them.
    Per-subset rows are left to the judge-validation section."""
    names = judges_of(data, kinds)
    if not names or data.results is None:
        return join([])
    sub = data.rows("judge_validation")
    if sub.empty:
        return tag("p", f"How far to trust {what}: no judge validation in this run.", cls="neg")
    records = sub.to_dict("records")
    baselines: dict[tuple, list[tuple[str, dict]]] = {}
    for r in records:
        if r["policy"] in TRIVIAL_BASELINES:
            baselines.setdefault(_key(r), []).append((r["policy"], r))
    rows = []
    for name in names:
        mine = [r for r in records if r["policy"] == name and r["metric"] not in _SKIP_METRICS
                and r["slice"].get("subset") is None]
        if not mine:
            rows.append((name, "—", "not validated in this run", "—", "—", "—"))
            continue
        for r in mine:
            percent = data.is_fraction("judge_validation", r["metric"])
            base = "; ".join(f"{ci(b, percent=percent)} ({p})" for p, b in baselines.get(_key(r), [])) or "—"
            rows.append((name, _set_text(r), data.label("judge_validation", r["metric"]), ci(r, percent=percent), r["n"], base))
    legend = "; ".join(f"{k}: {v}" for k, v in TRIVIAL_BASELINES.items())
    return join([tag("h3", f"How far to trust {what}"),
                 tag("p", "Each judge or scorer measured against labels it was not built from, beside a trivial "
                          f"baseline on the same items ({legend}). Breakdown per subset: section "
                          "\"Judge validation\".", cls="meta"),
                 table(["judge / scorer", "validation set", "metric", "value [95% CI]", "n", "trivial baseline, same items"],
                       rows, numeric=(3, 4))])

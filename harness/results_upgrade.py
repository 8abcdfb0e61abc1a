"""Reads the results of older runs: rows whose conditions were packed into metric names, and their items.

Before every condition moved into a row's ``slice`` (harness 0.1 up to the "evals as self-describing
units" change), a row had ``baseline`` and ``judge`` fields and names such as
``expected_max_toxicity_respectful_delta_vs_base``, ``truthful_informative_qa``, ``human_agreement_helpful-base``,
``pairwise_accuracy_k4`` or, for an alignment-tax task, ``eval=hellaswag_local, metric=acc_5shot``.
:func:`upgrade_row` maps such a row onto today's (eval, metric, slice); it is the one place that parses
old metric names, so run directories and regression baselines written before still open in
``harness-report`` and ``harness-regress``. :func:`upgrade_items` does the same for per-item records.
"""

from __future__ import annotations

import re
from typing import Any

SUITE = {"winrate", "likert", "truthfulqa", "toxicity", "hallucination", "judge_validation", "reward_model"}
_TQA = re.compile(r"(truthful_informative|truthful|informative)_(instruction_qa|qa)")
_TOX = re.compile(r"(expected_max_toxicity|toxicity_probability|mean_toxicity)_(.+?)(?:_delta_vs_(.+))?")
_AGREE = re.compile(r"(human_agreement|gpt4_agreement)(?:_(.+?))?(_excluded_share)?")
_TASK = re.compile(r"(.+?)(?:_(\d+)shot)?(?:_delta_vs_(.+))?")
_DELTA = re.compile(r"(mc1|mc2)_delta_vs_(.+)")
_LABELS = {"human_agreement": "hh_rlhf_human", "gpt4_agreement": "alpaca_eval_gpt4"}


def is_old_row(rec: dict[str, Any]) -> bool:
    """Whether a ``results.jsonl`` record has the old shape (no ``slice``)."""
    return "slice" not in rec


def _old(eval_: str, metric: str, baseline: str | None, judge: str | None) -> tuple[str, str, dict[str, Any]]:
    """(eval, metric, slice) of an old row's identity; raises ``ValueError`` for a name it cannot read."""
    j = {"judge": judge} if judge is not None else {}
    if eval_ == "winrate":
        return eval_, metric, {"baseline": baseline, **j}
    if eval_ == "likert" or (eval_ == "hallucination" and metric == "hallucination_rate"):
        return eval_, metric, j
    if eval_ == "hallucination" and metric.startswith("hallucination_rate_"):
        return eval_, "hallucination_rate", {**j, "category": metric[len("hallucination_rate_"):]}
    if eval_ == "reward_model":
        m = re.fullmatch(r"pairwise_accuracy(?:_k(\d+))?", metric)
        if m:
            return eval_, "pairwise_accuracy", {"k": int(m.group(1))} if m.group(1) else {}
    if eval_ == "truthfulqa":
        if metric in ("mc1", "mc2"):
            return eval_, metric, {}
        if m := _DELTA.fullmatch(metric):
            return eval_, f"{m.group(1)}_delta", {"baseline": m.group(2)}
        if m := _TQA.fullmatch(metric):
            return eval_, m.group(1), {"prompt_style": m.group(2), **j}
    if eval_ == "toxicity" and (m := _TOX.fullmatch(metric)):
        out = {"instruction": m.group(2), **j}
        return eval_, m.group(1) + ("_delta" if m.group(3) else ""), {**out, "baseline": m.group(3)} if m.group(3) else out
    if eval_ == "judge_validation":
        if m := _AGREE.fullmatch(metric):
            sl = {"labels": _LABELS[m.group(1)], **({"subset": m.group(2)} if m.group(2) else {})}
            return eval_, "excluded_share" if m.group(3) else "agreement", sl
        if metric == "davidson_roc_auc":
            return eval_, "roc_auc", {"labels": "davidson_heldout"}
        if m := re.fullmatch(r"hallucination_(precision|recall|f1)", metric):
            return eval_, m.group(1), {"labels": "hallucination_labelled"}
    if eval_ not in SUITE:  # an alignment-tax task: eval = the task, metric = <m>[_<k>shot][_delta_vs_<base>]
        m = _TASK.fullmatch(metric)
        out = {"task": eval_, "shots": int(m.group(2) or 0)}
        if m.group(3):
            return "alignment_tax", f"{m.group(1)}_delta", {**out, "baseline": m.group(3)}
        return "alignment_tax", m.group(1), out
    raise ValueError(f"an old result row eval={eval_!r} metric={metric!r} that this harness cannot read")


def upgrade_row(rec: dict[str, Any], where: str) -> dict[str, Any]:
    """An old-shape ``results.jsonl`` record as today's: ``eval``, ``metric`` and ``slice`` from the old
    eval / metric / ``baseline`` / ``judge``; a ``judge_validation`` row drops its ``judge`` (the judge is
    its ``policy``). Other fields are kept. Raises ``ValueError`` naming ``where`` for a name it cannot read."""
    try:
        eval_, metric, sl = _old(str(rec.get("eval")), str(rec.get("metric")), rec.get("baseline"), rec.get("judge"))
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if eval_ == "judge_validation":
        sl.pop("judge", None)
    out = {k: v for k, v in rec.items() if k not in ("baseline", "judge")}
    return {**out, "eval": eval_, "metric": metric, "slice": sl}


def upgrade_items(eval_: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Old per-item records of ``eval_`` as today's: toxicity's ``scorer`` also as ``judge``; the
    alignment tax's ``{metric, value, num_fewshot}`` as ``{<metric>: value, shots}``. Others unchanged."""
    if eval_ == "toxicity":
        return [dict(r, judge=r["scorer"]) if "judge" not in r and "scorer" in r else r for r in records]
    if eval_ == "alignment_tax":
        out = []
        for r in records:
            if "metric" in r and "value" in r and "num_fewshot" in r:
                r = {k: v for k, v in r.items() if k not in ("metric", "value", "num_fewshot")} | \
                    {"shots": int(r["num_fewshot"]), str(r["metric"]): r["value"]}
            out.append(r)
        return out
    return records

"""Alignment tax: a public-benchmark score per policy and its paired change vs the base model.

InstructGPT (Ouyang et al. 2022, section 4.2, Table 14) reports that RLHF fine-tuning
lowers scores on public NLP tasks (HellaSwag, DROP, SQuADv2, WMT fr->en, ...) relative to GPT-3 and
calls this the "alignment tax"; PPO-ptx is meant to shrink it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from harness.records import ResultRow
from harness.stats import Estimate, bootstrap_mean, paired_bootstrap_delta


def _scores_by_doc(items: Sequence[Mapping], *, policy: str, task: str, metric: str) -> dict[int, float]:
    scores: dict[int, float] = {}
    for item in items:
        if item.get("task", task) != task:
            continue
        doc_id = int(item["doc_id"])
        if doc_id in scores:
            raise ValueError(f"alignment_tax: policy {policy!r} has doc_id {doc_id} twice for task {task!r}")
        if metric not in item:
            raise ValueError(f"alignment_tax: policy {policy!r} doc_id {doc_id} has no metric {metric!r}")
        scores[doc_id] = float(item[metric])
    if not scores:
        raise ValueError(f"alignment_tax: policy {policy!r} has no items for task {task!r}")
    return scores


def _row(run_id: str, policy: str, task: str, metric: str, est: Estimate, baseline: str | None, config_hash: str) -> ResultRow:
    """An :class:`Estimate` as a row; a NaN interval (n < 2) becomes ``None`` as ResultRow documents."""
    low, high = (None, None) if math.isnan(est.ci_low) else (est.ci_low, est.ci_high)
    return ResultRow(
        run_id=run_id, policy=policy, eval=task, metric=metric, value=est.value, ci_low=low,
        ci_high=high, n=est.n, baseline=baseline, config_hash=config_hash,
    )


def alignment_tax_rows(
    items_by_policy: dict[str, list[dict]],
    *,
    task: str,
    metric: str = "acc",
    base_policy: str = "base",
    run_id: str,
    config_hash: str = "",
    seed: int = 0,
) -> list[ResultRow]:
    """Per-policy benchmark score and paired delta vs ``base_policy``, as result rows.

    ``items_by_policy`` maps policy name -> per-item records as returned by
    :func:`harness.evals.lm_eval_runner.run_lm_eval` (``{"task", "doc_id", <metric>: 0/1}``);
    records of other tasks are ignored. For every policy (in the mapping's order) one row
    ``eval=task, metric=metric`` holds the mean with a 95 % bootstrap interval
    (:func:`harness.stats.bootstrap_mean`); for every policy other than the base, one more row
    ``metric=f"{metric}_delta_vs_{base_policy}"``, ``baseline=base_policy`` holds the mean paired
    difference policy - base over the same doc_ids (:func:`harness.stats.paired_bootstrap_delta`).
    Values are fractions (accuracy 0-1), deltas in the same unit.

    The alignment tax is the negative of that delta: a positive tax means the aligned policy
    scores lower than the base model (paper section 4.2, Table 14).

    Raises ``ValueError`` if ``base_policy`` is missing, a policy has no items for ``task``, an
    item lacks ``metric``, a doc_id repeats, or a policy's doc_id set differs from the base's
    (items are never dropped silently: paired comparisons need the same items).
    """
    if base_policy not in items_by_policy:
        raise ValueError(f"alignment_tax: base policy {base_policy!r} not in {sorted(items_by_policy)}")
    scores = {p: _scores_by_doc(items, policy=p, task=task, metric=metric) for p, items in items_by_policy.items()}
    base = scores[base_policy]
    doc_ids = sorted(base)
    rows: list[ResultRow] = []
    for policy, by_doc in scores.items():
        est = bootstrap_mean([by_doc[d] for d in sorted(by_doc)], seed=seed)
        rows.append(_row(run_id, policy, task, metric, est, None, config_hash))
        if policy == base_policy:
            continue
        if set(by_doc) != set(base):
            only_p, only_b = sorted(set(by_doc) - set(base)), sorted(set(base) - set(by_doc))
            raise ValueError(
                f"alignment_tax: {task} doc_ids differ between {policy!r} and {base_policy!r}: "
                f"{len(only_p)} only in {policy!r} (e.g. {only_p[:5]}), {len(only_b)} only in {base_policy!r} (e.g. {only_b[:5]})"
            )
        delta = paired_bootstrap_delta([by_doc[d] for d in doc_ids], [base[d] for d in doc_ids], seed=seed)
        rows.append(_row(run_id, policy, task, f"{metric}_delta_vs_{base_policy}", delta, base_policy, config_hash))
    return rows

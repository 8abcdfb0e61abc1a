"""Reward-model accuracy on held-out comparisons: the metric group ``reward_model`` (paper section 3.5).

Not an eval of ``eval.run``: the pipeline makes these rows from each trained reward model's held-out
outcomes (``run.json`` ``metrics.val_outcomes``, one 1 / 0.5 / 0 per ranked pair, and
``val_outcome_k``, the K of each pair's comparison). ``policy`` is the reward model (``rm``,
``judge_helpful``, ...).
"""

from __future__ import annotations

from harness.declarations import EvalDef, Metric, row
from harness.records import ResultRow
from harness.registry import register
from harness.stats import bootstrap_mean

EVAL = "reward_model"


def rm_accuracy_rows(name: str, metrics: dict, n_resamples: int = 2000, seed: int = 0) -> list[ResultRow]:
    """``pairwise_accuracy`` of reward model ``name`` over its held-out ranked pairs, with a 95 % bootstrap
    interval over pairs, then, when the held-out set mixes several K, one row per K (slice ``{k}``,
    bootstrap over that K's pairs). With a single K the per-K value equals the overall one and is only
    kept in ``run.json`` (``val_accuracy_by_k``). Raises ``KeyError`` without ``metrics["val_outcomes"]``."""
    outcomes = metrics["val_outcomes"]
    rows = [row(EVAL, name, "pairwise_accuracy", bootstrap_mean(outcomes, n_resamples=n_resamples, seed=seed))]
    ks = metrics.get("val_outcome_k") or []
    if len(set(ks)) > 1:
        for k in sorted(set(ks)):
            est = bootstrap_mean([o for o, kk in zip(outcomes, ks) if kk == k], n_resamples=n_resamples, seed=seed)
            rows.append(row(EVAL, name, "pairwise_accuracy", est, k=int(k)))
    return rows


ACCURACY = Metric("pairwise_accuracy", "fraction", True, None, (), ("k",), tolerance=0.05, label="pairwise accuracy",
                  description="share of held-out ranked pairs the reward model orders as the labels do (tie = 0.5)")
REWARD_MODEL = register(EvalDef(EVAL, (ACCURACY,), title="Reward model accuracy", paper="section 3.5"))

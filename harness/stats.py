"""Interval estimates for evaluation metrics (scipy's bootstrap; no statistics of our own).

Every metric the harness reports is a mean over items (prompts, questions), so one function
gives its 95 % interval; paired comparisons bootstrap the per-item differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap interval. ``ci_low``/``ci_high`` are NaN when n < 2."""

    value: float
    ci_low: float
    ci_high: float
    n: int


def bootstrap_mean(
    values: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> Estimate:
    """Mean of ``values`` with a percentile bootstrap interval over items.

    Uses ``scipy.stats.bootstrap`` (percentile method, which stays defined when every value is
    equal, e.g. a policy that wins every comparison). Raises ``ValueError`` on an empty input or
    non-finite values, because a NaN would silently poison an aggregate.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_mean: no values")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_mean: non-finite value in input")
    mean = float(x.mean())
    if x.size < 2:
        return Estimate(mean, math.nan, math.nan, int(x.size))
    if np.all(x == x[0]):
        return Estimate(mean, mean, mean, int(x.size))
    res = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return Estimate(mean, float(res.confidence_interval.low), float(res.confidence_interval.high), int(x.size))


def paired_bootstrap_delta(
    treatment: Sequence[float], control: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> Estimate:
    """Mean of ``treatment - control`` over the same items, with a bootstrap interval.

    The two sequences must be aligned item by item (same length); raises ``ValueError`` if not.
    """
    t = np.asarray(treatment, dtype=float)
    c = np.asarray(control, dtype=float)
    if t.shape != c.shape:
        raise ValueError(f"paired_bootstrap_delta: {t.size} treatment items vs {c.size} control items")
    return bootstrap_mean(t - c, confidence=confidence, n_resamples=n_resamples, seed=seed)

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


@dataclass(frozen=True)
class SeedSpread:
    """An estimate replicated over training seeds (:func:`seed_spread`).

    ``mean``: the mean of the seeds' estimates, with ``t_low``/``t_high`` a Student t 95 % interval over seeds (the
    interval for the training *procedure*, seed luck included); ``sd``: the SD of the seeds' estimates; ``eval_se``:
    the root mean square of their own standard errors (the evaluation's sampling error); ``between_sd``: the seed
    spread left after that error, ``sqrt(max(0, sd^2 - eval_se^2))``; ``p_above``: one-sided t-test p-value of
    ``mean > null``; ``n``: seeds."""

    mean: float
    t_low: float
    t_high: float
    sd: float
    eval_se: float
    between_sd: float
    p_above: float
    n: int


def seed_spread(values: Sequence[float], ses: Sequence[float], null: float = 0.5, confidence: float = 0.95) -> SeedSpread:
    """Summarise one metric over training seeds: the seeds' mean with a t interval over seeds and its spread split into
    the evaluation's error and the seeds' own (random-effects decomposition by moments: the variance of the seeds'
    estimates is the between-seed variance plus the mean of their squared standard errors; Henderson et al. 2018,
    arXiv 1709.06560, on reporting RL over seeds).

    ``values``: ``[seeds]`` estimates (e.g. win rates), ``ses``: ``[seeds]`` their standard errors (e.g. a 95 %
    bootstrap interval's half-width / 1.96). Raises ``ValueError`` for fewer than 2 seeds, mismatched lengths, a
    non-finite value or a negative standard error."""
    x, s = np.asarray(values, dtype=float), np.asarray(ses, dtype=float)
    if x.ndim != 1 or x.shape != s.shape:
        raise ValueError(f"seed_spread: need one value and one standard error per seed, got {x.shape} and {s.shape}")
    if x.size < 2:
        raise ValueError(f"seed_spread: needs at least 2 seeds, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(s))) or np.any(s < 0):
        raise ValueError(f"seed_spread: values and standard errors must be finite and the errors >= 0, got {x.tolist()}, {s.tolist()}")
    n, mean, sd = x.size, float(x.mean()), float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))
    eval_se = float(math.sqrt(np.mean(s**2)))
    p = float(stats.t.sf((mean - null) / (sd / math.sqrt(n)), n - 1)) if sd > 0 else (0.0 if mean > null else 1.0)
    return SeedSpread(mean, mean - half, mean + half, sd, eval_se, math.sqrt(max(0.0, sd**2 - eval_se**2)), p, n)


def resolve_probability(effect: float, between_sd: float, se: float, z: float = 1.959964) -> float:
    """The chance that one more training run's interval excludes the null (lies above it), when that run's true effect
    is ``Normal(effect, between_sd^2)`` over seeds and its estimate is the true effect plus ``Normal(0, se^2)``: the
    estimate is then ``Normal(effect, se^2 + between_sd^2)``, so ``P = Phi((effect - z se) / sqrt(se^2 + between_sd^2))``
    (normal approximation; the power of a one-sided z-test with the seed spread added). ``effect`` in the metric's units
    above the null. Raises ``ValueError`` if ``se`` <= 0 or ``between_sd`` < 0."""
    if not se > 0 or not between_sd >= 0:
        raise ValueError(f"resolve_probability: need se > 0 and between_sd >= 0, got se={se}, between_sd={between_sd}")
    return float(stats.norm.cdf((effect - z * se) / math.sqrt(se**2 + between_sd**2)))

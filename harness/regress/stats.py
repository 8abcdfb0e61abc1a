"""The paired test behind the gate's verdicts and the comparison report's p-values.

**Test: a paired sign-flip permutation test of the mean difference** (Fisher's randomization
test; Fisher 1935, *The Design of Experiments*, section 21; as recommended for comparing systems
on the same items by Dror et al. 2018, "The Hitchhiker's Guide to Testing Statistical
Significance in Natural Language Processing", ACL, section 4). Per item i, ``d_i = run_i -
baseline_i``; the statistic is ``mean(d)``; under H0 (run and baseline values of an item are
exchangeable) each sign of ``d_i`` is equally likely, so the p-value is the share of the 2^n sign
assignments whose mean is at least as extreme. ``scipy.stats.permutation_test`` with
``permutation_type="samples"`` computes it, exactly (all 2^n assignments) when 2^n <=
``n_resamples`` and by ``n_resamples`` random assignments otherwise (then p = (hits + 1) /
(n_resamples + 1), still a valid p-value).

Why this test rather than the alternatives, for these data:
- the per-item values are bounded and mostly discrete (win in {0, 0.5, 1}, 0/1 flags, a Likert
  level 1-7), and the smoke and CI sizes are small (n = 4..32). The permutation test is exact at
  any n and for any distribution; a paired t-test's normal approximation is not trustworthy
  for 0/1 differences at n = 8;
- the Wilcoxon signed-rank test drops zero differences (most items when a metric barely moves)
  and tests a location shift of a symmetric distribution, not the mean that the metric is;
- a paired bootstrap p-value is anti-conservative at small n (the percentile bootstrap
  under-covers), which would let seed noise trip the gate.
Its limit: with n items the smallest attainable one-sided p-value is 2^-n (1/256 at n = 8), so a
gate over many metrics of a tiny eval can only detect drops that move most items.

:func:`adjust_pvalues` corrects for testing many metrics at once (statsmodels ``multipletests``):
``fdr_bh`` (Benjamini & Hochberg 1995) controls the expected share of false alarms among flagged
metrics, ``holm`` / ``bonferroni`` the chance of any false alarm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

ALTERNATIVES = ("less", "greater", "two-sided")
CORRECTIONS = ("none", "fdr_bh", "holm", "bonferroni")


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def paired_permutation_pvalue(run: Sequence[float], baseline: Sequence[float], alternative: str,
                              n_resamples: int = 9999, seed: int = 0) -> float:
    """p-value of the paired sign-flip permutation test of ``mean(run - baseline)`` (module docstring).

    ``run`` and ``baseline`` are aligned per item (same length n >= 1). ``alternative``: ``"less"``
    (H1: the run's mean is lower), ``"greater"`` or ``"two-sided"``. Exact when 2^n <= ``n_resamples``,
    otherwise Monte Carlo with ``numpy.random.default_rng(seed)``. All differences 0 gives p = 1.
    Raises ``ValueError`` on unequal lengths, no items, non-finite values or an unknown alternative.
    """
    x, y = np.asarray(run, dtype=float), np.asarray(baseline, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"paired test: need two aligned non-empty vectors, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("paired test: non-finite value")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"paired test: alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    if np.all(x == y):
        return 1.0
    if x.size == 1:  # scipy needs two observations; the sign-flip distribution of one difference d is {d, -d}
        d = float(x[0] - y[0])
        p_greater, p_less = (0.5, 1.0) if d > 0 else (1.0, 0.5)
        return {"greater": p_greater, "less": p_less, "two-sided": min(1.0, 2 * min(p_greater, p_less))}[alternative]
    res = stats.permutation_test((x, y), _mean_diff, permutation_type="samples", alternative=alternative,
                                 n_resamples=n_resamples, vectorized=True, rng=np.random.default_rng(seed))
    return float(min(1.0, res.pvalue))


def adjust_pvalues(pvalues: Sequence[float], method: str) -> list[float]:
    """Multiplicity-adjusted p-values, in input order (``statsmodels.stats.multitest.multipletests``).
    ``method``: ``none`` (unchanged), ``fdr_bh``, ``holm`` or ``bonferroni``. Raises ``ValueError`` otherwise."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {method!r}")
    p = [float(v) for v in pvalues]
    if method == "none" or not p:
        return p
    from statsmodels.stats.multitest import multipletests

    return [float(v) for v in multipletests(p, method=method)[1]]

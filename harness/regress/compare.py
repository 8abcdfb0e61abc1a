"""Metric-by-metric differences between two result sets (run A against B), for the comparison report.

For every metric in both: A's value, B's value and delta = A - B. When both sides have per-item
values (:mod:`harness.regress.items`), the items are paired by id and the delta is the mean of
the per-item differences over the common ids (equal to A - B when both cover the same items),
with a 95 % paired percentile-bootstrap interval (:func:`harness.stats.paired_bootstrap_delta`)
and the two-sided paired permutation p-value (:func:`harness.regress.stats.paired_permutation_pvalue`,
the gate's test). Otherwise the delta is unpaired: A - B of the aggregates, no interval, no p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.regress.items import MetricKey, metric_id
from harness.regress.results import ResultSet
from harness.regress.stats import paired_permutation_pvalue
from harness.stats import paired_bootstrap_delta


@dataclass(frozen=True)
class Delta:
    """One metric in both sets. ``ci_low``/``ci_high``/``p_value`` are None when unpaired (or n < 2 for the interval)."""

    key: MetricKey
    a: float
    b: float
    delta: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_paired: int
    paired: bool
    note: str = ""

    @property
    def metric(self) -> str:
        return metric_id(self.key)


@dataclass(frozen=True)
class Comparison:
    """``deltas`` for the metrics in both sets (sorted by id); the ids only in A and only in B."""

    deltas: list[Delta]
    only_a: list[MetricKey]
    only_b: list[MetricKey]


def compare_sets(a: ResultSet, b: ResultSet, *, n_resamples: int = 2000, n_permutations: int = 9999,
                 seed: int = 0) -> Comparison:
    """Differences A - B for every metric in both ``a`` and ``b`` (see the module docstring)."""
    deltas = []
    for key in sorted(set(a.metrics) & set(b.metrics), key=metric_id):
        ma, mb = a.metrics[key], b.metrics[key]
        common = sorted(set(ma.items) & set(mb.items)) if ma.items is not None and mb.items is not None else []
        if not common:
            note = "unpaired" if ma.items is None or mb.items is None else "unpaired: no common item ids"
            deltas.append(Delta(key, ma.value, mb.value, ma.value - mb.value, None, None, None, 0, False, note))
            continue
        xa, xb = [ma.items[i] for i in common], [mb.items[i] for i in common]
        est = paired_bootstrap_delta(xa, xb, n_resamples=n_resamples, seed=seed)
        lo, hi = (None, None) if math.isnan(est.ci_low) else (est.ci_low, est.ci_high)
        p = paired_permutation_pvalue(xa, xb, "two-sided", n_resamples=n_permutations, seed=seed)
        partial = len(common) != len(ma.items) or len(common) != len(mb.items)
        note = f"paired on {len(common)} common items of {len(ma.items)} (A) and {len(mb.items)} (B)" if partial else ""
        deltas.append(Delta(key, ma.value, mb.value, est.value, lo, hi, p, len(common), True, note))
    only_a = sorted(set(a.metrics) - set(b.metrics), key=metric_id)
    only_b = sorted(set(b.metrics) - set(a.metrics), key=metric_id)
    return Comparison(deltas, only_a, only_b)

"""Verdicts of the regression gate: a run's metrics against a baseline's, per-metric rules.

For each metric of the baseline (see :mod:`harness.regress.results`), with its declaration
(:class:`harness.evals.base.Metric`: direction and default tolerance) and the first rule whose glob
``pattern`` matches its id (``eval/policy/metric{k=v,...}``, :func:`metric_id`; a rule may set the
tolerance and the significance level):

- ``drop`` = baseline - run when higher is better, run - baseline when lower is better (metric units);
- **paired** (both sides have per-item values; items paired by id, on the ids both have): the
  one-sided paired permutation test of a change in the bad direction
  (:func:`harness.regress.stats.paired_permutation_pvalue`), its p-value adjusted over all paired metrics
  of the gate (``correction``); the metric **regresses iff drop > tolerance and adjusted p <= alpha**;
- **unpaired** (no item records on one side: LC win rate, MC1/MC2, RM and judge accuracy): it
  regresses iff drop > tolerance and, when both rows carry a 95 % interval and ``unpaired_intervals``
  is on (the default), the two intervals do not overlap. Non-overlap of two 95 % intervals is a
  conservative test of a difference (Schenker & Gentleman 2001, "On judging the significance of
  differences by examining the overlap between confidence intervals", The American Statistician
  55(3)); it keeps seed noise in a fitted metric (the LC win rate of 8-12 prompts moves by up to
  0.45 between seeds of the tiny model) from tripping the gate, and tightens as n grows. Rows
  without an interval (judge validation) are judged by the tolerance alone;
- a baseline metric missing from the run, a malformed record, a metric nobody declares, or a metric
  whose direction the run and the baseline declare differently is an **error**, never a pass; a metric
  only in the run is **new** (reported, not gated); a metric declared ``gated=False`` (bookkeeping, such
  as the share of pairs a judge validation left out) is listed as ok, not gated.

A drop within 1e-9 (relative to the baseline value) of the tolerance is float noise and not a drop.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.regress.items import MetricKey, metric_id
from harness.regress.results import ResultSet
from harness.regress.stats import adjust_pvalues, paired_permutation_pvalue

VERDICTS = ("error", "regression", "ok", "new")  # severity order
EXIT_OK, EXIT_REGRESSION, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Rule:
    """``pattern``: a glob (``fnmatch``; ``*`` also crosses ``/``) on the metric id; ``tolerance``: the
    largest drop that passes, in the metric's units (>= 0; ``None``: the metric's declared tolerance);
    ``alpha``: significance level of the paired test (0 < alpha <= 1)."""

    pattern: str = "*"
    tolerance: float | None = None
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.tolerance is not None and not (isinstance(self.tolerance, (int, float)) and math.isfinite(self.tolerance)
                                               and self.tolerance >= 0):
            raise ValueError(f"rule {self.pattern!r}: tolerance must be a finite number >= 0 or null, got {self.tolerance!r}")
        if not (isinstance(self.alpha, (int, float)) and 0 < self.alpha <= 1):
            raise ValueError(f"rule {self.pattern!r}: alpha must be in (0, 1], got {self.alpha!r}")


def rule_for(mid: str, rules: Sequence[Rule], default: Rule) -> Rule:
    """The first rule whose pattern matches ``mid`` (case-sensitive ``fnmatch``), else ``default``."""
    for r in rules:
        if fnmatch.fnmatchcase(mid, r.pattern):
            return r
    return default


@dataclass
class Check:
    """One metric's verdict. ``delta`` = run - baseline (signed, metric units); ``drop`` is the change
    in the bad direction; ``p_value``/``p_adjusted`` only for paired metrics; ``n_paired`` items."""

    metric: str
    key: MetricKey
    verdict: str
    higher_is_better: bool = True
    tolerance: float = 0.0
    gated: bool = True
    baseline: float | None = None
    run: float | None = None
    delta: float | None = None
    drop: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    overlap: bool | None = None  # unpaired: do the run's and the baseline's 95 % intervals overlap (None: no intervals)
    n_paired: int = 0
    paired: bool = False
    rule: Rule | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


def _paired_vectors(run_items, base_items) -> tuple[list[float], list[float], str]:
    common = sorted(set(run_items) & set(base_items))
    note = ""
    if len(common) != len(run_items) or len(common) != len(base_items):
        note = (f"paired on the {len(common)} common items ({len(base_items) - len(common)} only in the baseline, "
                f"{len(run_items) - len(common)} only in the run)")
    return [run_items[i] for i in common], [base_items[i] for i in common], note


def _overlap(r, b, higher_is_better: bool) -> bool | None:
    """Whether the run's 95 % interval reaches the baseline's on the bad side (None when either lacks one)."""
    if None in (r.ci_low, r.ci_high, b.ci_low, b.ci_high):
        return None
    return r.ci_high >= b.ci_low if higher_is_better else r.ci_low <= b.ci_high


def _declared(run: ResultSet, baseline: ResultSet, key: MetricKey):
    """The baseline's declaration of ``key`` (direction, tolerance), checked against the run's. Raises
    ``ValueError`` when neither declares it or the two declare opposite directions."""
    decl = baseline.declaration(key)
    if key.eval in run.declarations:
        try:
            mine = run.declaration(key)
        except ValueError:
            return decl
        if mine.higher_is_better != decl.higher_is_better:
            raise ValueError(f"the run declares {key.metric!r} {'higher' if mine.higher_is_better else 'lower'} is better, "
                             f"the baseline the opposite")
    return decl


def compare(run: ResultSet, baseline: ResultSet, rules: Sequence[Rule], default: Rule, *, correction: str = "fdr_bh",
            ignore: Sequence[str] = (), n_resamples: int = 9999, seed: int = 0, unpaired_intervals: bool = True) -> list[Check]:
    """Checks for every metric of ``baseline`` (then the run's new ones), sorted by severity and id.
    ``ignore``: glob patterns of metric ids left out entirely; ``unpaired_intervals``: an unpaired metric
    with intervals on both sides also needs non-overlapping intervals to regress. See the module docstring."""
    checks: list[Check] = []
    for key in sorted(baseline.metrics, key=metric_id):
        mid = metric_id(key)
        if any(fnmatch.fnmatchcase(mid, p) for p in ignore):
            continue
        b = baseline.metrics[key]
        rule = rule_for(mid, rules, default)
        try:
            decl = _declared(run, baseline, key)
        except ValueError as e:
            checks.append(Check(mid, key, "error", baseline=b.value, rule=rule, notes=[str(e)]))
            continue
        r = run.metrics.get(key)
        if r is None:
            checks.append(Check(mid, key, "error", baseline=b.value, rule=rule,
                                notes=[f"missing from the run ({run.source}); present in the baseline"]))
            continue
        delta = r.value - b.value
        hib, tol = decl.higher_is_better, decl.tolerance if rule.tolerance is None else float(rule.tolerance)
        c = Check(mid, key, "ok", higher_is_better=hib, tolerance=tol, baseline=b.value, run=r.value, delta=delta,
                  drop=-delta if hib else delta, rule=rule)
        if not decl.gated:
            c.gated = False
            c.notes.append("not gated (declared gated=False)")
            checks.append(c)
            continue
        if r.items is not None and b.items is not None:
            x, y, note = _paired_vectors(r.items, b.items)
            if x:
                c.paired, c.n_paired = True, len(x)
                alt = "less" if hib else "greater"
                c.p_value = paired_permutation_pvalue(x, y, alt, n_resamples=n_resamples, seed=seed)
                if note:
                    c.notes.append(note)
            else:
                c.notes.append("no common item ids: unpaired")
        else:
            side = "run" if r.items is None and b.items is not None else "baseline" if b.items is None and r.items is not None \
                else None
            c.notes.append("unpaired" + (f" (no item records in the {side})" if side else ""))
        if not c.paired and unpaired_intervals:
            c.overlap = _overlap(r, b, hib)
        checks.append(c)
    paired = [c for c in checks if c.paired]
    for c, p in zip(paired, adjust_pvalues([c.p_value for c in paired], correction)):
        c.p_adjusted = p
    for c in checks:
        if c.verdict == "error" or not c.gated:
            continue
        rule, tol = c.rule, c.tolerance
        slack = 1e-9 * max(1.0, abs(c.baseline))
        exceeds = c.drop > tol + slack
        if not exceeds:
            if c.drop > slack:
                c.notes.append(f"drop {c.drop:.4g} within tolerance {tol:g}")
            continue
        if not c.paired and c.overlap:
            c.notes.append(f"drop {c.drop:.4g} > tolerance {tol:g} but the 95 % intervals overlap")
        elif not c.paired:
            c.verdict = "regression"
            c.notes.append(f"drop {c.drop:.4g} > tolerance {tol:g}"
                           + (" and the 95 % intervals do not overlap" if c.overlap is False else ""))
        elif c.p_adjusted <= rule.alpha:
            c.verdict = "regression"
            c.notes.append(f"drop {c.drop:.4g} > tolerance {tol:g} and p (adj.) {c.p_adjusted:.3g} <= alpha {rule.alpha:g}")
        else:
            c.notes.append(f"drop {c.drop:.4g} > tolerance {tol:g} but not significant "
                           f"(p (adj.) {c.p_adjusted:.3g} > alpha {rule.alpha:g})")
    for key in sorted(set(run.metrics) - set(baseline.metrics), key=metric_id):
        mid = metric_id(key)
        if not any(fnmatch.fnmatchcase(mid, p) for p in ignore):
            checks.append(Check(mid, key, "new", run=run.metrics[key].value, notes=["not in the baseline"]))
    return sorted(checks, key=lambda c: (VERDICTS.index(c.verdict), c.metric))


def exit_code(checks: Sequence[Check]) -> int:
    """2 if any check is an error, else 1 if any regressed, else 0."""
    verdicts = {c.verdict for c in checks}
    return EXIT_ERROR if "error" in verdicts else EXIT_REGRESSION if "regression" in verdicts else EXIT_OK

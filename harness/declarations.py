"""Metric declarations: the one place a metric is declared, and what an eval or metric group is.

Every number the harness reports is a row of a declared metric (:class:`Metric`: name, unit,
direction, the per-item field it averages, its slice keys) of an eval or metric group
(:class:`EvalDef`). The runner checks rows against them (:func:`check_rows`), the results store
records them (``results/metrics.json``), the regression gate takes directions, tolerances and item
vectors from them, and the report takes labels and units from them; none rebuilds or parses a
metric name. Evals are registered in :mod:`harness.registry`; an eval's spec and output types are in
:mod:`harness.evals.base`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from harness.records import ResultRow
from harness.stats import Estimate

UNITS = ("fraction", "likert_1_7", "score", "reward")
"""``fraction``: 0-1, shown as %, deltas in percentage points; ``likert_1_7``: a 1-7 level;
``score``: a task's own scale (F1 or BLEU points 0-100, ROC-AUC); ``reward``: reward-model units."""


@dataclass(frozen=True)
class Metric:
    """One declared quantity of an eval.

    - ``name``: the metric column of every row of it (one name per quantity; conditions go in ``slice``);
    - ``unit``: one of :data:`UNITS`; ``higher_is_better``: its direction (the gate's and the report's);
    - ``item_field``: the per-item record field whose mean over items is the value (the gate pairs runs
      item by item on it), or ``None`` when the value is no mean over items (an LC fit, lm-eval's MC);
      ``item_required``: every item record of the eval has that field (``null`` where it does not apply);
      ``False`` where records carry one of several metrics (the alignment tax's task metrics);
    - ``slices``: the slice keys every row of it carries (its conditions);
    - ``marginal``: slice keys some rows add to break the value down (``category``: per-category rows
      beside the overall one); the items give a vector per value of each such key;
    - ``delta_of``: for a paired difference ``policy - slice["baseline"]`` over the same items, the
      metric it is the difference of (unit and direction are that metric's);
    - ``tolerance``: the largest drop the regression gate passes by default, in the metric's unit;
    - ``gated``: ``False`` for bookkeeping numbers (e.g. the share of items a judge validation left out);
    - ``label``: the short human name the report shows; ``description``: its definition.

    Raises ``ValueError`` for an unknown unit, a negative tolerance, or a delta without ``baseline`` in ``slices``.
    """

    name: str
    unit: str
    higher_is_better: bool
    item_field: str | None = None
    slices: tuple[str, ...] = ()
    marginal: tuple[str, ...] = ()
    delta_of: str | None = None
    tolerance: float = 0.02
    gated: bool = True
    label: str = ""
    description: str = ""
    item_required: bool = True

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"metric {self.name!r}: unit must be one of {UNITS}, got {self.unit!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"metric {self.name!r}: tolerance must be a finite number >= 0, got {self.tolerance!r}")
        if self.delta_of is not None and "baseline" not in self.slices:
            raise ValueError(f"metric {self.name!r}: a paired delta must carry 'baseline' in its slices")
        object.__setattr__(self, "slices", tuple(self.slices))
        object.__setattr__(self, "marginal", tuple(self.marginal))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``results/evals.json``, snapshots)."""
        return {**asdict(self), "slices": list(self.slices), "marginal": list(self.marginal)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "metric") -> Metric:
        """The inverse of :meth:`to_dict`; raises ``ValueError`` naming ``where`` on a malformed record."""
        try:
            return cls(**{**d, "slices": tuple(d.get("slices") or ()), "marginal": tuple(d.get("marginal") or ())})
        except TypeError as e:
            raise ValueError(f"{where}: not a metric declaration: {e}") from e

    @property
    def paired(self) -> bool:
        """Whether per-item values can stand behind the value (an item field, or a delta of such a metric)."""
        return self.item_field is not None or self.delta_of is not None


def deltas(*metrics: Metric, tolerance: float | None = None) -> tuple[Metric, ...]:
    """``<name>_delta`` declarations: the paired difference ``policy - slice["baseline"]`` of each metric
    over the same items, with its unit and direction, and its slices plus ``baseline``."""
    return tuple(Metric(f"{m.name}_delta", m.unit, m.higher_is_better, None, (*m.slices, "baseline"), m.marginal, m.name,
                        m.tolerance if tolerance is None else tolerance, m.gated,
                        f"{m.label or m.name}: delta vs baseline", f"policy - baseline, paired by item: {m.description}",
                        m.item_required)
                 for m in metrics)


@dataclass(frozen=True)
class EvalDef:
    """An eval (or, with ``run=None``, a group of metrics made outside ``eval.run``, such as the reward
    model's accuracy and judge validation): its ``name`` (results' ``eval`` column, the items file
    ``results/<name>_items.jsonl``), ``metrics`` (declarations), ``item_id`` (the item record fields
    that together name an item, e.g. ``("set", "prompt_id")``), ``spec`` (its :class:`EvalSpec`
    dataclass), ``run``, the report's ``title`` and paper reference ``paper``, ``version`` (of a metric
    group; an eval's version is its spec's, set in its YAML), and ``unmeasured``: ``unmeasured(ctx, spec)`` ->
    ``{policy: reason}`` for the run's policies the eval will give no row, known from its spec before it runs (the
    runner refuses a policy that every eval of the run leaves out before any eval starts; None: the eval may
    measure every policy)."""

    name: str
    metrics: tuple[Metric, ...]
    item_id: tuple[str, ...] = ()
    spec: type | None = None
    run: Callable[..., Any] | None = None  # run(ctx, spec) -> harness.evals.base.EvalOutput
    title: str = ""
    paper: str = ""
    version: str = "1"
    unmeasured: Callable[..., dict[str, str]] | None = None  # unmeasured(ctx, spec) -> {policy: reason}

    def __post_init__(self) -> None:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"eval {self.name!r}: metric names repeat: {names}")
        for m in self.metrics:
            if m.delta_of is not None and m.delta_of not in names:
                raise ValueError(f"eval {self.name!r}: metric {m.name!r} is a delta of undeclared {m.delta_of!r}")
            if m.item_field is not None and not self.item_id:
                raise ValueError(f"eval {self.name!r}: metric {m.name!r} has an item field but the eval declares no item_id")

    def metric(self, name: str) -> Metric:
        """The declaration of ``name``; raises ``ValueError`` listing the declared names."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise ValueError(f"eval {self.name!r} declares no metric {name!r} (declared: {[m.name for m in self.metrics]})")

    def declaration(self) -> dict[str, Any]:
        """What ``results/evals.json`` records of the eval's metrics: ``{item_id, metrics: {name: decl}}``."""
        return {"item_id": list(self.item_id), "metrics": {m.name: m.to_dict() for m in self.metrics}}


def row(eval_: str, policy: str, metric: str, est: Estimate, **slice_: Any) -> ResultRow:
    """A :class:`ResultRow` of an :class:`Estimate` (a NaN interval, n < 2, becomes ``None``); the
    runner stamps run id, config hash and eval version. ``slice_`` entries that are ``None`` are left out."""
    low, high = (None, None) if math.isnan(est.ci_low) else (float(est.ci_low), float(est.ci_high))
    return ResultRow("", policy, eval_, metric, float(est.value), low, high, int(est.n),
                     {k: v for k, v in slice_.items() if v is not None})


def stamp(rows: list[ResultRow], run_id: str, config_hash: str, versions: Mapping[str, str]) -> list[ResultRow]:
    """``rows`` with ``run_id``, ``config_hash`` and, per eval, ``eval_version`` from ``versions`` filled in."""
    return [replace(r, run_id=run_id, config_hash=config_hash, eval_version=str(versions.get(r.eval, r.eval_version)))
            for r in rows]


def check_rows(defn: EvalDef, rows: list[ResultRow]) -> None:
    """Every row of ``defn``'s eval names a declared metric and carries exactly its declared slice keys
    (plus any of its ``marginal`` keys). Raises ``ValueError`` naming the row otherwise: an undeclared
    number never reaches results."""
    for r in rows:
        if r.eval != defn.name:
            continue
        m = defn.metric(r.metric)
        keys = set(r.slice)
        missing, extra = set(m.slices) - keys, keys - set(m.slices) - set(m.marginal)
        if missing or extra:
            raise ValueError(f"eval {defn.name!r}, policy {r.policy!r}, metric {r.metric!r}: slice {r.slice} "
                             f"lacks {sorted(missing)} / has undeclared {sorted(extra)} (declared {list(m.slices)}"
                             f"{f', marginal {list(m.marginal)}' if m.marginal else ''})")

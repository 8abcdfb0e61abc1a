"""Per-item value vectors behind the aggregate metrics, keyed by a stable item id, from the declarations.

Every paired metric is a mean over items (prompts, questions, documents). Its declaration
(:class:`harness.evals.base.Metric`) names the per-item field it averages and the slice keys of its
rows; its eval names the fields that identify an item (``item_id``). So a run's
``results/<eval>_items.jsonl`` records rebuild, for each result row, the vector whose mean is the row's
value, with no per-eval code: :func:`item_vectors` groups records by policy and the slice keys each
record carries, and :func:`attach_vectors` matches a row to the vector whose slice agrees with the
row's on the keys the records carry (a row may name more, e.g. the judge of a Likert flag, which the
records do not repeat), derives ``delta_of`` metrics as policy - ``slice.baseline`` item by item, and
checks that each vector's mean and size are the row's value and ``n``. Two runs are then compared item
by item (paired), which is what the regression gate and the comparison report need.

Metrics with no item field (the LC win rate, a GLM fit; TruthfulQA MC1/MC2 from lm-eval; reward-model
accuracy and judge validation) have no vector and are compared unpaired.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from harness.declarations import EvalDef

ItemVector = dict[str, float]
Slice = tuple[tuple[str, str], ...]


def slice_key(sl: Mapping[str, Any]) -> Slice:
    """A slice as a hashable, order-free key (values as strings, so ``0`` and ``"0"`` agree)."""
    return tuple(sorted((str(k), str(v)) for k, v in sl.items()))


class MetricKey(NamedTuple):
    """Identity of one aggregate metric: eval, policy, metric and slice (:func:`slice_key`)."""

    eval: str
    policy: str
    metric: str
    slice: Slice = ()


def metric_id(key: MetricKey) -> str:
    """``eval/policy/metric`` plus ``{k=v,...}`` (keys sorted) when the slice is not empty, e.g.
    ``winrate/ppo/win_rate{baseline=text-davinci-003,judge=helpful}``: what the gate's glob rules match
    (braces, unlike brackets, are no glob syntax)."""
    base = f"{key.eval}/{key.policy}/{key.metric}"
    return base + ("{" + ",".join(f"{k}={v}" for k, v in key.slice) + "}" if key.slice else "")


def _scalar(rec: Mapping[str, Any], name: str, where: str) -> str:
    if not isinstance(rec, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    if name not in rec:
        raise ValueError(f"{where}: missing field '{name}'")
    v = rec[name]
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ValueError(f"{where}: field '{name}' should be a string or integer, got {v!r}")
    return str(v)


def _value(rec: Mapping[str, Any], name: str, where: str) -> float | None:
    """The item's value: a number or a boolean (0/1); ``None`` means the metric does not apply to this item."""
    v = rec[name]
    if v is None:
        return None
    if not isinstance(v, (bool, int, float)) or not math.isfinite(float(v)):
        raise ValueError(f"{where}: field '{name}' should be a finite number, a boolean or null, got {v!r}")
    return float(v)


def item_vectors(defn: EvalDef, records: Iterable[tuple[str, dict]]) -> dict[MetricKey, ItemVector]:
    """Vectors of one eval's item records (``(where, record)`` pairs, e.g. from :func:`iter_records`).

    For each metric with an ``item_field`` and each record whose field is not null: the item id is the
    record's ``defn.item_id`` fields joined by ``:``, the vector key the record's policy and the metric's
    slice keys the record carries; each ``marginal`` key the record carries adds a second vector per its
    value. Raises ``ValueError`` naming ``where`` and the field for a malformed record (a required item
    field missing, a record with none of the eval's item fields, a value that is no number) or an item
    id repeated within a vector.
    """
    out: dict[MetricKey, ItemVector] = {}
    measured = [m for m in defn.metrics if m.item_field is not None]
    for where, rec in records:
        policy = _scalar(rec, "policy", where)
        item = ":".join(_scalar(rec, f, where) for f in defn.item_id)
        missing = next((m.item_field for m in measured if m.item_required and m.item_field not in rec), None)
        if missing is not None:
            raise ValueError(f"{where}: missing field '{missing}'")
        if measured and not any(m.item_field in rec for m in measured):
            raise ValueError(f"{where}: none of the item fields {sorted({m.item_field for m in measured})} of eval {defn.name!r}")
        for m in measured:
            if m.item_field not in rec:
                continue
            value = _value(rec, m.item_field, where)
            if value is None:
                continue
            base = {k: _scalar(rec, k, where) for k in m.slices if k in rec}
            keys = [base] + [{**base, k: _scalar(rec, k, where)} for k in m.marginal if k in rec]
            for sl in keys:
                vec = out.setdefault(MetricKey(defn.name, policy, m.name, slice_key(sl)), {})
                if item in vec:
                    raise ValueError(f"{where}: item id {item!r} appears twice for {metric_id(MetricKey(defn.name, policy, m.name, slice_key(sl)))}")
                vec[item] = value
    return out


def iter_records(path: str | Path, eval_: str | None = None) -> Iterator[tuple[str, dict]]:
    """``("<file>:<line>", record)`` for each non-blank line of a JSONL file (:func:`harness.data.iter_jsonl`),
    upgraded from an older shape when ``eval_`` is given (:func:`harness.results_upgrade.upgrade_items`).
    Raises ``ValueError`` (``DataError``) naming file and line on a missing file, invalid JSON or a line
    that is no object."""
    from harness.data import iter_jsonl
    from harness.results_upgrade import upgrade_items

    path = Path(path)
    for lineno, rec in iter_jsonl(path):
        yield f"{path}:{lineno}", (upgrade_items(eval_, [rec])[0] if eval_ else rec)


def results_dir_vectors(results_dir: str | Path, declarations: Mapping[str, EvalDef]) -> dict[MetricKey, tuple[ItemVector, str]]:
    """Every vector of the ``<eval>_items.jsonl`` files in ``results_dir`` of the evals in ``declarations``,
    with the file it came from. An items file of an eval that declares no item id has no vectors."""
    out: dict[MetricKey, tuple[ItemVector, str]] = {}
    for name, defn in declarations.items():
        path = Path(results_dir) / f"{name}_items.jsonl"
        if defn.item_id and path.is_file():
            for key, vec in item_vectors(defn, iter_records(path, name)).items():
                out[key] = (vec, str(path))
    return out


def _candidates(index: dict[tuple, list], key: MetricKey) -> list:
    row_slice = dict(key.slice)
    return [c for c in index.get((key.eval, key.policy, key.metric), []) if all(row_slice.get(k) == v for k, v in c[0].slice)]


def attach_vectors(rows: Mapping[MetricKey, tuple[float, int]], vectors: Mapping[MetricKey, tuple[ItemVector, str]],
                   declarations: Mapping[str, EvalDef]) -> dict[MetricKey, ItemVector]:
    """Row key -> its item vector, for the rows (key -> (value, n)) that have one.

    A row takes the vector of its eval, policy and metric whose slice agrees with the row's on every key
    the vector has, the most specific one when several do. A ``delta_of`` metric's vector is derived:
    its base metric's vector for the policy minus the one for ``slice.baseline``, on the same item ids
    (no vector when the ids differ). Every attached vector is checked against its row: as many items as
    the row's ``n`` and a mean equal to its value (relative 1e-9), which proves the pairing. Raises
    ``ValueError`` naming the items file and metric when a check fails or two rows claim one vector.
    """
    index: dict[tuple, list[tuple[MetricKey, ItemVector, str]]] = {}
    for vkey, (vec, src) in vectors.items():
        index.setdefault((vkey.eval, vkey.policy, vkey.metric), []).append((vkey, vec, src))
    out: dict[MetricKey, ItemVector] = {}
    claimed: dict[MetricKey, MetricKey] = {}

    def own(key: MetricKey) -> tuple[MetricKey, ItemVector, str] | None:
        cands = _candidates(index, key)
        return max(cands, key=lambda c: len(c[0].slice)) if cands else None

    for key, (value, n) in rows.items():
        defn = declarations.get(key.eval)
        decl = next((m for m in defn.metrics if m.name == key.metric), None) if defn else None
        if decl is not None and decl.delta_of is not None:
            sl = dict(key.slice)
            base_policy = sl.pop("baseline", None)
            mine = own(key._replace(metric=decl.delta_of, slice=slice_key(sl)))
            ref = own(MetricKey(key.eval, str(base_policy), decl.delta_of, slice_key(sl))) if base_policy else None
            if mine is None or ref is None or set(mine[1]) != set(ref[1]):
                continue
            found = (key, {i: mine[1][i] - ref[1][i] for i in mine[1]}, mine[2])
        else:
            found = own(key)
            if found is None:
                continue
            if found[0] in claimed:
                raise ValueError(f"{found[2]}: item records cannot tell {metric_id(claimed[found[0]])} and {metric_id(key)} apart "
                                 "(the records do not carry the slice key that separates them)")
            claimed[found[0]] = key
        vkey, vec, src = found
        mean = sum(vec.values()) / len(vec)
        if len(vec) != n or not math.isclose(mean, value, rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(f"{src}: the {len(vec)} item values of {metric_id(key)} average {mean!r}, but its result row "
                             f"says value {value!r} over n={n} items; the items and results.jsonl do not belong together")
        out[key] = vec
    return out

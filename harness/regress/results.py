"""Load what the gate and the comparison report compare: a run directory, a ``results.jsonl`` file
or a baseline snapshot, as one :class:`ResultSet` (aggregate values, per-item vectors, declarations).

A **snapshot** (``harness-regress snapshot=true``) is the committed form of a baseline: the run's
aggregate rows, for the paired metrics the per-item values keyed by item id, and the metric
declarations of its evals (units, directions, tolerances), so a baseline describes itself. It holds
no instruction, output or any other dataset text, only names (policy, metric, slice), numbers and ids.
Format (JSON, one metric per line so that a refreshed baseline diffs line by line)::

    {"format": "harness-regress-snapshot", "version": 2,
     "source": {"run_id": ..., "git_commit": ..., "config_hash": ..., "data_fingerprints": {...}, "eval_versions": {...}},
     "declarations": {"<eval>": {"item_id": [...], "metrics": {"<metric>": {...}}}, ...},
     "metrics": [{"eval": ..., "policy": ..., "metric": ..., "slice": {...}, "value": ..., "ci_low": ...,
                  "ci_high": ..., "n": ..., "items": {"<item id>": <value>, ...} | null}, ...]}

Version 1 snapshots (conditions packed into metric names, ``baseline`` and ``judge`` fields) are read
through :mod:`harness.results_upgrade`. The paper's reference values are never part of a result set.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.declarations import EvalDef
from harness.io import atomic_write_text, read_json
from harness.regress.items import (
    ItemVector,
    MetricKey,
    attach_vectors,
    metric_id,
    results_dir_vectors,
    slice_key,
)
from harness.regress.provenance import Provenance, from_results, from_source
from harness.results import declarations_from_json, declarations_json, read_results
from harness.results_upgrade import upgrade_row

SNAPSHOT_FORMAT = "harness-regress-snapshot"
SNAPSHOT_VERSION = 2


@dataclass(frozen=True)
class MetricValue:
    """One aggregate metric: ``value`` in the metric's unit, its 95 % interval (or None), ``n`` items,
    ``items`` (item id -> per-item value, mean = value) when it is a paired metric, and the row's
    ``slice`` as a mapping."""

    key: MetricKey
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int
    items: ItemVector | None = None
    slice: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass
class ResultSet:
    """Metrics by key, the declarations of their evals, where they came from (``source``) and what kind
    of input it was (``run`` with item files, ``results`` without, ``snapshot``)."""

    source: str
    kind: str
    metrics: dict[MetricKey, MetricValue] = field(default_factory=dict)
    declarations: dict[str, EvalDef] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)  # config hash, data fingerprints, eval versions

    def declaration(self, key: MetricKey):
        """The :class:`harness.evals.base.Metric` of ``key``; raises ``ValueError`` when undeclared."""
        if key.eval not in self.declarations:
            raise ValueError(f"{self.source}: eval {key.eval!r} has no metric declarations")
        return self.declarations[key.eval].metric(key.metric)


def _add(metrics: dict[MetricKey, MetricValue], m: MetricValue, where: str) -> None:
    if m.key in metrics:
        raise ValueError(f"{where}: metric {metric_id(m.key)} appears twice")
    metrics[m.key] = m


def load_results_file(path: str | Path, with_items: bool = True) -> ResultSet:
    """A run's ``results.jsonl`` (:func:`harness.results.read_results`, older shapes upgraded); with
    ``with_items``, the ``<eval>_items.jsonl`` files beside it give the paired metrics their vectors.
    Raises ``ValueError`` naming file, line and field on a malformed row or a repeated metric."""
    path = Path(path)
    res = read_results(path)
    if not res.rows:
        raise ValueError(f"{path}: no result rows")
    metrics: dict[MetricKey, MetricValue] = {}
    for i, r in enumerate(res.rows, 1):
        _add(metrics, MetricValue(MetricKey(r.eval, r.policy, r.metric, slice_key(r.slice)), r.value, r.ci_low, r.ci_high, r.n,
                                  slice=dict(r.slice)), f"{path}: record {i}")
    kind = "results"
    if with_items:
        vectors = attach_vectors({k: (m.value, m.n) for k, m in metrics.items()},
                                 results_dir_vectors(path.parent, res.declarations), res.declarations)
        metrics = {k: MetricValue(m.key, m.value, m.ci_low, m.ci_high, m.n, vectors.get(k), m.slice) for k, m in metrics.items()}
        kind = "run" if vectors else "results"
    run_ids = sorted({r.run_id for r in res.rows})
    return ResultSet(str(path), kind, metrics, res.declarations, {"run_id": run_ids[0] if len(run_ids) == 1 else run_ids},
                     from_results(path, res.rows))


def _finite(rec: dict, name: str, where: str, optional: bool) -> float | None:
    v = rec.get(name)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where}: field '{name}' should be a finite number{' or null' if optional else ''}, got {v!r}")
    return float(v)


def _snapshot_metric(rec: Any, where: str, version: int) -> MetricValue:
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected an object, got {type(rec).__name__}")
    if version == 1:
        rec = upgrade_row(rec, where)
    for name in ("eval", "policy", "metric"):
        if not isinstance(rec.get(name), str) or not rec[name]:
            raise ValueError(f"{where}: field '{name}' should be a non-empty string, got {rec.get(name)!r}")
    sl = rec.get("slice")
    if not isinstance(sl, dict):
        raise ValueError(f"{where}: field 'slice' should be an object, got {sl!r}")
    n = rec.get("n", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{where}: field 'n' should be a non-negative integer, got {n!r}")
    items = rec.get("items")
    if items is not None:
        if not isinstance(items, dict) or not items:
            raise ValueError(f"{where}: field 'items' should be a non-empty object of item id -> value, or null")
        for item_id in items:
            _finite(items, item_id, f"{where} items", False)
        items = {str(k): float(v) for k, v in items.items()}
    value = _finite(rec, "value", where, False)
    if items is not None:
        mean = sum(items.values()) / len(items)
        if len(items) != n or not math.isclose(mean, value, rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(f"{where}: {len(items)} item values averaging {mean!r} do not give value {value!r} over n={n}")
    return MetricValue(MetricKey(rec["eval"], rec["policy"], rec["metric"], slice_key(sl)), value,
                       _finite(rec, "ci_low", where, True), _finite(rec, "ci_high", where, True), n, items, dict(sl))


def load_snapshot(path: str | Path) -> ResultSet:
    """A snapshot written by :func:`write_snapshot` (version 2, or an older version 1). Raises ``ValueError``
    naming the file and the record (index in ``metrics``) and field when it is not one."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    if not isinstance(obj, dict) or obj.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"{path}: not a harness-regress snapshot (field 'format' should be {SNAPSHOT_FORMAT!r})")
    version = obj.get("version")
    if version not in (1, SNAPSHOT_VERSION):
        raise ValueError(f"{path}: snapshot version {version!r}, this harness reads versions 1 and {SNAPSHOT_VERSION}")
    recs = obj.get("metrics")
    if not isinstance(recs, list) or not recs:
        raise ValueError(f"{path}: field 'metrics' should be a non-empty list")
    metrics: dict[MetricKey, MetricValue] = {}
    for i, rec in enumerate(recs):
        _add(metrics, _snapshot_metric(rec, f"{path}: metrics[{i}]", version), f"{path}: metrics[{i}]")
    if version == 1:  # declarations were not recorded then: today's registry declares those evals
        declarations = declarations_from_json(declarations_json({k.eval for k in metrics}), "registry")
    else:
        declarations = declarations_from_json(obj.get("declarations"), f"{path}: declarations")
    src = obj.get("source") if isinstance(obj.get("source"), dict) else {}
    # a version-1 snapshot's config hash was taken over the whole config (run id and folders included): not comparable
    provenance = from_source(src, str(path)) if version == SNAPSHOT_VERSION else Provenance()
    return ResultSet(str(path), "snapshot", metrics, declarations, dict(src), provenance)


def load_result_set(path: str | Path) -> ResultSet:
    """A run directory (``<dir>/results/results.jsonl``), a results folder, a ``results.jsonl`` file
    (with the item files beside it) or a snapshot ``.json``. Raises ``ValueError`` when the path
    is none of these, or for malformed content (naming file, record and field)."""
    path = Path(path)
    if path.is_dir():
        for cand in (path / "results" / "results.jsonl", path / "results.jsonl"):
            if cand.is_file():
                return load_results_file(cand)
        raise ValueError(f"{path}: a directory without results/results.jsonl (not a run directory)")
    if not path.is_file():
        raise ValueError(f"{path}: no such file or directory")
    if path.suffix == ".jsonl":
        return load_results_file(path)
    return load_snapshot(path)


def snapshot_text(results: ResultSet, source: dict[str, Any] | None = None) -> str:
    """The snapshot JSON of ``results``: one eval's declarations per line, then one metric per line sorted by
    metric id, item ids sorted."""
    lines = []
    for key in sorted(results.metrics, key=metric_id):
        m = results.metrics[key]
        rec = {"eval": key.eval, "policy": key.policy, "metric": key.metric, "slice": m.slice, "value": m.value,
               "ci_low": m.ci_low, "ci_high": m.ci_high, "n": m.n,
               "items": None if m.items is None else {i: m.items[i] for i in sorted(m.items)}}
        lines.append(json.dumps(rec, ensure_ascii=False))
    decl = {name: {"title": d.title, "paper": d.paper, **d.declaration()}
            for name, d in sorted(results.declarations.items()) if name in {k.eval for k in results.metrics}}
    head = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "source": source or {}}
    body = ",\n".join("  " + line for line in lines)
    decl_text = ",\n".join(f"  {json.dumps(name)}: {json.dumps(d, ensure_ascii=False)}" for name, d in decl.items())
    return (json.dumps(head, ensure_ascii=False)[:-1] + ',\n "declarations": {\n' + decl_text + "\n },"
            + '\n "metrics": [\n' + body + "\n]}\n")


def write_snapshot(run_dir: str | Path, path: str | Path) -> Path:
    """Snapshot the run at ``run_dir`` (a run directory or results.jsonl) into ``path``, atomically.
    ``source`` records the run id, the git commit and seed from ``run.json`` when present, and the run's
    provenance (:mod:`harness.regress.provenance`: config hash, data fingerprints, eval versions)."""
    results = load_result_set(run_dir)
    if results.kind == "snapshot":
        raise ValueError(f"{run_dir}: is already a snapshot; give the run directory")
    source: dict[str, Any] = {"run_id": results.info.get("run_id")}
    run_json = Path(run_dir) / "run.json"
    if run_json.is_file():
        info = read_json(run_json)
        for k in ("git_commit", "seed"):
            if isinstance(info, dict) and info.get(k) is not None:
                source[k] = info[k]
    source.update(results.provenance.as_json())
    return atomic_write_text(path, snapshot_text(results, source))

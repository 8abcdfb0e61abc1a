"""Load what the gate and the comparison report compare: a run directory, a ``results.jsonl`` file
or a baseline snapshot, as one :class:`ResultSet` (aggregate values plus per-item vectors).

A **snapshot** (``harness-regress snapshot=true``) is the committed form of a baseline: the run's
aggregate rows and, for the paired metrics, the per-item values keyed by item id. It holds no
instruction, output or any other dataset text, only names (policy, judge, metric), numbers and ids.
Format (JSON, one metric per line so that a refreshed baseline diffs line by line)::

    {"format": "harness-regress-snapshot", "version": 1, "source": {"run_id": ..., "git_commit": ...},
     "metrics": [{"eval": ..., "policy": ..., "baseline": ..., "judge": ..., "metric": ..., "value": ...,
                  "ci_low": ..., "ci_high": ..., "n": ..., "items": {"<item id>": <value>, ...} | null}, ...]}

The paper's reference rows (``run_id == "paper"``) are not results of the run and are left out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.io import atomic_write_text
from harness.regress.items import ItemVector, MetricKey, attach_vectors, iter_records, metric_id, results_dir_vectors

SNAPSHOT_FORMAT = "harness-regress-snapshot"
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class Metric:
    """One aggregate metric: ``value`` in the metric's unit, its 95 % interval (or None), ``n`` items,
    and ``items`` (item id -> per-item value, mean = value) when it is a paired metric."""

    key: MetricKey
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int
    items: ItemVector | None = None


@dataclass
class ResultSet:
    """Metrics by key, with where they came from (``source``) and what kind of input it was."""

    source: str
    kind: str  # run | results | snapshot
    metrics: dict[MetricKey, Metric] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _opt_str(rec: dict, name: str, where: str) -> str | None:
    v = rec.get(name)
    if v is not None and not isinstance(v, str):
        raise ValueError(f"{where}: field '{name}' should be a string or null, got {v!r}")
    return v


def _req_str(rec: dict, name: str, where: str) -> str:
    v = rec.get(name)
    if not isinstance(v, str) or not v:
        raise ValueError(f"{where}: field '{name}' should be a non-empty string, got {v!r}")
    return v


def _finite(rec: dict, name: str, where: str, optional: bool) -> float | None:
    v = rec.get(name)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where}: field '{name}' should be a finite number{' or null' if optional else ''}, got {v!r}")
    return float(v)


def _metric(rec: dict, where: str, items: ItemVector | None = None) -> Metric:
    key = MetricKey(_req_str(rec, "eval", where), _req_str(rec, "policy", where), _opt_str(rec, "baseline", where),
                    _opt_str(rec, "judge", where), _req_str(rec, "metric", where))
    n = rec.get("n", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{where}: field 'n' should be a non-negative integer, got {n!r}")
    return Metric(key, _finite(rec, "value", where, False), _finite(rec, "ci_low", where, True),
                  _finite(rec, "ci_high", where, True), n, items)


def _add(metrics: dict[MetricKey, Metric], m: Metric, where: str) -> None:
    if m.key in metrics:
        raise ValueError(f"{where}: metric {metric_id(m.key)} appears twice")
    metrics[m.key] = m


def load_results_file(path: str | Path, with_items: bool = True) -> ResultSet:
    """A ``results.jsonl`` of :class:`harness.records.ResultRow` lines; with ``with_items``, the
    ``<eval>_items.jsonl`` files beside it (same run) give the paired metrics their vectors.
    Raises ``ValueError`` naming file, line and field on a malformed row or a repeated metric."""
    path = Path(path)
    metrics: dict[MetricKey, Metric] = {}
    run_ids: set[str] = set()
    for where, rec in iter_records(path):
        if rec.get("run_id") == "paper":
            continue
        run_ids.add(str(rec.get("run_id")))
        _add(metrics, _metric(rec, where), where)
    if not metrics:
        raise ValueError(f"{path}: no result rows (besides the paper's reference values)")
    kind = "results"
    if with_items:
        vectors = attach_vectors({k: (m.value, m.n) for k, m in metrics.items()}, results_dir_vectors(path.parent))
        metrics = {k: Metric(m.key, m.value, m.ci_low, m.ci_high, m.n, vectors.get(k)) for k, m in metrics.items()}
        kind = "run" if vectors else "results"
    return ResultSet(str(path), kind, metrics, {"run_id": sorted(run_ids)[0] if len(run_ids) == 1 else sorted(run_ids)})


def load_snapshot(path: str | Path) -> ResultSet:
    """A snapshot written by :func:`write_snapshot`. Raises ``ValueError`` naming the file and the
    record (index in ``metrics``) and field when it is not one."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    if not isinstance(obj, dict) or obj.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"{path}: not a harness-regress snapshot (field 'format' should be {SNAPSHOT_FORMAT!r})")
    if obj.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"{path}: snapshot version {obj.get('version')!r}, this harness reads version {SNAPSHOT_VERSION}")
    recs = obj.get("metrics")
    if not isinstance(recs, list) or not recs:
        raise ValueError(f"{path}: field 'metrics' should be a non-empty list")
    metrics: dict[MetricKey, Metric] = {}
    for i, rec in enumerate(recs):
        where = f"{path}: metrics[{i}]"
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: expected an object, got {type(rec).__name__}")
        items = rec.get("items")
        if items is not None:
            if not isinstance(items, dict) or not items:
                raise ValueError(f"{where}: field 'items' should be a non-empty object of item id -> value, or null")
            for item_id, v in items.items():
                _finite(items, item_id, f"{where} items", False)
            items = {str(k): float(v) for k, v in items.items()}
        m = _metric(rec, where, items)
        if items is not None:
            mean = sum(items.values()) / len(items)
            if len(items) != m.n or not math.isclose(mean, m.value, rel_tol=1e-9, abs_tol=1e-12):
                raise ValueError(f"{where}: {len(items)} item values averaging {mean!r} do not give value {m.value!r} "
                                 f"over n={m.n}")
        _add(metrics, m, where)
    src = obj.get("source") if isinstance(obj.get("source"), dict) else {}
    return ResultSet(str(path), "snapshot", metrics, dict(src))


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
    """The snapshot JSON of ``results``: one metric per line, sorted by metric id, item ids sorted."""
    lines = []
    for key in sorted(results.metrics, key=metric_id):
        m = results.metrics[key]
        rec = {**key._asdict(), "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high, "n": m.n,
               "items": None if m.items is None else {i: m.items[i] for i in sorted(m.items)}}
        lines.append(json.dumps(rec, ensure_ascii=False))
    head = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "source": source or {}}
    body = ",\n".join("  " + line for line in lines)
    return json.dumps(head, ensure_ascii=False)[:-1] + ',\n "metrics": [\n' + body + "\n]}\n"


def write_snapshot(run_dir: str | Path, path: str | Path) -> Path:
    """Snapshot the run at ``run_dir`` (a run directory or results.jsonl) into ``path``, atomically.
    ``source`` records the run id, and from ``run.json`` the git commit and config hash when present."""
    results = load_result_set(run_dir)
    if results.kind == "snapshot":
        raise ValueError(f"{run_dir}: is already a snapshot; give the run directory")
    source: dict[str, Any] = {"run_id": results.info.get("run_id")}
    run_json = Path(run_dir) / "run.json"
    if run_json.is_file():
        try:
            info = json.loads(run_json.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{run_json}: invalid JSON at line {e.lineno}: {e.msg}") from e
        for k in ("git_commit", "config_hash", "seed"):
            if isinstance(info, dict) and info.get(k) is not None:
                source[k] = info[k]
    return atomic_write_text(path, snapshot_text(results, source))

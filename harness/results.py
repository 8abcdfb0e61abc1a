"""A run's results on disk: tidy rows, their declarations, a CSV beside them, and the paper's values.

Written by :func:`write_results` under ``<run dir>/results/``:

- ``results.jsonl``: one :class:`harness.records.ResultRow` per line (``slice`` a JSON object);
- ``results.csv``: the same rows as a tidy table (:func:`results_frame`: one column per slice key);
- ``metrics.json``: the metric declarations of every eval the rows belong to (:mod:`harness.declarations`),
  so the gate and the report read a run's own units and directions;
- ``paper_reference.jsonl``: the paper's reference values for those evals (:mod:`harness.evals.paper`),
  beside ours and never mixed into them.

:func:`read_results` is the one reader: it also opens the older shape (conditions packed into metric
names, the paper's rows inside ``results.jsonl`` with ``run_id="paper"``) through
:mod:`harness.results_upgrade`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.declarations import EvalDef, Metric
from harness.io import atomic_write_text, read_json, read_jsonl, write_json, write_jsonl
from harness.records import ResultRow
from harness.results_upgrade import is_old_row, upgrade_items, upgrade_row

COLUMNS = ("run_id", "policy", "eval", "metric", "value", "ci_low", "ci_high", "n", "config_hash", "eval_version")
"""The fixed columns of the tidy table; slice keys follow, one column each."""
PAPER_RUN_ID = "paper"


@dataclass
class RunResults:
    """What :func:`read_results` returns: our ``rows``, the paper's reference rows ``paper``, and
    ``declarations`` (eval -> its :class:`EvalDef` as declared: item id fields and metrics, no spec or run)
    for every eval of the rows."""

    rows: list[ResultRow]
    paper: list[ResultRow] = field(default_factory=list)
    declarations: dict[str, EvalDef] = field(default_factory=dict)

    def metric(self, row: ResultRow) -> Metric:
        """The declaration of ``row``'s metric; raises ``ValueError`` when its eval declares none of that name."""
        if row.eval not in self.declarations:
            raise ValueError(f"eval {row.eval!r} has no metric declarations")
        return self.declarations[row.eval].metric(row.metric)


def results_frame(rows: Iterable[ResultRow]) -> pd.DataFrame:
    """Rows as a tidy pandas table: the fixed :data:`COLUMNS`, then one column per slice key (sorted; ``None``
    where a row has no such key), and ``slice`` itself (the mapping). An empty input gives the columns only."""
    records = [{**{c: getattr(r, c) for c in COLUMNS}, **r.slice, "slice": dict(r.slice)} for r in rows]
    keys = sorted({k for r in records for k in r} - set(COLUMNS) - {"slice"})
    df = pd.DataFrame(records, columns=[*COLUMNS, *keys, "slice"], dtype=object)  # object: an int slice value stays int
    return df.where(df.notna(), None)


def declarations_json(evals: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The registered declarations of ``evals`` as JSON (``metrics.json``, snapshots): per eval ``title``,
    ``paper``, ``item_id`` and ``metrics`` (the version of what was measured is in every row, ``eval_version``)."""
    from harness import registry

    out = {}
    for name in sorted(set(evals)):
        defn: EvalDef = registry.get(name)
        out[name] = {"title": defn.title, "paper": defn.paper, **defn.declaration()}
    return out


def declarations_from_json(obj: Any, where: str) -> dict[str, EvalDef]:
    """:func:`declarations_json`'s inverse (declarations only: no spec or run). Raises ``ValueError`` naming
    ``where`` and the eval for a malformed entry."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object of eval -> declarations")
    out = {}
    for name, d in obj.items():
        if not isinstance(d, dict) or not isinstance(d.get("metrics"), dict):
            raise ValueError(f"{where}: {name}: expected {{item_id, metrics: {{name: declaration}}}}")
        metrics = tuple(Metric.from_dict(v, f"{where}: {name}.{m}") for m, v in d["metrics"].items())
        out[name] = EvalDef(name, metrics, tuple(d.get("item_id") or ()), title=str(d.get("title", "")),
                            paper=str(d.get("paper", "")))
    return out


def write_results(results_dir: str | Path, rows: list[ResultRow]) -> Path:
    """Write ``results.jsonl``, ``results.csv``, ``metrics.json`` and ``paper_reference.jsonl`` (the paper's
    values for the evals present) under ``results_dir``, atomically; returns the ``results.jsonl`` path.
    Raises ``ValueError`` for a row of an eval no module registered (an undeclared number)."""
    from harness.evals.paper import paper_rows

    results_dir = Path(results_dir)
    evals = {r.eval for r in rows}
    write_json(results_dir / "metrics.json", declarations_json(evals))
    write_jsonl(results_dir / "paper_reference.jsonl", paper_rows(evals))
    frame = results_frame(rows).drop(columns=["slice"])
    atomic_write_text(results_dir / "results.csv", frame.to_csv(index=False))
    return write_jsonl(results_dir / "results.jsonl", rows)


def _row(rec: dict[str, Any], where: str) -> ResultRow:
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    if is_old_row(rec):
        rec = upgrade_row(rec, where)
    fields = set(ResultRow.__dataclass_fields__)
    try:
        r = ResultRow(**{k: v for k, v in rec.items() if k in fields})
    except TypeError as e:
        raise ValueError(f"{where}: {e}") from e
    bad = [k for k in ("run_id", "policy", "eval", "metric") if not isinstance(getattr(r, k), str) or not getattr(r, k)]
    bad += [k for k in ("value", "ci_low", "ci_high") if not _is_num(getattr(r, k), k != "value")]
    if not isinstance(r.slice, dict):
        bad.append("slice")
    if isinstance(r.n, bool) or not isinstance(r.n, int) or r.n < 0:
        bad.append("n")
    if bad:
        raise ValueError(f"{where}: bad value for field(s) {', '.join(bad)}")
    return r


def _is_num(x: Any, optional: bool) -> bool:
    if x is None:
        return optional
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def read_rows(path: str | Path) -> list[ResultRow]:
    """Every row of a ``results.jsonl`` (old shapes upgraded). Raises ``ValueError`` naming file, line and
    field for a malformed record or a name the upgrade cannot read."""
    path = Path(path)
    out = []
    for i, rec in enumerate(read_jsonl(path), 1):
        out.append(_row(rec, f"{path}: record {i}"))
    return out


def read_results(path: str | Path) -> RunResults:
    """A run's results: ``path`` is a run directory, its ``results/`` folder or a ``results.jsonl``.

    The paper's rows come from ``paper_reference.jsonl`` beside it, or, in an older run, from the
    ``run_id == "paper"`` rows of ``results.jsonl``; declarations from ``metrics.json``, else from the
    registry. Raises ``FileNotFoundError`` when there is no ``results.jsonl`` and ``ValueError`` for
    malformed content or a row whose eval and metric nobody declares.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.jsonl" if (path / "results.jsonl").is_file() else path / "results" / "results.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such results file")
    rows = read_rows(path)
    ours = [r for r in rows if r.run_id != PAPER_RUN_ID]
    paper = [r for r in rows if r.run_id == PAPER_RUN_ID]
    ref = path.parent / "paper_reference.jsonl"
    if ref.is_file():
        paper += read_rows(ref)
    decl_path = path.parent / "metrics.json"
    declarations = declarations_from_json(read_json(decl_path), str(decl_path)) if decl_path.is_file() else {}
    missing = {r.eval for r in ours} - set(declarations)
    if missing:  # an older run: the registry's declarations of its evals
        declarations.update(declarations_from_json(declarations_json(missing), "registry"))
    out = RunResults(ours, paper, declarations)
    for i, r in enumerate(ours):
        try:
            out.metric(r)
        except ValueError as e:
            raise ValueError(f"{path}: row {i + 1} ({r.policy}): {e}") from None
    return out


def read_items(path: str | Path, eval_: str) -> list[dict[str, Any]]:
    """The per-item records of ``eval_`` in ``path`` (``<eval>_items.jsonl``), old shapes upgraded
    (:func:`harness.results_upgrade.upgrade_items`). Raises ``ValueError`` naming file and line on bad JSON."""
    return upgrade_items(eval_, read_jsonl(path))


def row_dict(r: ResultRow) -> dict[str, Any]:
    """A row as the plain dict ``results.jsonl`` holds."""
    return asdict(r)

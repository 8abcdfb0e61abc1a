"""What a result set was made from, and whether a run and its baseline were made from the same.

Three facts travel with every run and every snapshot:

- ``config_hash``: :func:`harness.runinfo.config_hash` of the run's config (the keys that affect
  results; output folders, caches and the data folder's location left out), carried by every row;
- ``data_fingerprints``: the sha256 of every data file the run read: the training data
  (``run.json`` ``data_fingerprints``) and, per eval, the files it read (``results/evals.json``
  ``evals.<name>.data_files``, keys ``eval:<name>:<file>``; the judges' validation sets
  ``eval:judge_validation:<file>``);
- ``eval_versions``: each eval's ``version`` (its spec's, carried by every row).

The gate (:mod:`harness.regress.app`) compares them before it compares any metric: a difference is an
error (exit 2) unless ``allow_mismatch`` names its kind, and the summary lists every difference
either way. A fact one side did not record (a version-1 snapshot, a results file without its run
directory) cannot be compared, and counts as a difference of that kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.io import read_json

KINDS = ("config_hash", "data_fingerprints", "eval_versions")
_SHOWN = 5  # keys named per difference; the rest are counted


@dataclass(frozen=True)
class Provenance:
    """The three facts of a result set; ``None`` where the source did not record one."""

    config_hash: str | None = None
    data_fingerprints: dict[str, str] | None = None
    eval_versions: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        """The snapshot's ``source`` fields (only those recorded)."""
        out: dict[str, Any] = {}
        if self.config_hash is not None:
            out["config_hash"] = self.config_hash
        if self.data_fingerprints is not None:
            out["data_fingerprints"] = dict(sorted(self.data_fingerprints.items()))
        if self.eval_versions is not None:
            out["eval_versions"] = dict(sorted(self.eval_versions.items()))
        return out


@dataclass(frozen=True)
class Difference:
    """One way the run's provenance differs from the baseline's: ``kind`` (one of :data:`KINDS`), a
    one-line ``detail`` naming what differs, and whether ``allow_mismatch`` ``allowed`` it."""

    kind: str
    detail: str
    allowed: bool = False

    @property
    def message(self) -> str:
        return f"{self.kind}: {self.detail}" + (" (allowed by allow_mismatch)" if self.allowed else "")


def _one(values: Iterable[str], what: str, where: str) -> str | None:
    found = sorted({v for v in values if v})
    if len(found) > 1:
        raise ValueError(f"{where}: rows carry {len(found)} different {what}s {found}: results of several runs mixed in one file")
    return found[0] if found else None


def _str_map(obj: Any, where: str) -> dict[str, str]:
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in obj.items()):
        raise ValueError(f"{where}: should be an object of name -> string")
    return dict(obj)


def from_results(results_file: str | Path, rows: Sequence[Any]) -> Provenance:
    """The provenance of a run's ``results.jsonl`` (``rows``: its :class:`harness.records.ResultRow` s):
    config hash and eval versions from the rows; data fingerprints from ``run.json`` (two folders up, the
    pipeline's) and ``evals.json`` (beside it), ``None`` when neither exists. Raises ``ValueError`` for rows
    of several configs, an eval with two versions, or a malformed ``run.json`` / ``evals.json``."""
    results_file = Path(results_file)
    chash = _one((r.config_hash for r in rows), "config hash", str(results_file))
    versions: dict[str, str] = {}
    for r in rows:
        v = versions.setdefault(r.eval, str(r.eval_version))
        if v != str(r.eval_version):
            raise ValueError(f"{results_file}: eval {r.eval!r} has rows of versions {v!r} and {r.eval_version!r}")
    fingerprints: dict[str, str] | None = None
    run_json = results_file.parent.parent / "run.json"
    if run_json.is_file():
        info = read_json(run_json)
        if isinstance(info, dict) and info.get("data_fingerprints") is not None:
            fingerprints = _str_map(info["data_fingerprints"], f"{run_json}: field 'data_fingerprints'")
    evals_json = results_file.parent / "evals.json"
    if evals_json.is_file():
        info = read_json(evals_json)
        sections = {**(info.get("evals") or {}), "judge_validation": info.get("judge_validation") or {}} if isinstance(info, dict) else {}
        for name, section in sections.items():
            if isinstance(section, dict) and section.get("data_files") is not None:
                files = _str_map(section["data_files"], f"{evals_json}: field 'evals.{name}.data_files'")
                fingerprints = {**(fingerprints or {}), **{f"eval:{name}:{k}": v for k, v in files.items()}}
    return Provenance(chash, fingerprints, versions or None)


def from_source(source: dict[str, Any], where: str) -> Provenance:
    """The provenance recorded in a snapshot's ``source`` object (missing fields: ``None``)."""
    fp, ev = source.get("data_fingerprints"), source.get("eval_versions")
    chash = source.get("config_hash")
    if chash is not None and not isinstance(chash, str):
        raise ValueError(f"{where}: field 'source.config_hash' should be a string, got {chash!r}")
    return Provenance(chash, None if fp is None else _str_map(fp, f"{where}: field 'source.data_fingerprints'"),
                      None if ev is None else _str_map(ev, f"{where}: field 'source.eval_versions'"))


def _keys(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def _map_difference(run: dict[str, str], base: dict[str, str], what: str) -> str | None:
    changed = sorted(k for k in set(run) & set(base) if run[k] != base[k])
    only_base, only_run = sorted(set(base) - set(run)), sorted(set(run) - set(base))
    parts = []
    if changed:
        parts.append(f"{len(changed)} {what} differ ({_keys([f'{k}: {base[k][:12]} → {run[k][:12]}' for k in changed])})")
    if only_base:
        parts.append(f"{len(only_base)} only in the baseline ({_keys(only_base)})")
    if only_run:
        parts.append(f"{len(only_run)} only in the run ({_keys(only_run)})")
    return "; ".join(parts) or None


def differences(run: Provenance, baseline: Provenance, evals: Iterable[str], allow: Iterable[str] = ()) -> list[Difference]:
    """Every way ``run`` differs from ``baseline``, in :data:`KINDS` order. ``evals``: the evals both sides
    have metrics of (eval versions are compared for those); ``allow``: kinds whose differences are
    allowed. A fact missing on either side is a difference of its kind. Raises ``ValueError`` for an
    unknown kind in ``allow``."""
    allow = set(allow)
    unknown = allow - set(KINDS)
    if unknown:
        raise ValueError(f"allow_mismatch: unknown kind(s) {sorted(unknown)}; use any of {list(KINDS)}")
    out: list[Difference] = []

    def add(kind: str, detail: str | None) -> None:
        if detail:
            out.append(Difference(kind, detail, kind in allow))

    for kind in KINDS:
        r, b = getattr(run, kind), getattr(baseline, kind)
        if r is None or b is None:
            side = " and ".join(s for s, v in (("the baseline", b), ("the run", r)) if v is None)
            add(kind, f"not recorded by {side}, so it cannot be compared")
        elif kind == "config_hash":
            add(kind, None if r == b else f"baseline {b}, run {r} (the runs were made with different configs)")
        elif kind == "data_fingerprints":
            add(kind, _map_difference(r, b, "data files"))
        else:
            common = set(evals)
            add(kind, _map_difference({k: v for k, v in r.items() if k in common}, {k: v for k, v in b.items() if k in common},
                                      "eval versions"))
    return out


@dataclass
class ProvenanceCheck:
    """The outcome of comparing provenances: the differences found, and whether any is not allowed."""

    differences: list[Difference] = field(default_factory=list)

    @property
    def failed(self) -> list[Difference]:
        return [d for d in self.differences if not d.allowed]

    def error(self) -> str | None:
        """One line for the differences not allowed (None when there are none)."""
        if not self.failed:
            return None
        kinds = sorted({d.kind for d in self.failed})
        return ("run and baseline were not made the same way: " + "; ".join(d.message for d in self.failed)
                + f". Refresh the baseline (harness-regress snapshot=true) or, to compare anyway, allow_mismatch=[{','.join(kinds)}]")

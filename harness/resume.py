"""Honest resumes: ``resume=true`` continues a run only with the config it started with.

Every run records its resolved config in ``<run dir>/run_record.json`` when it starts. A resume
compares the newly composed config with that record; a change in any key that affects results
(everything but :data:`harness.runinfo.NOT_RESULT_KEYS`) is refused, naming the keys, unless
``resume_allow_changes=true``, in which case the change is accepted and appended to the record's
``resumes`` list (the pipeline's ``run.json`` also carries the flag in its config).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from harness.errors import ResumeMismatchError
from harness.io import read_json, write_json
from harness.runinfo import result_keys

RECORD_FILE = "run_record.json"
_SHOWN = 8  # changed keys named in the error; the rest are counted


def result_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` for every key that differs, added or removed
    (``"<absent>"``), except :data:`~harness.runinfo.NOT_RESULT_KEYS`; sorted by key."""
    a, b = result_keys(old), result_keys(new)
    return {k: (a.get(k, "<absent>"), b.get(k, "<absent>")) for k in sorted(set(a) | set(b))
            if a.get(k, "<absent>") != b.get(k, "<absent>")}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def record_start(run_dir: str | Path, config: dict[str, Any], resume: bool, allow_changes: bool,
                 overrides: list[str] | None = None) -> str | None:
    """Record (a fresh run) or check and record (``resume``) the config of a run in ``run_dir``.

    A fresh run, or a resume with nothing recorded yet, writes a new ``run_record.json``. A resume
    compares ``config`` with the recorded one (or, for a run recorded before this file existed, the
    config in ``<run_dir>/run.json``). Returns a warning to print, or None. Raises
    :class:`ResumeMismatchError` naming each changed key with its old and new value when keys that
    affect results changed and ``allow_changes`` is false.
    """
    run_dir = Path(run_dir)
    path = run_dir / RECORD_FILE
    entry = {"time": _now(), "overrides": list(overrides or [])}
    previous = read_json(path) if path.is_file() else None
    if previous is None and (run_dir / "run.json").is_file():
        previous = {"config": read_json(run_dir / "run.json").get("config") or {}, "started": None, "resumes": []}
    if not resume or previous is None:
        write_json(path, {"started": entry["time"], "overrides": entry["overrides"], "config": config, "resumes": []})
        if resume and (run_dir / "checkpoints").is_dir():
            return (f"resume=true, but {run_dir} has no {RECORD_FILE} to compare the config with (a run from before it "
                    "existed): resuming unchecked; this run's config is recorded from now on")
        return None
    changes = result_changes(previous.get("config") or {}, config)
    if changes and not allow_changes:
        shown = ", ".join(f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in list(changes.items())[:_SHOWN])
        more = f" and {len(changes) - _SHOWN} more" if len(changes) > _SHOWN else ""
        raise ResumeMismatchError(f"resume=true, but keys that affect results differ from the run recorded in {path}: "
                                  f"{shown}{more}; resume with the recorded values, or add resume_allow_changes=true to "
                                  "accept the change (it is recorded)")
    entry["changes"] = {k: list(v) for k, v in changes.items()}
    previous.setdefault("resumes", []).append(entry)
    previous["config"] = config
    write_json(path, previous)
    return None

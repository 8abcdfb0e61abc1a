"""``error.json``: what a failed run records in its own directory, so a sweep report can list it.

Hydra 1.3 runs every job of a multirun batch whatever the others do (``hydra.core.utils.run_job``
stores a raised ``Exception`` in the job's ``JobReturn``), then the sweeper re-raises the first
failure after the batch, so the multirun command exits non-zero. The traceback it prints is the
only trace of the failure unless the job writes one itself: :func:`record_failure` does, in the job
directory, beside ``.hydra/overrides.yaml`` (the job's parameters).
"""

from __future__ import annotations

import datetime as dt
import traceback
from pathlib import Path
from typing import Any

from harness.io import read_json, write_json

ERROR_FILE = "error.json"
FIELDS = ("type", "message", "traceback", "time")


def error_type(exc: BaseException) -> str:
    """``ValueError`` for builtins, ``module.QualName`` otherwise (e.g. ``omegaconf.errors.MissingMandatoryValue``)."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def record_failure(job_dir: str | Path, exc: BaseException, overrides: list[str] | None = None) -> Path:
    """Write ``<job_dir>/error.json`` atomically: ``type``, ``message`` (``str(exc)``), ``traceback``
    (the formatted exception with its chain), ``time`` (UTC, ISO 8601) and the job's Hydra
    ``overrides`` when given. Returns the path."""
    info: dict[str, Any] = {
        "type": error_type(exc),
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if overrides is not None:
        info["overrides"] = list(overrides)
    return write_json(Path(job_dir) / ERROR_FILE, info)


def clear_failure(job_dir: str | Path) -> None:
    """Remove a stale ``error.json`` (a rerun in the same directory starts clean)."""
    (Path(job_dir) / ERROR_FILE).unlink(missing_ok=True)


def read_failure(path: str | Path) -> dict[str, Any]:
    """Read an ``error.json``. Raises ``ValueError`` naming the file on bad JSON, a non-object, or a
    missing / non-string field among :data:`FIELDS` (``traceback`` and ``time`` may be absent)."""
    path = Path(path)
    info = read_json(path)
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(info).__name__}")
    for key in FIELDS:
        required = key in ("type", "message")
        if (required and key not in info) or (key in info and not isinstance(info[key], str)):
            raise ValueError(f"{path}: field '{key}' must be a string" + (" (required)" if required else ""))
    return info

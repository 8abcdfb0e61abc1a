"""What makes a run reproducible: config, git commit, data fingerprints, seed, versions -> ``run.json``."""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from harness.io import to_jsonable, write_json

REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """HEAD of the harness's own checkout, suffixed ``-dirty`` with uncommitted changes; ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# keys that only say where things go, how often state is saved, how a run is labelled and logged, which device
# computes (the weights' dtype, which does change results, is a result key): they change no result, so neither a
# resume (harness/resume.py) nor the config hash looks at them
NOT_RESULT_KEYS = ("resume", "resume_allow_changes", "out_dir", "run_id", "tracking", "tracking.*", "*cache_dir",
                   "*save_steps", "*keep_checkpoints", "device")
# where the data lies (the data folder, an outputs file's path): its content is what counts, and run.json /
# evals.json fingerprint it file by file
DATA_LOCATION_KEYS = ("data.data_dir", "policies.*.outputs")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": leaf}`` (lists are leaves); an empty dict is a leaf too."""
    if not isinstance(obj, dict) or not obj:
        return {prefix.rstrip("."): obj} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in obj.items():
        out.update(flatten(v, f"{prefix}{k}."))
    return out


def result_keys(config: Any, exclude: tuple[str, ...] = NOT_RESULT_KEYS) -> dict[str, Any]:
    """``config`` flattened to ``{dotted key: value}`` without the keys matching a glob of ``exclude``."""
    return {k: v for k, v in flatten(to_jsonable(config)).items() if not any(fnmatch.fnmatchcase(k, p) for p in exclude)}


def config_hash(config: Any) -> str:
    """Short sha256 (12 hex digits) of the keys of ``config`` that affect results: everything but
    :data:`NOT_RESULT_KEYS` and :data:`DATA_LOCATION_KEYS`, as canonical JSON. Two runs of one config in
    other directories, on other machines, with other caches get the same hash; the regression gate
    compares it between a run and its baseline (docs/regression.md)."""
    blob = json.dumps(result_keys(config, NOT_RESULT_KEYS + DATA_LOCATION_KEYS), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    import torch
    import transformers

    out = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}
    try:
        import lm_eval

        out["lm_eval"] = getattr(lm_eval, "__version__", "")
    except ImportError:
        pass
    return out


def write_run_info(
    out_dir: str | Path, stage: str, config: Any, data_fingerprints: dict[str, str], metrics: dict[str, Any], **extra: Any
) -> Path:
    """Write ``<out_dir>/run.json`` atomically and return its path."""
    info = {
        "stage": stage,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "config_hash": config_hash(config),
        "config": config,
        "data_fingerprints": data_fingerprints,
        "metrics": metrics,
        "versions": versions(),
        **extra,
    }
    return write_json(Path(out_dir) / "run.json", info)

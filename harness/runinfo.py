"""What makes a run reproducible: config, git commit, data fingerprints, seed, versions -> ``run.json``."""

from __future__ import annotations

import datetime as dt
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


def config_hash(config: Any) -> str:
    """Short sha256 of a config's canonical JSON (sorted keys): equal configs, equal hashes."""
    blob = json.dumps(to_jsonable(config), sort_keys=True)
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

"""lm-eval results cached per (model weights, task, limit, shots): a re-evaluation of an unchanged checkpoint
runs no lm-eval task again.

One JSON file per key under ``<model.cache_dir>/lm_eval/``: the task's aggregates and per-item records as
:func:`harness.evals.lm_eval_runner.run_lm_eval` returned them, and the data files the run read (replayed
into the open :func:`harness.data.recording_reads` blocks on a hit, so ``results/evals.json`` records the
same ``data_files`` either way). The key covers the policy's weights hash, the task, ``limit``, the number
of few-shot examples, the seed, the lm-eval version, the bytes of the harness's task definitions and
whether the data came from the local mirror or the hub. Writes are atomic; two runs writing one key
write the same content.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness.io import read_json, write_json

_TASKS_HASH: str | None = None


def _tasks_hash() -> str:
    """sha256 over the harness's lm-eval task files (names and bytes), computed once per process."""
    global _TASKS_HASH
    if _TASKS_HASH is None:
        from harness.evals.lm_eval_runner import TASKS_DIR

        h = hashlib.sha256()
        for f in sorted(p for p in TASKS_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(f.relative_to(TASKS_DIR).as_posix().encode())
            h.update(f.read_bytes())
        _TASKS_HASH = h.hexdigest()
    return _TASKS_HASH


class LMEvalCache:
    """``get``/``put`` of one task's lm-eval results under ``root`` (``None``: no cache, every ``get`` misses)."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root else None
        self.hits = self.misses = 0

    def _path(self, fingerprint: str, task: str, limit: int | None, shots: int | None, seed: int, local: bool) -> Path | None:
        if self.root is None:
            return None
        blob = {"model": fingerprint, "task": task, "limit": limit, "shots": shots, "seed": seed, "local_data": local,
                "lm_eval": version("lm_eval"), "tasks": _tasks_hash()}
        key = hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()
        return self.root / f"{task}-{key[:24]}.json"

    def get(self, fingerprint: str, task: str, limit: int | None, shots: int | None, seed: int,
            local: bool) -> tuple[dict[str, float], list[dict], dict[str, str]] | None:
        """``(aggregates, items, data_files)`` stored for the key, or ``None`` (counted as a miss)."""
        path = self._path(fingerprint, task, limit, shots, seed, local)
        if path is None or not path.is_file():
            self.misses += 1
            return None
        stored: dict[str, Any] = read_json(path)
        self.hits += 1
        return stored["aggregates"], stored["items"], stored["data_files"]

    def put(self, fingerprint: str, task: str, limit: int | None, shots: int | None, seed: int, local: bool,
            aggregates: dict[str, float], items: list[dict], data_files: dict[str, str]) -> None:
        """Store one task's results (atomically); a no-op without a cache root."""
        path = self._path(fingerprint, task, limit, shots, seed, local)
        if path is not None:
            write_json(path, {"task": task, "limit": limit, "shots": shots, "aggregates": aggregates, "items": items,
                              "data_files": data_files})

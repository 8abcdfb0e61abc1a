"""Resumable training state, written every N optimiser steps and read back with ``resume=true``.

A training-state checkpoint is a folder ``<out_dir>_state/step-<N>/`` holding what
``accelerate.Accelerator.save_state`` writes (every prepared model, optimiser and lr scheduler,
and the python / numpy / torch RNG states of every process) plus ``trainer_state.json``: the
optimiser step, the per-step losses so far and whatever the trainer adds (the data position is
the step number, because every trainer replays its seeded data order; PPO adds the KL
controller's beta). It is written to ``step-<N>.tmp`` and renamed, so a run killed while saving
leaves the previous checkpoint intact and resume never reads a half-written one.

These are not the Hugging Face checkpoints later stages load (those are ``<out_dir>/``, written
once at the end by :func:`trainers.common.save_checkpoint`); they exist only to resume.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from harness.io import apply_umask, read_json, write_json, write_jsonl

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def state_root(out_dir: str | Path) -> Path:
    """``<out_dir>_state``: where the training-state checkpoints of the run writing ``out_dir`` live."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + "_state")


def latest_state(root: str | Path) -> Path | None:
    """The complete ``step-<N>`` folder with the largest N under ``root`` (``None`` if there is none)."""
    root = Path(root)
    if not root.is_dir():
        return None
    done = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()]
    return max(done)[1] if done else None


def save_state(accelerator, root: str | Path, step: int, trainer_state: dict[str, Any], keep: int = 1) -> Path:
    """Write the full training state at optimiser step ``step``; keep only the newest ``keep`` folders.

    Must be called on every process (``save_state`` gathers each process's RNG state).
    Returns the ``step-<N>`` folder.
    """
    root = Path(root)
    final, tmp = root / f"step-{step:08d}", root / f"step-{step:08d}.tmp"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        apply_umask(tmp)  # safetensors writes weights 0600
        write_json(tmp / STATE_FILE, {**trainer_state, "step": step})
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        older = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p != final)
        for _, p in older[: max(len(older) - keep + 1, 0)]:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_state(accelerator, path: str | Path) -> dict[str, Any]:
    """Restore models, optimisers, schedulers and RNGs from ``path``; returns its ``trainer_state.json``."""
    path = Path(path)
    state = read_json(path / STATE_FILE)
    accelerator.load_state(str(path))
    return state


def trim_log(log_path: str | Path | None, step: int) -> None:
    """Drop lines of a per-step JSONL log after ``step``: a killed run may have logged past its last checkpoint.

    A last line cut short by the kill (no newline at its end) is dropped too: a step's line is
    written before that step's checkpoint, so it belongs to a step after ``step``.
    """
    if log_path is None or not Path(log_path).is_file():
        return
    text = Path(log_path).read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    write_jsonl(log_path, [r for r in (json.loads(line) for line in text.splitlines() if line.strip()) if r.get("step", 0) <= step])

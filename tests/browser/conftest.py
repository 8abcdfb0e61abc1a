"""A smoke pipeline run (model=tiny) for the browser checks, made once per session."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("browser_smoke") / "run"
    exe = Path(sys.executable).parent / "harness-pipeline"
    proc = subprocess.run([str(exe), "pipeline=smoke", f"hydra.run.dir={run_dir}"], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "HF_HOME": str(run_dir.parent / "hf")}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.fixture
def smoke_run_copy(smoke_run, tmp_path) -> Path:
    """A private copy of the smoke run that a test may modify."""
    dst = tmp_path / "run"
    shutil.copytree(smoke_run, dst, ignore=shutil.ignore_patterns("checkpoints", "cache"))
    for run in ("ppo", "ppo_ptx"):  # the report reads only the training logs of the checkpoints
        log = smoke_run / "checkpoints" / run / "train_log.jsonl"
        if log.is_file():
            (dst / "checkpoints" / run).mkdir(parents=True, exist_ok=True)
            shutil.copy(log, dst / "checkpoints" / run / "train_log.jsonl")
    return dst

"""Running the console scripts from tests: in a subprocess, so Hydra's logging set-up stays out of the
test process; small model=tiny command lines shared by the bad-input and exclusive-run tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATA = Path(os.environ.get("HARNESS_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
TINY = ["model=tiny"]
SFT = [*TINY, "data.n_sft_train=4", "data.n_sft_val=1", "sft.batch_size=4", "sft.max_length=32", "sft.max_prompt_length=16"]
RM = [*TINY, "init_from={tiny}", "data.n_rm_train=4", "data.n_rm_val=4", "rm.max_length=32", "rm.max_prompt_length=16"]
PPO = [*TINY, "policy={tiny}", "reward_model={tiny}", "ppo.steps=1", "ppo.batch_size=2", "ppo.mini_batch_size=2"]
EVAL = [*TINY, "+policies.base={tiny}", "eval.run=[winrate]"]
LABEL = [*TINY, "policy={tiny}", "judge.kind=word_count"]
SMOKE = ["pipeline=smoke"]


def run_app(app: str, args: list[str], run_dir: Path | None, env: dict[str, str] | None = None,
            cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``<app> <args> [hydra.run.dir=<run_dir>]`` through the installed console script, in a subprocess
    (Hydra's logging set-up stays out of the test process). The timeout is only a hang guard."""
    cmd = [str(BIN / app), *args] + ([f"hydra.run.dir={run_dir}"] if run_dir is not None else [])
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800, env={**os.environ, **(env or {})})


def last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""

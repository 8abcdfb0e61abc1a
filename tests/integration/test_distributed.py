"""The trainers under ``accelerate launch`` with 2 CPU processes (DDP over gloo).

2 processes with gradient accumulation A take the same optimiser steps, on the same
micro-batches, as 1 process with accumulation 2A (trainers.common.plan_epoch), so their loss
curves must agree up to float reduction order. PPO, whose episodes differ per process, must run,
count both processes' episodes and save one checkpoint.
"""

import os
import socket
import subprocess
from pathlib import Path

import pytest

from harness.io import read_json, read_jsonl

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.sys.executable).parent
SMALL = ["model=tiny", "data.n_sft_train=16", "data.n_sft_val=2", "data.n_rm_train=16", "data.n_rm_val=4", "data.n_ppo_prompts=8"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(processes: int, app: str, run_dir: Path, *overrides: str) -> None:
    cmd = [str(BIN / app), *SMALL, *overrides, f"hydra.run.dir={run_dir}"]
    env = dict(os.environ)
    if processes > 1:
        # accelerate launches CPU DDP through its multi-GPU launcher when ACCELERATE_USE_CPU is set (docs/distributed.md)
        cmd = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()), *cmd]
        env.update(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"{app} failed:\n{proc.stderr[-4000:]}"


@pytest.mark.parametrize("app,stage,args", [
    ("harness-sft", "sft", ["sft.batch_size=2", "sft.lr=1e-3", "sft.epochs=2", "sft.max_length=64", "sft.max_prompt_length=32"]),
    ("harness-rm", "rm", ["split=rm", "rm.batch_size=2", "rm.lr=1e-3", "rm.epochs=2", "rm.warmup_ratio=0", "rm.max_length=64", "rm.max_prompt_length=32"]),
])
def test_two_processes_match_one_process_with_double_accumulation(tiny_dir, tmp_path, app, stage, args):
    _run(1, app, tmp_path / "one", f"init_from={tiny_dir}", *args, f"{stage}.grad_accum=4")
    _run(2, app, tmp_path / "two", f"init_from={tiny_dir}", *args, f"{stage}.grad_accum=2")
    one = read_jsonl(tmp_path / "one" / "checkpoints" / f"{stage}_train_log.jsonl")
    two = read_jsonl(tmp_path / "two" / "checkpoints" / f"{stage}_train_log.jsonl")
    assert len(one) == len(two) == 4  # 16 items / (2 x 4) per step, 2 epochs
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=2e-3)
    assert [r["lr"] for r in two] == pytest.approx([r["lr"] for r in one], rel=1e-6)
    assert one[-1]["loss"] != one[0]["loss"]  # the curve moved
    assert (tmp_path / "two" / "checkpoints" / stage / "run.json").is_file()


# 2: one minibatch, so the first update reuses the rollout's forward; with the leave-one-out baseline, so the stage builds
# no value model and each process samples its one prompt of the iteration twice (its baseline is its own other sample)
@pytest.mark.parametrize("mini_batch_size,estimator", [(1, "gae"), (2, "rloo")])
def test_ppo_runs_on_two_processes(tiny_dir, tmp_path, mini_batch_size, estimator):
    rloo = ["ppo.advantage_estimator=rloo", "ppo.samples_per_prompt=2"] if estimator == "rloo" else []
    _run(2, "harness-ppo", tmp_path / "ppo", f"policy={tiny_dir}", f"reward_model={tiny_dir}", "ppo.steps=2", "ppo.batch_size=2",
         f"ppo.mini_batch_size={mini_batch_size}", "ppo.max_new_tokens=4", "ppo.max_prompt_length=32", "ppo.ptx_coef=0.5", "ppo.ptx_batch_size=1",
         "ppo.ptx_max_length=32", *rloo)
    log = read_jsonl(tmp_path / "ppo" / "checkpoints" / "ppo_ptx_train_log.jsonl")
    assert [r["episodes"] for r in log] == [4, 8]  # 2 processes x 2 episodes per iteration
    assert all(r["ptx_loss"] is not None and r["ptx_loss"] > 0 for r in log)
    assert all(("value_loss" in r) == (estimator == "gae") for r in log)
    # per process: one per minibatch update (2 iterations x 1 epoch x 2 or 1 minibatches)
    assert read_json(tmp_path / "ppo" / "checkpoints" / "ppo_ptx" / "run.json")["metrics"]["ptx_forwards"] == 4 // mini_batch_size


"""Kill a training run mid-way, resume it, and get the run that was never interrupted.

SFT is killed for real (SIGKILL to the ``harness-sft`` process once its first training-state
checkpoint is on disk); the RM is interrupted in-process by an exception at an optimiser step;
PPO (which has no lr schedule) resumes a 2-iteration run's state into a 4-iteration run.
"""

import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from harness.config import PPOConfig, ProbeConfig, RMConfig
from harness.io import read_json, read_jsonl
from harness.models import load_policy, load_scalar_model, load_tokenizer
from harness.records import Comparison, Prompt
from trainers.checkpointing import latest_state
from trainers.ppo import PPOTrainer
from trainers.reward_model import RewardModelTrainer

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.sys.executable).parent


def _sft_cmd(tiny_dir, run_dir: Path, *extra: str) -> list[str]:
    return [str(BIN / "harness-sft"), "model=tiny", f"init_from={tiny_dir}", "data.n_sft_train=16", "data.n_sft_val=4",
            "sft.epochs=4", "sft.batch_size=2", "sft.lr=1e-3", "sft.max_length=64", "sft.max_prompt_length=32",
            "sft.save_steps=2", "sft.select_by=loss", "sft.eval_steps=8", f"hydra.run.dir={run_dir}", *extra]


def test_sft_killed_mid_run_resumes_to_the_same_final_loss(tiny_dir, tmp_path):
    full = subprocess.run(_sft_cmd(tiny_dir, tmp_path / "full"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr[-3000:]
    full_log = read_jsonl(tmp_path / "full" / "checkpoints" / "sft_train_log.jsonl")
    total = len(full_log)
    assert total == 4 * 8

    run = tmp_path / "killed"
    state_dir = run / "checkpoints" / "sft_state"
    proc = subprocess.Popen(_sft_cmd(tiny_dir, run), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while latest_state(state_dir) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = read_json(latest_state(state_dir) / "trainer_state.json")["step"]
    assert 2 <= killed_at < total, "the run must be killed mid-way for this test to mean anything"
    assert not (run / "checkpoints" / "sft" / "run.json").exists()

    resumed = subprocess.run(_sft_cmd(tiny_dir, run, "resume=true"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = read_jsonl(run / "checkpoints" / "sft_train_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, total + 1))  # no step lost or logged twice
    for a, b in zip(full_log, log):
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-4, abs_tol=1e-5), (a, b)
        assert math.isclose(a["lr"], b["lr"], rel_tol=1e-6)
    m_full = read_json(tmp_path / "full" / "checkpoints" / "sft" / "run.json")["metrics"]
    m_res = read_json(run / "checkpoints" / "sft" / "run.json")["metrics"]
    assert m_res["selected_step"] == m_full["selected_step"]
    assert math.isclose(m_res["train_loss_last"], m_full["train_loss_last"], rel_tol=1e-4)
    assert math.isclose(m_res["val_loss"], m_full["val_loss"], rel_tol=1e-4)
    assert m_full["train_loss_last"] < m_full["train_loss_first"]  # it did train


class _Interrupt(Exception):
    pass


def _comparisons(n: int) -> list[Comparison]:
    return [Comparison(str(i), f"\n\nHuman: question {i}?\n\nAssistant:", ("good good answer", "bad"), (0, 1), "t") for i in range(n)]


@pytest.mark.parametrize("length_term", [False, True])
def test_reward_model_interrupted_and_resumed_matches_uninterrupted(tiny_dir, tmp_path, length_term):
    tok = load_tokenizer(tiny_dir)
    cfg = RMConfig(lr=1e-3, epochs=2, batch_size=2, max_length=48, max_prompt_length=32, save_steps=2, warmup_ratio=0.25,
                   length_term=length_term)
    data = _comparisons(8)

    def trainer():
        return RewardModelTrainer(cfg, load_scalar_model(tiny_dir), tok, data, data[:2], chat_template="false", seed=3)

    full = trainer().train(log_path=tmp_path / "full.jsonl", state_dir=tmp_path / "full_state")

    first = trainer()
    inner, calls = first.opt.optimizer, []
    real_step = inner.step

    def crash_at_step_5(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise _Interrupt
        return real_step(*args, **kwargs)

    inner.step = crash_at_step_5
    with pytest.raises(_Interrupt):
        first.train(log_path=tmp_path / "run.jsonl", state_dir=tmp_path / "state")
    assert read_json(latest_state(tmp_path / "state") / "trainer_state.json")["step"] == 4
    resumed = trainer().train(log_path=tmp_path / "run.jsonl", state_dir=tmp_path / "state", resume=True)
    assert len(resumed.train_losses) == len(full.train_losses) == 8
    assert resumed.train_losses == pytest.approx(full.train_losses, rel=1e-5)
    assert [r["step"] for r in read_jsonl(tmp_path / "run.jsonl")] == list(range(1, 9))
    assert resumed.val_accuracy == full.val_accuracy
    assert resumed.length_coef == full.length_coef and (full.length_coef is not None) == length_term


def _ppo_trainer(tiny_dir, steps: int, rloo: bool = False) -> PPOTrainer:
    tok = load_tokenizer(tiny_dir)
    estimator = {"advantage_estimator": "rloo", "samples_per_prompt": 2} if rloo else {}
    cfg = PPOConfig(steps=steps, batch_size=4, mini_batch_size=2, max_new_tokens=6, lr=1e-3, value_lr=1e-3, max_prompt_length=32,
                    kl_control="adaptive", kl_target=0.5, kl_horizon=100.0, save_steps=2, probe=ProbeConfig(prompts=2, samples=2, every=2),
                    **estimator)
    reward_model = load_scalar_model(tiny_dir)
    torch.manual_seed(1)
    torch.nn.init.normal_(reward_model.score.weight, std=0.5)
    prompts = [Prompt(str(i), f"Tell me about topic {i}.", "t") for i in range(6)]
    probe = [Prompt(f"probe{i}", f"Say something about thing {i}.", "t") for i in range(2)]
    return PPOTrainer(cfg, load_policy(tiny_dir), load_policy(tiny_dir), reward_model, None if rloo else load_scalar_model(tiny_dir),
                      tok, prompts, chat_template="false", seed=0, probe_prompts=probe)


@pytest.mark.parametrize("rloo", [False, True], ids=["gae", "rloo"])
def test_ppo_resumed_from_step_2_equals_an_uninterrupted_run(tiny_dir, tmp_path, rloo):
    """With rloo each step takes 2 prompts of the 6 twice each, so steps 3-4 wrap around the prompt cycle after a resume."""
    full_trainer = _ppo_trainer(tiny_dir, 4, rloo)
    full = full_trainer.train(state_dir=tmp_path / "full_state")
    _ppo_trainer(tiny_dir, 2, rloo).train(state_dir=tmp_path / "state")  # stops after step 2, as if killed there
    resumed_trainer = _ppo_trainer(tiny_dir, 4, rloo)
    resumed = resumed_trainer.train(state_dir=tmp_path / "state", resume=True)
    assert [h["step"] for h in resumed] == [1, 2, 3, 4]
    for key in ("reward_mean", "kl", "beta", "policy_loss") + (() if rloo else ("value_loss",)):
        assert [h[key] for h in resumed] == pytest.approx([h[key] for h in full], rel=1e-4, abs=1e-6), key
    assert full[-1]["beta"] != full[0]["beta"]  # the adaptive controller moved, and resume restored it
    # the probe's points (before training, after steps 2 and 4): restored from the state, then the same after it
    assert [p.step for p in resumed_trainer.probes] == [p.step for p in full_trainer.probes] == [0, 2, 4]
    for got, want in zip(resumed_trainer.probes, full_trainer.probes):
        assert (got.reward_mean, got.kl) == pytest.approx((want.reward_mean, want.kl), rel=1e-4, abs=1e-6)
    assert full_trainer.probes[0].kl == pytest.approx(0.0, abs=1e-6) and full_trainer.probes[-1].kl != 0.0
    a = dict(full_trainer.accelerator.unwrap_model(full_trainer.policy).named_parameters())
    for name, p in resumed_trainer.accelerator.unwrap_model(resumed_trainer.policy).named_parameters():
        assert torch.allclose(p, a[name], atol=1e-5), name

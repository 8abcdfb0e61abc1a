"""PPO optimises: on model=tiny with a checkable reward, the mean reward rises while KL stays bounded."""

import random

import pytest
import torch

from harness.config import PPOConfig, SFTConfig
from harness.models import load_policy, load_scalar_model, load_tokenizer
from harness.records import Demonstration, Prompt
from trainers.ppo import PPOTrainer
from trainers.rewards import TokenSetFrequencyReward
from trainers.sft import SFTTrainer

pytestmark = pytest.mark.integration
PROMPTS = [Prompt(str(i), f"Answer {i}.", "t") for i in range(32)]


@pytest.fixture(scope="module")
def yes_no_policy(tiny_dir, tmp_path_factory):
    """model=tiny fine-tuned to answer with a random mix of ' yes' and ' no', so ' yes' is sampled often."""
    tok = load_tokenizer(tiny_dir)
    rng = random.Random(0)
    demos = [Demonstration(str(i), f"Answer {i}.", " ".join(rng.choice(["yes", "no"]) for _ in range(8)), "t") for i in range(32)]
    cfg = SFTConfig(lr=1e-2, epochs=4, batch_size=8, warmup_ratio=0.0, max_length=40, max_prompt_length=16)
    sft = SFTTrainer(cfg, load_policy(tiny_dir), tok, demos, [], chat_template="false")
    sft.train(tmp_path_factory.mktemp("yn"))
    out = tmp_path_factory.mktemp("yes_no") / "policy"
    sft.accelerator.unwrap_model(sft.model).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out), tok(" yes")["input_ids"][0]


def _run(policy_dir, yes_id, lr, **overrides):
    tok = load_tokenizer(policy_dir)
    cfg = PPOConfig(steps=15, batch_size=16, mini_batch_size=8, ppo_epochs=2, max_new_tokens=8, lr=lr, value_lr=3e-4,
                    beta=0.05, max_prompt_length=16, **overrides)
    value_model = None if cfg.advantage_estimator == "rloo" else load_scalar_model(policy_dir)
    trainer = PPOTrainer(cfg, load_policy(policy_dir), load_policy(policy_dir), TokenSetFrequencyReward(yes_id, yes_id + 1),
                         value_model, tok, PROMPTS, chat_template="false", seed=0,
                         gold_reward=TokenSetFrequencyReward(0, yes_id))
    return trainer, trainer.train()


def test_ppo_raises_a_checkable_reward_with_bounded_kl(yes_no_policy):
    policy_dir, yes = yes_no_policy
    _, hist = _run(policy_dir, yes, lr=3e-4)
    _, frozen = _run(policy_dir, yes, lr=0.0)  # control: same sampling, no policy updates
    mean = lambda h, sl: sum(x["reward_mean"] for x in h[sl]) / len(h[sl])  # noqa: E731
    gain, control_gain = mean(hist, slice(-5, None)) - mean(hist, slice(0, 3)), mean(frozen, slice(-5, None)) - mean(frozen, slice(0, 3))
    assert gain > 0.15, [round(x["reward_mean"], 2) for x in hist]
    assert abs(control_gain) < 0.1 and gain > control_gain + 0.1
    assert max(x["kl"] for x in hist) < 5.0  # nats per episode: the KL penalty keeps the policy near pi_SFT
    assert all(x["kl"] == 0.0 for x in frozen)  # frozen policy == reference policy exactly
    assert all(0.0 <= x["gold_reward_mean"] <= 1.0 for x in hist)  # the gold reward is logged beside the proxy
    assert all(x["gold_reward_se"] >= 0.0 for x in hist) and any(x["gold_reward_se"] > 0.0 for x in hist)  # with its standard error


def test_ppo_with_the_leave_one_out_baseline_raises_the_reward(yes_no_policy):
    """advantage_estimator=rloo: 4 samples of each of 4 prompts a batch, no value model; the same bar as the value model's
    run above, against the same frozen control."""
    policy_dir, yes = yes_no_policy
    _, hist = _run(policy_dir, yes, lr=3e-4, advantage_estimator="rloo", samples_per_prompt=4)
    _, frozen = _run(policy_dir, yes, lr=0.0, advantage_estimator="rloo", samples_per_prompt=4)
    mean = lambda h, sl: sum(x["reward_mean"] for x in h[sl]) / len(h[sl])  # noqa: E731
    gain, control_gain = mean(hist, slice(-5, None)) - mean(hist, slice(0, 3)), mean(frozen, slice(-5, None)) - mean(frozen, slice(0, 3))
    assert gain > 0.15 and gain > control_gain + 0.1, ([round(x["reward_mean"], 2) for x in hist], [round(x["reward_mean"], 2) for x in frozen])
    assert max(x["kl"] for x in hist) < 5.0 and all(x["kl"] == 0.0 for x in frozen)
    assert all("value_loss" not in x for x in hist)


def test_missing_eos_penalty_and_reward_whitening(yes_no_policy):
    policy_dir, yes = yes_no_policy
    trainer, _ = _run(policy_dir, yes, lr=0.0, missing_eos_penalty=2.0)
    trainer.cfg.steps = 0
    ro = trainer.rollout(PROMPTS[:16])
    no_eos = ~(ro.sequences[:, ro.prompt_len:] == trainer.tokenizer.eos_token_id).any(-1)
    assert no_eos.any()  # 8 new tokens: some episodes are cut off
    assert torch.allclose(ro.scores, ro.raw_scores - 2.0 * no_eos.float())
    trainer.cfg.missing_eos_penalty, trainer.cfg.whiten_rewards = None, True
    ro = trainer.rollout(PROMPTS[:16])
    assert ro.scores.std().item() == pytest.approx(1.0, rel=0.1) and ro.scores.mean().item() == pytest.approx(ro.raw_scores.mean().item(), abs=1e-5)

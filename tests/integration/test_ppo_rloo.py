"""PPO with the leave-one-out baseline (ppo.advantage_estimator=rloo) on model=tiny: each prompt's samples sit together
in a batch, every token's advantage is its episode's baselined score plus the KL penalty still to come, no value
model is built or trained. That it raises a checkable reward: tests/integration/test_ppo_optimises.py."""

import pytest
import torch

from harness.config import PPOConfig
from harness.models import load_policy, load_scalar_model, load_tokenizer
from harness.records import Prompt
from trainers.ppo import PPOTrainer

pytestmark = pytest.mark.integration
PROMPTS = [Prompt(str(i), f"Tell me about topic {i}.", "t") for i in range(8)]


def _trainer(policy_dir, reward, steps=2, lr=1e-3, **overrides):
    tok = load_tokenizer(policy_dir)
    cfg = PPOConfig(steps=steps, batch_size=8, mini_batch_size=4, max_new_tokens=8, lr=lr, max_prompt_length=32,
                    advantage_estimator="rloo", samples_per_prompt=4, **overrides)
    return PPOTrainer(cfg, load_policy(policy_dir), load_policy(policy_dir), reward, None, tok, PROMPTS,
                      chat_template="false", seed=0)


def _random_rm(tiny_dir):
    rm = load_scalar_model(tiny_dir)
    torch.manual_seed(1)
    torch.nn.init.normal_(rm.score.weight, std=0.5)
    return rm


def test_each_prompt_fills_a_group_and_advantages_are_baselined_returns(tiny_dir):
    trainer = _trainer(tiny_dir, _random_rm(tiny_dir), beta=0.1, whiten_advantages=False)
    batch = trainer._next_batch()
    assert [p.id for p in batch] == [batch[0].id] * 4 + [batch[4].id] * 4 and batch[0].id != batch[4].id
    ro = trainer.rollout(batch)
    P = ro.prompt_len
    assert torch.equal(ro.sequences[:4, :P], ro.sequences[:1, :P].expand(4, -1))  # one prompt, four samples
    assert not all(torch.equal(ro.sequences[0, P:], ro.sequences[i, P:]) for i in range(1, 4))  # sampled apart
    stats = trainer.step(ro)
    # by hand: s_i minus the mean of the other three scores of its prompt, then the KL penalty summed from t to the end
    s = ro.scores.tolist()
    kl = (ro.logprobs - ro.ref_logprobs) * ro.mask
    for b in range(8):
        group = s[b // 4 * 4 : b // 4 * 4 + 4]
        loo = s[b] - (sum(group) - s[b]) / 3
        for t in range(int(ro.mask[b].sum())):
            want = loo - 0.1 * kl[b, t:].sum().item()
            assert ro.advantages[b, t].item() == pytest.approx(want, abs=1e-5)
        assert ro.advantages[b, int(ro.mask[b].sum()):].abs().sum().item() == 0.0
    assert "value_loss" not in stats and "explained_variance" not in stats  # no value model to train or judge
    assert len(trainer.opt.param_groups) == 1 and trainer.value_model is None


def test_rloo_config_errors_are_clear(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    policy, ref, rm = load_policy(tiny_dir), load_policy(tiny_dir), load_scalar_model(tiny_dir)
    with pytest.raises(ValueError, match="rloo needs samples_per_prompt >= 2"):
        PPOTrainer(PPOConfig(batch_size=8, advantage_estimator="rloo"), policy, ref, rm, None, tok, PROMPTS)
    with pytest.raises(ValueError, match="rloo needs .* no value model"):
        PPOTrainer(PPOConfig(batch_size=8, advantage_estimator="rloo", samples_per_prompt=2), policy, ref, rm,
                   load_scalar_model(tiny_dir), tok, PROMPTS)
    with pytest.raises(ValueError, match="not a multiple of samples_per_prompt 3"):
        PPOTrainer(PPOConfig(batch_size=8, samples_per_prompt=3), policy, ref, rm, load_scalar_model(tiny_dir), tok, PROMPTS)


def test_samples_per_prompt_groups_a_batch_with_the_value_model_too(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    cfg = PPOConfig(steps=1, batch_size=4, mini_batch_size=4, max_new_tokens=4, lr=1e-3, max_prompt_length=32, samples_per_prompt=2)
    trainer = PPOTrainer(cfg, load_policy(tiny_dir), load_policy(tiny_dir), _random_rm(tiny_dir), load_scalar_model(tiny_dir), tok,
                         PROMPTS, chat_template="false", seed=0)
    batch = trainer._next_batch()
    assert [p.id for p in batch] == [batch[0].id, batch[0].id, batch[2].id, batch[2].id] and batch[0].id != batch[2].id
    stats = trainer.step(trainer.rollout(batch))
    assert "value_loss" in stats and "explained_variance" in stats  # GAE with its value model, as without groups

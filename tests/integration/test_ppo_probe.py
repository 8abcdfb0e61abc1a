"""PPO's probe (trainers.probe, ``ppo.probe``): fixed held-out prompts rolled out before training and every
``every`` iterations, never trained on, and the prompts it draws held out from every other stage's."""

import pytest
import torch

from harness.config import DataConfig, PPOConfig, ProbeConfig
from harness.errors import ConfigError
from harness.models import load_policy, load_scalar_model, load_tokenizer
from harness.records import Prompt
from harness.selection import label_prompts, ppo_prompts, probe_prompts
from trainers.ppo import PPOTrainer
from trainers.probe import probe_episodes

pytestmark = pytest.mark.integration
PROMPTS = [Prompt(str(i), f"Tell me about topic {i}.", "t") for i in range(4)]
PROBE = [Prompt(f"p{i}", f"Describe object {i}.", "t") for i in range(3)]


def _trainer(tiny_dir, probe_prompts=PROBE, **cfg):
    tok = load_tokenizer(tiny_dir)
    ppo = PPOConfig(**{"steps": 3, "batch_size": 4, "mini_batch_size": 4, "max_new_tokens": 4, "max_prompt_length": 32,
                       "lr": 1e-3, "trainable_layers": 1, "probe": ProbeConfig(prompts=3, samples=2, every=2), **cfg})
    rm = load_scalar_model(tiny_dir)
    torch.nn.init.normal_(rm.score.weight, std=0.5, generator=torch.Generator().manual_seed(1))
    return PPOTrainer(ppo, load_policy(tiny_dir), load_policy(tiny_dir), rm, load_scalar_model(tiny_dir), tok, PROMPTS,
                      chat_template="false", seed=0, gold_reward=load_scalar_model(tiny_dir), probe_prompts=probe_prompts)


def test_probe_points_before_training_every_k_iterations_and_after_the_last(tiny_dir):
    trainer = _trainer(tiny_dir)
    history = trainer.train()
    assert [h["episodes"] for h in history] == [4, 8, 12]  # the probe's episodes are not training episodes
    assert [(p.step, p.episodes, p.prompts, p.samples) for p in trainer.probes] == [(0, 0, 3, 2), (2, 8, 3, 2), (3, 12, 3, 2)]
    first, last = trainer.probes[0], trainer.probes[-1]
    assert first.kl == pytest.approx(0.0, abs=1e-6)  # the initial policy is the reference
    assert last.kl != pytest.approx(0.0, abs=1e-6)  # lr 1e-3 moved it
    assert first.gold_reward_mean is not None and first.reward_se > 0
    for p in trainer.probes:  # each prompt's reward, in the probe's prompt order, for the paired shape test
        assert len(p.reward_by_prompt) == len(p.gold_reward_by_prompt) == 3
        assert sum(p.reward_by_prompt) / 3 == pytest.approx(p.reward_mean) and sum(p.gold_reward_by_prompt) / 3 == pytest.approx(p.gold_reward_mean)


def test_a_probe_trains_nothing_and_keeps_no_graph(tiny_dir):
    trainer = _trainer(tiny_dir, mini_batch_size=8, batch_size=8)
    before = {n: p.clone() for n, p in trainer.policy_model.named_parameters()}
    ro = trainer.rollout(probe_episodes(PROBE, 2), update=False)  # 6 episodes, one minibatch: would keep the graph
    assert ro.first_forward is None and len(ro.raw_scores) == 6
    assert all(torch.equal(p, before[n]) for n, p in trainer.policy_model.named_parameters())
    assert trainer.rollout(probe_episodes(PROBE, 2)).first_forward is not None  # a training rollout keeps it


def test_probe_prompts_must_match_the_config_and_stay_apart_from_ppo_prompts(tiny_dir):
    with pytest.raises(ValueError, match="ppo.probe.prompts=3"):
        _trainer(tiny_dir, probe_prompts=PROBE[:2])
    with pytest.raises(ValueError, match="none of them a PPO prompt"):
        _trainer(tiny_dir, probe_prompts=[PROBE[0], PROBE[1], Prompt("0", "Tell me about topic 0.", "t")])


def test_selected_probe_prompts_are_held_out_from_ppo_and_labeler_prompts(data_dir):
    cfg = DataConfig(data_dir=data_dir, n_ppo_prompts=32, n_label_prompts=32)
    probe, fp = probe_prompts(cfg, 24)
    ppo, _ = ppo_prompts(cfg)
    label, _ = label_prompts(cfg)
    texts = {p.prompt for p in probe}
    assert len(texts) == 24 and not texts & {p.prompt for p in ppo} and not texts & {p.prompt for p in label}
    assert all(len(t) <= cfg.max_ppo_prompt_chars for t in texts) and len(fp["probe_prompt_ids"]) == 64
    assert [p.id for p in probe_prompts(cfg, 24)[0]] == [p.id for p in probe]  # seeded
    with pytest.raises(ConfigError, match=r"ppo\.probe\.prompts asks for 100000"):
        probe_prompts(cfg, 100_000)


def test_a_run_with_a_probe_trains_exactly_as_one_without_and_its_probes_share_random_numbers(tiny_dir):
    """The probe samples from its own fixed seed and hands training's random stream back untouched."""
    with_probe = _trainer(tiny_dir)
    logged = with_probe.train()
    plain = _trainer(tiny_dir, probe_prompts=[], probe=ProbeConfig(prompts=0))
    for got, want in zip(plain.train(), logged, strict=True):
        assert (got["reward_mean"], got["kl"], got["policy_loss"]) == (want["reward_mean"], want["kl"], want["policy_loss"])
    again = _trainer(tiny_dir)
    again.train()
    assert [p.reward_mean for p in again.probes] == [p.reward_mean for p in with_probe.probes]  # reproducible
    # every probe draws the same random numbers: the initial policy probed twice gives the same episodes
    fresh = _trainer(tiny_dir)
    fresh._probe(0)
    fresh._probe(0)
    assert fresh.probes[0].reward_mean == fresh.probes[1].reward_mean and fresh.probes[0].kl == fresh.probes[1].kl

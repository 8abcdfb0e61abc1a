"""PPO's probe summaries (trainers.probe): per-prompt means first, then mean and standard error over prompts."""

import math

import pytest
import torch

from harness.records import Prompt
from trainers.probe import mean_and_se, probe_episodes, prompt_means, summarise


def test_prompt_means_average_each_prompt_s_adjacent_samples():
    assert prompt_means(torch.tensor([1.0, 3.0, 10.0, 20.0, -1.0, 1.0]), 2).tolist() == [2.0, 15.0, 0.0]
    with pytest.raises(ValueError, match="groups of 2"):
        prompt_means(torch.tensor([1.0, 2.0, 3.0]), 2)


def test_mean_and_se_by_hand():
    mean, se = mean_and_se(torch.tensor([2.0, 15.0, 0.0]))
    # mean 17/3; sample variance ((2-17/3)^2 + (15-17/3)^2 + (0-17/3)^2) / 2 = 66.33...; se = sqrt(66.33/3)
    assert mean == pytest.approx(17 / 3)
    assert se == pytest.approx(math.sqrt((((2 - 17 / 3) ** 2 + (15 - 17 / 3) ** 2 + (17 / 3) ** 2) / 2) / 3))
    assert math.isnan(mean_and_se(torch.tensor([4.0]))[1])


def test_episodes_repeat_each_prompt_adjacently_and_summarise_uses_that_order():
    ps = [Prompt("a", "A", "t"), Prompt("b", "B", "t")]
    assert [p.id for p in probe_episodes(ps, 3)] == ["a", "a", "a", "b", "b", "b"]
    kl = torch.tensor([0.0, 0.2, 0.4, 1.0, 1.0, 1.0])
    reward = torch.tensor([1.0, 2.0, 3.0, -1.0, -2.0, -3.0])
    p = summarise(kl, reward, None, 3, step=4, episodes=64, seconds=1.5)
    assert (p.prompts, p.samples, p.step, p.episodes) == (2, 3, 4, 64)
    assert p.kl == pytest.approx(0.6) and p.kl_se == pytest.approx(0.4)  # prompt means 0.2, 1.0: sd 0.566 / sqrt 2
    assert p.reward_mean == pytest.approx(0.0) and p.reward_se == pytest.approx(2.0)  # prompt means 2, -2
    assert p.gold_reward_mean is None and p.gold_reward_se is None
    assert p.reward_by_prompt == pytest.approx([2.0, -2.0]) and p.gold_reward_by_prompt is None  # for the paired shape test
    g = summarise(kl, reward, reward * 2, 3, step=0, episodes=0, seconds=0.0)
    assert g.gold_reward_mean == pytest.approx(0.0) and g.gold_reward_se == pytest.approx(4.0)
    assert g.gold_reward_by_prompt == pytest.approx([4.0, -4.0])
    assert set(g.record()) >= {"step", "kl", "reward_mean", "gold_reward_mean", "reward_se", "prompts", "samples"}

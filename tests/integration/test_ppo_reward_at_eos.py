"""PPO's proxy and gold rewards are read where the reward models were trained to give them: at the EOS that
ends each response (trainers.rewards.ended_with_eos), also for an episode cut at max_new_tokens."""

import pytest
import torch

from harness.config import PPOConfig
from harness.models import load_policy, load_scalar_model, load_tokenizer, with_reward_pad
from harness.records import Prompt
from trainers.ppo import PPOTrainer
from trainers.rewards import TokenSetFrequencyReward

pytestmark = pytest.mark.integration
PROMPTS = [Prompt(str(i), f"Tell me about topic {i}.", "t") for i in range(4)]


def _scalar(tiny_dir, tok, seed):
    model = load_scalar_model(tiny_dir)
    with_reward_pad(model, tok)
    with torch.no_grad():
        model.score.weight.copy_(torch.randn(model.score.weight.shape, generator=torch.Generator().manual_seed(seed)))
    return model


@pytest.mark.parametrize("trainable_layers", [None, 1])  # every model whole; the trunk shared by all
def test_each_episode_s_reward_is_the_rm_score_of_its_text_ending_in_eos(tiny_dir, trainable_layers):
    tok = load_tokenizer(tiny_dir)
    cfg = PPOConfig(steps=1, batch_size=4, mini_batch_size=2, max_new_tokens=4, max_prompt_length=32, trainable_layers=trainable_layers)
    trainer = PPOTrainer(cfg, load_policy(tiny_dir), load_policy(tiny_dir), _scalar(tiny_dir, tok, 1), _scalar(tiny_dir, tok, 1),
                         tok, PROMPTS, chat_template="false", seed=0, gold_reward=_scalar(tiny_dir, tok, 2))
    torch.manual_seed(0)
    ro = trainer.rollout(PROMPTS)
    eos, P = tok.eos_token_id, ro.prompt_len
    cut = 0
    for i in range(len(PROMPTS)):
        prompt = ro.sequences[i, :P][ro.attention_mask[i, :P].bool()].tolist()
        response = ro.sequences[i, P:][ro.mask[i].bool()].tolist()
        if response[-1] != eos:  # cut at max_new_tokens: the RM trained on completions that end in EOS
            response, cut = response + [eos], cut + 1
        ids = torch.tensor([prompt + response])  # as harness.prompting.encode_pair lays out a completion: no padding
        for scorer, got in ((trainer.reward, ro.raw_scores[i]), (trainer.gold_reward, ro.gold_scores[i])):
            torch.testing.assert_close(got, scorer(ids, torch.ones_like(ids), len(prompt))[0].float(), atol=1e-5, rtol=1e-5)
    assert cut > 0  # the case the appended EOS is for was exercised


def test_a_reward_that_counts_sampled_tokens_reads_the_episodes_as_they_are(tiny_dir):
    """A scorer that does not read EOS (``reads_eos = False``) never sees the appended token: here EOS is in its
    token set, so counting it would raise the share for every cut episode."""
    tok = load_tokenizer(tiny_dir)
    eos = tok.eos_token_id
    cfg = PPOConfig(steps=1, batch_size=4, mini_batch_size=4, max_new_tokens=4, max_prompt_length=32)
    gold = TokenSetFrequencyReward(eos, eos + 1)
    trainer = PPOTrainer(cfg, load_policy(tiny_dir), load_policy(tiny_dir), _scalar(tiny_dir, tok, 1), _scalar(tiny_dir, tok, 1),
                         tok, PROMPTS, chat_template="false", seed=0, gold_reward=gold)
    torch.manual_seed(0)
    ro = trainer.rollout(PROMPTS)
    torch.testing.assert_close(ro.gold_scores, gold(ro.sequences, ro.attention_mask, ro.prompt_len))
    cut = ~(ro.sequences[:, ro.prompt_len:] == eos).any(-1)
    assert cut.any() and (ro.gold_scores[cut] == 0).all()  # no EOS sampled: none counted

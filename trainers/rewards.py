"""Reward scorers for PPO episodes: a reward model, or a checkable function for tests.

A scorer maps a batch of episodes to one scalar per episode:
``scorer(sequences [B, P+R], attention_mask [B, P+R], prompt_len P) -> [B]`` (reward units), where
the prompt is left-padded to ``P`` tokens and ``attention_mask[:, P:]`` marks the response tokens
up to and including EOS. PPO takes the proxy reward from one scorer and, optionally, logs a
second ("gold") scorer's reward beside it, so over-optimisation of the proxy shows (Gao et al.
2022, arXiv 2210.10760).

A scorer with ``reads_eos = True`` (every reward model) is given the episodes as a reward model is trained
to read them, each response ending in EOS (:func:`ended_with_eos`): an episode cut at ``max_new_tokens``
gets one appended, as :func:`harness.prompting.render_completion` ends every completion the RM trains on
and every output the eval's judges score.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.judging.reward_model import read_rewards
from harness.models import reward_normalization, token_scores

Scorer = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def ended_with_eos(sequences: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int, eos_id: int,
                   pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Episodes ``[B, P+R]`` as a reward model reads them, ``[B, P+R+1]``: every response ends in EOS.

    A response the policy ended (an EOS among its attended tokens) is kept as it is, with a masked pad
    column after it; a response cut at ``max_new_tokens`` without EOS gets EOS appended (attended), so
    the reward is read at an EOS, where the reward model was trained to give it
    (:func:`harness.prompting.render_completion`; :func:`harness.models.reward_index` reads the last attended
    token). Read at the cut-off token instead, SmolLM2-135M RMs' scores of 96 truncated SFT samples had
    Spearman 0.26 (proxy) and 0.14 (gold judge) with their scores at EOS (bench/results/reward_at_eos.json; docs/architecture.md, "PPO reads at EOS too").
    Positions before the new column are unchanged, so a causal model's states there are too.
    """
    resp, resp_attn = sequences[:, prompt_len:], attention_mask[:, prompt_len:]
    ended = ((resp == eos_id) & resp_attn.bool()).any(-1)
    col = torch.where(ended, pad_id, eos_id).to(sequences.dtype)
    return (torch.cat([sequences, col[:, None]], dim=1),
            torch.cat([attention_mask, (~ended).to(attention_mask.dtype)[:, None]], dim=1))


class ModelRewardScorer:
    """r_theta(x, y) from a scalar-head reward model, centred: ``(score - mean) / std``.

    ``score`` is the stock score at the response's last token (its EOS when it has one;
    :func:`harness.judging.reward_model.rewards_at_last_token`); ``(mean, std)`` is
    :func:`harness.models.reward_normalization`, for the harness's reward models ``(centring_offset, 1)``,
    so the demonstrations score mean 0 as in the paper (section 3.5). This is the one place the offset is
    applied: PPO's proxy reward and the gold reward logged beside it. ``reads_eos``: PPO gives it the
    episodes through :func:`ended_with_eos`.
    """

    reads_eos = True

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval().requires_grad_(False)
        self.mean, self.std = reward_normalization(model.config)

    def to(self, device) -> ModelRewardScorer:
        self.model.to(device)
        return self

    @torch.no_grad()
    def __call__(self, sequences: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int) -> torch.Tensor:
        return self.from_token_scores(token_scores(self.model, sequences, attention_mask), sequences, attention_mask)

    def from_token_scores(self, scores: torch.Tensor, sequences: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The centred reward ``[B]`` from the model's scalar head at every position, ``scores [B, P+R]`` (computed
        whole or from a shared trunk, :mod:`trainers.frozen_trunk`)."""
        return (read_rewards(self.model, scores, sequences, attention_mask) - self.mean) / self.std


class TokenSetFrequencyReward:
    """Share of response tokens whose id lies in ``[low, high)``: a reward PPO can be checked against.

    In [0, 1]; with ``[0, vocab/2)`` a random policy starts near 0.5, so a working optimiser must
    push it clearly towards 1 (the "PPO optimises" invariant test). It counts the tokens the policy
    sampled, so it reads the episodes as they are (``reads_eos = False``).
    """

    reads_eos = False

    def __init__(self, low: int, high: int):
        if not 0 <= low < high:
            raise ValueError(f"TokenSetFrequencyReward: need 0 <= low < high, got [{low}, {high})")
        self.low, self.high = low, high

    def to(self, device) -> TokenSetFrequencyReward:
        return self

    def __call__(self, sequences: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int) -> torch.Tensor:
        resp, mask = sequences[:, prompt_len:], attention_mask[:, prompt_len:].float()
        hit = ((resp >= self.low) & (resp < self.high)).float()
        return (hit * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


def as_scorer(reward) -> Scorer:
    """A reward model (``nn.Module``) becomes a :class:`ModelRewardScorer`; a scorer is returned as is."""
    return ModelRewardScorer(reward) if isinstance(reward, torch.nn.Module) else reward

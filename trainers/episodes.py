"""PPO's episodes: the rollout batch, its response masks, how prompts fill a batch, and the PPO-ptx schedule.

Pure helpers of :mod:`trainers.ppo`, kept apart so that the trainer reads as its loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

import torch

T = TypeVar("T")


@dataclass
class Rollout:
    """A batch of episodes. ``sequences``/``attention_mask`` are ``[B, P + R]`` (prompt left-padded);
    the other tensors are ``[B, R]`` over response positions (``mask`` 1 up to and including EOS)."""

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    mask: torch.Tensor
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor  # [B] proxy reward (reward model), after the missing-EOS penalty
    raw_scores: torch.Tensor | None = None  # [B] proxy reward as scored
    gold_scores: torch.Tensor | None = None  # [B] gold reward, logged only
    rewards: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None
    # (logprobs, entropy, values), each [B, R], of a policy/value forward run with autograd on at
    # the rollout's weights: the first update back-propagates through it (see PPOTrainer.rollout).
    first_forward: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    # [B, P + R, H]: the frozen trunk's output on the sequences (trainable_layers), reused by every update
    trunk: torch.Tensor | None = None


def response_mask(responses: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 on response tokens up to and including the first EOS, 0 after: ``[B, R]`` -> ``[B, R]``."""
    is_eos = (responses == eos_id).long()
    after_eos = (is_eos.cumsum(-1) - is_eos) > 0  # strictly after the first EOS
    return (~after_eos).long()


def response_values(values: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """V(s_t) for each response token: the per-position values ``[B, P + R]`` read at the position
    before each response token (the state it is chosen in), ``[B, R]``."""
    return values[:, prompt_len - 1 : -1]


def ptx_sequences_for_minibatch(ratio: float, mini_batch_size: int, index: int) -> int:
    """Pretraining sequences for the ``index``-th minibatch (0-based, counted over the whole run).

    ``floor((index + 1) * ratio * m) - floor(index * ratio * m)`` with ``m = mini_batch_size``, in
    exact rational arithmetic (``ratio`` read from its decimal form), so any run of minibatches
    consumes ``ratio`` sequences per episode up to less than one sequence, also when
    ``ratio * m`` is not an integer (e.g. 0.75 x 2 gives 1, 2, 1, 2, ...). Raises ``ValueError``
    if ``ratio`` <= 0 or ``index`` < 0.
    """
    if ratio <= 0 or index < 0:
        raise ValueError(f"ptx_sequences_for_minibatch: need ratio > 0 and index >= 0, got {ratio}, {index}")
    per_minibatch = Fraction(repr(float(ratio))) * mini_batch_size
    return math.floor((index + 1) * per_minibatch) - math.floor(index * per_minibatch)


def prompt_groups(prompts: list[T], samples_per_prompt: int) -> list[T]:
    """Each of ``prompts`` ``samples_per_prompt`` times in a row: ``[a, b], 2 -> [a, a, b, b]``. A batch laid out so
    holds each prompt's episodes as one contiguous group, which the leave-one-out baseline
    (:func:`trainers.losses.leave_one_out_scores`) reads. Raises ``ValueError`` if ``samples_per_prompt`` < 1."""
    if samples_per_prompt < 1:
        raise ValueError(f"prompt_groups: samples_per_prompt must be >= 1, got {samples_per_prompt}")
    return [p for p in prompts for _ in range(samples_per_prompt)]

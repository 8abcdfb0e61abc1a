"""Reward-model scoring: the one place a scalar-head model turns (prompt, output) into r(x, y).

A reward model (:func:`harness.models.load_scalar_model`: a one-label token-classification head) is
read at the last attended token of ``prompt + output``, as the paper's RM (Ouyang et al. 2022,
section 3.5: "a scalar reward" for a prompt and response) and as TRL's and OpenRLHF's reward models
are. Every consumer goes through these functions: the RM trainer's loss, PPO's reward, SFT's
checkpoint selection, the simulated labeler, the win-rate / Likert judges and judge validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from harness.models import last_token_index, token_scores
from harness.prompting import encode_pair, pad


def encode_batch(tokenizer, prompts: Sequence[str], outputs: Sequence[str], *, max_length: int, max_prompt_length: int,
                 chat_template: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(input_ids [B, T], attention_mask [B, T])`` of ``prompt + output`` pairs, each cut to
    ``max_length`` tokens keeping the prompt's last ``max_prompt_length`` (:func:`harness.prompting.encode_pair`).
    Raises ``ValueError`` when the lists differ in length."""
    if len(prompts) != len(outputs):
        raise ValueError(f"reward model: {len(prompts)} prompts vs {len(outputs)} outputs")
    enc = [encode_pair(p, o, tokenizer, max_length, max_prompt_length, chat_template).input_ids for p, o in zip(prompts, outputs)]
    return pad(enc, tokenizer.pad_token_id)


def rewards_at_last_token(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          last: torch.Tensor | None = None) -> torch.Tensor:
    """r(x, y) per row: the scalar head's output at index ``last`` ``[B]`` (default: the last attended
    token of right-padded rows), ``[B]`` in reward units. Differentiable (the caller picks ``no_grad``)."""
    if last is None:
        last = last_token_index(attention_mask)
    scores = token_scores(model, input_ids, attention_mask)
    return scores[torch.arange(len(input_ids), device=input_ids.device), last]


@torch.no_grad()
def reward_scores(model, tokenizer, prompts: Sequence[str], outputs: Sequence[str], *, max_length: int = 512,
                  max_prompt_length: int = 256, batch_size: int = 8, chat_template: str = "auto") -> list[float]:
    """r(x, y) for aligned prompts and outputs (reward units), ``batch_size`` pairs per forward, on the
    model's device; long pairs are cut as :func:`encode_batch` says, and an empty output is scored as a
    single space (a zero-length response has no token of its own to read). Raises ``ValueError`` on lengths."""
    if len(prompts) != len(outputs):
        raise ValueError(f"reward model: {len(prompts)} prompts vs {len(outputs)} outputs")
    model.eval()
    dev = next(model.parameters()).device
    out: list[float] = []
    for i in range(0, len(prompts), batch_size):
        ids, attn = encode_batch(tokenizer, prompts[i : i + batch_size], [o or " " for o in outputs[i : i + batch_size]],
                                 max_length=max_length,
                                 max_prompt_length=max_prompt_length, chat_template=chat_template)
        out += rewards_at_last_token(model, ids.to(dev), attn.to(dev)).float().tolist()
    return out


class RewardModelJudge:
    """A reward-model checkpoint as a judge: ``score(prompts, outputs) -> list[float]`` (reward units).

    ``name`` names it in results; ``fingerprint`` is the checkpoint's weights hash
    (:func:`harness.models.model_fingerprint`), what caches and ``run.json`` key on. The model is
    loaded at construction (:func:`harness.models.load_scalar_model`) and put on ``device`` in ``dtype``
    (:func:`harness.devices.place`).
    """

    def __init__(self, path: str, *, name: str | None = None, chat_template: str = "auto", batch_size: int = 8,
                 max_length: int = 512, max_prompt_length: int = 256, progress: bool = False,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        from harness.devices import place
        from harness.models import load_scalar_model, load_tokenizer, model_fingerprint

        self.path = str(path)
        self.name = name or Path(self.path).name
        self.fingerprint = model_fingerprint(self.path)
        self.model, self.tokenizer = place(load_scalar_model(self.path), device, dtype), load_tokenizer(self.path)
        self.chat_template, self.batch_size = chat_template, batch_size
        self.max_length, self.max_prompt_length, self.progress = max_length, max_prompt_length, progress

    def score(self, prompts: Sequence[str], outputs: Sequence[str]) -> list[float]:
        """r_judge(x, y) per output; a progress bar over chunks when ``progress``. Raises ``ValueError`` on lengths."""
        from tqdm.auto import tqdm

        if len(prompts) != len(outputs):
            raise ValueError(f"judge {self.name!r}: {len(prompts)} prompts vs {len(outputs)} outputs")
        out: list[float] = []
        chunk = self.batch_size * 8
        for i in tqdm(range(0, len(prompts), chunk), desc=f"judge {self.name}", leave=False, disable=not self.progress):
            out += reward_scores(self.model, self.tokenizer, list(prompts[i : i + chunk]), list(outputs[i : i + chunk]),
                                 max_length=self.max_length, max_prompt_length=self.max_prompt_length,
                                 batch_size=self.batch_size, chat_template=self.chat_template)
        return out

"""Render prompts and completions as model text, and tokenise (prompt, completion) pairs.

A record's ``prompt`` is either a plain instruction or an hh-rlhf dialogue prefix
(``"\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant:"``). Both become a list of
chat messages, rendered with the tokenizer's chat template when it has one (e.g. SmolLM2-Instruct)
or else in the hh "Human:/Assistant:" text format (e.g. the GPT-2 tokenizer of ``model=tiny``).
Every stage renders through here, so SFT, RM, PPO and evaluation see identical text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a tensor is made: composing a config (e.g. --help) loads this module
    import torch

_TURN = re.compile(r"\n\n(Human|Assistant):")


def to_messages(prompt: str) -> list[dict[str, str]]:
    """Prompt -> chat messages ending with a user turn.

    An hh dialogue prefix is split into alternating turns (its trailing empty ``Assistant:`` is
    the turn to generate, so it is dropped); any other text is one user message.
    """
    if not prompt.startswith("\n\nHuman:"):
        return [{"role": "user", "content": prompt.strip()}]
    parts = _TURN.split(prompt)
    # parts = ["", "Human", text, "Assistant", text, ...]
    msgs = [{"role": "user" if who == "Human" else "assistant", "content": text.strip()} for who, text in zip(parts[1::2], parts[2::2])]
    if msgs and msgs[-1]["role"] == "assistant" and not msgs[-1]["content"]:
        msgs.pop()
    return msgs


def uses_chat_template(tokenizer, chat_template: str | bool = "auto") -> bool:
    """Whether prompts are rendered with the tokenizer's chat template (``"auto"``: if it has one)."""
    value = str(chat_template).strip().lower()
    if value == "auto":
        return bool(getattr(tokenizer, "chat_template", None))
    if value not in ("true", "false"):
        raise ValueError(f"chat_template must be auto, true or false, got {chat_template!r}")
    return value == "true"


def render_prompt(prompt: str, tokenizer, chat_template: str | bool = "auto") -> str:
    """The text a model sees before its completion (ends where generation starts)."""
    messages = to_messages(prompt)
    if uses_chat_template(tokenizer, chat_template):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    turns = "".join(f"\n\n{'Human' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in messages)
    return turns + "\n\nAssistant:"


def render_completion(completion: str, tokenizer, chat_template: str | bool = "auto") -> str:
    """Completion text as it follows :func:`render_prompt`, terminated by the EOS token."""
    sep = "" if uses_chat_template(tokenizer, chat_template) else " "
    return f"{sep}{completion.strip()}{tokenizer.eos_token}"


@dataclass
class EncodedPair:
    """Token ids of prompt+completion, and a 0/1 mask of the completion tokens. Both shape [T]."""

    input_ids: list[int]
    completion_mask: list[int]


def encode_pair(
    prompt: str, completion: str, tokenizer, max_length: int, max_prompt_length: int, chat_template: str | bool = "auto"
) -> EncodedPair:
    """Tokenise a (prompt, completion) pair within ``max_length`` tokens.

    The prompt keeps its last ``max_prompt_length`` tokens (the end of a dialogue matters most);
    the completion is cut on the right to fit. Raises ``ValueError`` if ``max_prompt_length >= max_length``.
    """
    if max_prompt_length >= max_length:
        raise ValueError(f"max_prompt_length ({max_prompt_length}) must be smaller than max_length ({max_length})")
    p = tokenizer(render_prompt(prompt, tokenizer, chat_template), add_special_tokens=False)["input_ids"]
    c = tokenizer(render_completion(completion, tokenizer, chat_template), add_special_tokens=False)["input_ids"]
    p = p[-max_prompt_length:]
    c = c[: max_length - len(p)]  # at least one token survives: len(p) <= max_prompt_length < max_length
    return EncodedPair(p + c, [0] * len(p) + [1] * len(c))


def encode_prompts(prompts: list[str], tokenizer, max_prompt_length: int, chat_template: str | bool = "auto") -> list[list[int]]:
    """Rendered prompts as token ids, each cut to its last ``max_prompt_length`` tokens (:func:`prompts_cut` says which
    are)."""
    return [ids[-max_prompt_length:] for ids in _rendered_ids(prompts, tokenizer, chat_template)]


def prompts_cut(prompts: list[str], tokenizer, max_prompt_length: int, chat_template: str | bool = "auto") -> list[bool]:
    """Per prompt: is its rendering longer than ``max_prompt_length`` tokens (so :func:`encode_prompts` cuts it)?"""
    return [len(ids) > max_prompt_length for ids in _rendered_ids(prompts, tokenizer, chat_template)]


def _rendered_ids(prompts: list[str], tokenizer, chat_template: str | bool) -> list[list[int]]:
    return [tokenizer(render_prompt(p, tokenizer, chat_template), add_special_tokens=False)["input_ids"] for p in prompts]


def pad(seqs: list[list[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token lists into ``(ids [B, T], attention_mask [B, T])``; ``side`` is right or left."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if side == "right":
            ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
        else:
            ids[i, width - len(s):], mask[i, width - len(s):] = torch.tensor(s), 1
    return ids, mask

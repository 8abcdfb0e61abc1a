"""Batched generation from a policy checkpoint (transformers ``generate`` with KV cache)."""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList, TemperatureLogitsWarper

from harness.prompting import encode_prompts, pad
from harness.records import Generation, Prompt
from harness.shared_prefix import shared_prefix_inputs
from harness.top_p import TopPFromLargest


def decoding_kwargs(decoding: dict[str, Any]) -> dict[str, Any]:
    """``model.generate`` keyword arguments for ``decoding`` (``max_new_tokens``, ``do_sample``, ``temperature``,
    ``top_p``; no top-k). Sampling with ``top_p < 1`` filters with :class:`harness.top_p.TopPFromLargest` instead of
    transformers' full-vocabulary sort at every step; generate runs custom processors before its own warpers, so
    temperature comes along, in transformers' order (temperature, then top-p), and generate's own are switched off."""
    kwargs: dict[str, Any] = {"max_new_tokens": int(decoding["max_new_tokens"]), "do_sample": bool(decoding.get("do_sample", False))}
    if not kwargs["do_sample"]:
        return kwargs
    temperature, top_p = float(decoding.get("temperature", 1.0)), float(decoding.get("top_p", 1.0))
    kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    if top_p < 1.0:
        kwargs.update(temperature=1.0, top_p=1.0, logits_processor=LogitsProcessorList(
            ([TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []) + [TopPFromLargest(top_p)]))
    return kwargs


def generate(
    model, tokenizer, prompts: list[Prompt], policy: str, decoding: dict[str, Any], *, batch_size: int = 8,
    max_prompt_length: int = 256, chat_template: str = "auto", seed: int = 0, model_hash: str = "",
    share_prefixes: bool = True,
) -> list[Generation]:
    """One output per prompt, in prompt order.

    ``decoding`` holds ``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``. Prompts are
    rendered by :mod:`harness.prompting`, left-padded and batched; generation stops at EOS. The
    torch RNG is seeded per batch so outputs do not depend on what else ran before. With ``share_prefixes``, a
    prefix the prompts of a batch share (chat template's system turn, an instruction, TruthfulQA's QA primer) runs
    once per batch (:mod:`harness.shared_prefix`); the outputs equal those without it up to floating-point
    summation order in attention.
    """
    model.eval()
    dev = next(model.parameters()).device
    ids_all = encode_prompts([p.prompt for p in prompts], tokenizer, max_prompt_length, chat_template)
    gen_kwargs = decoding_kwargs(decoding)
    out: list[Generation] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=f"generate {policy}", leave=False):
        torch.manual_seed(seed + start)
        rows = ids_all[start : start + batch_size]
        shared = shared_prefix_inputs(model, rows, tokenizer.pad_token_id) if share_prefixes and len(rows) > 1 else None
        if shared is not None:
            ids, attn, past = shared
            gen_kwargs["past_key_values"] = past
        else:
            ids, attn = pad(rows, tokenizer.pad_token_id, side="left")
            gen_kwargs.pop("past_key_values", None)
        with torch.no_grad():
            seq = model.generate(input_ids=ids.to(dev), attention_mask=attn.to(dev), pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id, **gen_kwargs)
        for p, row in zip(prompts[start : start + batch_size], seq[:, ids.shape[1] :]):
            text = tokenizer.decode(row, skip_special_tokens=True).strip()
            out.append(Generation(policy, p.id, p.prompt, text, dict(decoding), model_hash))
    return out

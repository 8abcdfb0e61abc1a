"""Batched generation from a policy checkpoint (transformers ``generate`` with KV cache)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList, TemperatureLogitsWarper

from harness.prompting import encode_prompts
from harness.records import Generation, Prompt
from harness.shared_prefix import prefilled_inputs
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
    """One output per prompt, in prompt order: :func:`generate_samples` with the one seed ``seed``."""
    return generate_samples(model, tokenizer, prompts, policy, decoding, seeds=[seed], batch_size=batch_size,
                            max_prompt_length=max_prompt_length, chat_template=chat_template, model_hash=model_hash,
                            share_prefixes=share_prefixes)[0]


def generate_samples(
    model, tokenizer, prompts: list[Prompt], policy: str, decoding: dict[str, Any], *, seeds: Sequence[int],
    batch_size: int = 8, max_prompt_length: int = 256, chat_template: str = "auto", model_hash: str = "",
    share_prefixes: bool = True,
) -> list[list[Generation]]:
    """``len(seeds)`` outputs per prompt, as ``[sample][prompt]`` (prompt order); sample s is seeded by ``seeds[s]``.

    ``decoding`` holds ``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``. Prompts are
    rendered by :mod:`harness.prompting`, left-padded and batched; generation stops at EOS. The
    torch RNG is seeded per batch (``seeds[s] + batch start``) so outputs do not depend on what else ran before,
    nor on how many samples are drawn together: sample s equals :func:`generate` with ``seed=seeds[s]``. Each
    batch's prompts run once for all samples (:func:`harness.shared_prefix.prefilled_inputs`: every prompt token
    but the last in a KV cache, a prefix the batch shares, such as the chat template's system turn, an
    instruction or TruthfulQA's QA primer, once, with ``share_prefixes``); each sample's generate starts from a
    copy of that cache. Outputs equal plain left-padded generation up to floating-point summation order in
    attention. Raises ``ValueError`` for no seeds.
    """
    if not seeds:
        raise ValueError("generate_samples: no seeds")
    model.eval()
    dev = next(model.parameters()).device
    ids_all = encode_prompts([p.prompt for p in prompts], tokenizer, max_prompt_length, chat_template)
    gen_kwargs = decoding_kwargs(decoding)
    out: list[list[Generation]] = [[] for _ in seeds]
    for start in tqdm(range(0, len(prompts), batch_size), desc=f"generate {policy}", leave=False):
        rows = ids_all[start : start + batch_size]
        ids, attn, prefilled = prefilled_inputs(model, rows, tokenizer.pad_token_id, share_prefixes=share_prefixes)
        for s, seed in enumerate(seeds):
            # generate extends the cache it is given: every sample but the last gets a copy
            past = prefilled if prefilled is None or s == len(seeds) - 1 else copy.deepcopy(prefilled)
            torch.manual_seed(seed + start)
            with torch.no_grad():
                seq = model.generate(input_ids=ids.to(dev), attention_mask=attn.to(dev), past_key_values=past,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **gen_kwargs)
            for p, row in zip(prompts[start : start + batch_size], seq[:, ids.shape[1] :]):
                text = tokenizer.decode(row, skip_special_tokens=True).strip()
                out[s].append(Generation(policy, p.id, p.prompt, text, dict(decoding), model_hash))
    return out

"""Batched generation from a policy checkpoint (transformers ``generate`` with KV cache)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList, TemperatureLogitsWarper

from harness.prompting import encode_prompts
from harness.records import Generation, Prompt
from harness.sampling import GroupSampler
from harness.shared_prefix import prefilled_inputs
from harness.top_p import TopPFromLargest

log = logging.getLogger(__name__)


def sampling_warpers(decoding: dict[str, Any]) -> list:
    """The logits warpers of sampled ``decoding`` (``temperature``, ``top_p``; no top-k), in transformers' order
    (temperature, then top-p); top-p is :class:`harness.top_p.TopPFromLargest`, not transformers' full-vocabulary
    sort at every step. Empty for greedy decoding."""
    if not decoding.get("do_sample", False):
        return []
    temperature, top_p = float(decoding.get("temperature", 1.0)), float(decoding.get("top_p", 1.0))
    return ([TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []) + ([TopPFromLargest(top_p)] if top_p < 1.0 else [])


def decoding_kwargs(decoding: dict[str, Any], generators: Sequence[torch.Generator] = ()) -> dict[str, Any]:
    """``model.generate`` keyword arguments for ``decoding`` (``max_new_tokens``, ``do_sample``, ``temperature``,
    ``top_p``). Sampling draws through :class:`harness.sampling.GroupSampler` (its ``generators``: one per group of
    rows; generate itself then runs greedy on its one-hot scores), with :func:`sampling_warpers`; generate's own
    warpers, and any a model's generation config would add, are not used. Raises ``ValueError`` when sampling
    without generators."""
    kwargs: dict[str, Any] = {"max_new_tokens": int(decoding["max_new_tokens"]), "do_sample": False}
    if not decoding.get("do_sample", False):
        return kwargs
    if not generators:
        raise ValueError("decoding_kwargs: sampled decoding needs a generator per group of rows")
    kwargs["logits_processor"] = LogitsProcessorList([GroupSampler(sampling_warpers(decoding), generators)])
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
    share_prefixes: bool = True, sample_rows: int = 128,
) -> list[list[Generation]]:
    """``len(seeds)`` outputs per prompt, as ``[sample][prompt]`` (prompt order); sample s is seeded by ``seeds[s]``.

    ``decoding`` holds ``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``. Prompts are rendered by
    :mod:`harness.prompting`, left-padded and batched (``batch_size`` prompts); generation stops at EOS. A prompt
    longer than ``max_prompt_length`` tokens keeps its last ones, with a warning giving the count.
    - Each batch's prompts run once for all samples (:func:`harness.shared_prefix.prefilled_inputs`: every prompt
      token but the last in a KV cache; a prefix the batch shares, such as the chat template's system turn, an
      instruction or TruthfulQA's QA primer, once, with ``share_prefixes``).
    - The samples of a batch decode together, up to ``sample_rows`` rows per ``generate`` call (one call of 4 x 24
      rows costs less than four of 24: fewer steps' fixed costs and larger matrix products), each sample's rows
      drawing from their own generator seeded ``seeds[s] + batch start`` (:class:`harness.sampling.GroupSampler`).
      So outputs do not depend on what ran before, nor on which samples decode together: sample s draws what
      :func:`generate` with ``seed=seeds[s]`` draws, up to the float rounding a larger batch brings to the logits.
    - Greedy decoding is decoded once and given to every seed.
    Outputs equal plain left-padded generation up to floating-point summation order in attention. Raises
    ``ValueError`` for no seeds.
    """
    if not seeds:
        raise ValueError("generate_samples: no seeds")
    model.eval()
    dev = next(model.parameters()).device
    ids_all = encode_prompts([p.prompt for p in prompts], tokenizer, max_prompt_length + 1, chat_template)
    cut = sum(len(ids) > max_prompt_length for ids in ids_all)
    if cut:
        log.warning("generate %s: %d of %d prompts are longer than max_prompt_length=%d tokens and keep only their last %d",
                    policy, cut, len(prompts), max_prompt_length, max_prompt_length)
        ids_all = [ids[-max_prompt_length:] for ids in ids_all]
    sampled = bool(decoding.get("do_sample", False))
    out: list[list[Generation]] = [[] for _ in seeds]
    for start in tqdm(range(0, len(prompts), batch_size), desc=f"generate {policy}", leave=False):
        rows = ids_all[start : start + batch_size]
        ids, attn, prefilled = prefilled_inputs(model, rows, tokenizer.pad_token_id, share_prefixes=share_prefixes)
        # greedy decoding gives every seed the same outputs: decode once
        todo = list(range(len(seeds))) if sampled else [0]
        together = max(1, min(len(todo), sample_rows // len(rows)))  # samples decoded in one call
        for first in range(0, len(todo), together):
            group = todo[first : first + together]
            past = prefilled if prefilled is None or first + together >= len(todo) else copy.deepcopy(prefilled)
            if len(group) > 1 and past is not None:  # group g's rows are g * B .. (g + 1) * B - 1
                past.reorder_cache(torch.arange(len(rows), device=dev).repeat(len(group)))
            generators = [torch.Generator(device=dev).manual_seed(seeds[s] + start) for s in group] if sampled else ()
            with torch.no_grad():
                seq = model.generate(input_ids=ids.repeat(len(group), 1).to(dev), attention_mask=attn.repeat(len(group), 1).to(dev),
                                     past_key_values=past, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id, **decoding_kwargs(decoding, generators))
            new = seq[:, ids.shape[1] :]
            for g, s in enumerate(group):
                for p, row in zip(prompts[start : start + batch_size], new[g * len(rows):(g + 1) * len(rows)]):
                    text = tokenizer.decode(row, skip_special_tokens=True).strip()
                    out[s].append(Generation(policy, p.id, p.prompt, text, dict(decoding), model_hash))
    if not sampled:
        out = [list(out[0]) for _ in seeds]
    return out

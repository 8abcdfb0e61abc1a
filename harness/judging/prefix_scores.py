"""Reward-model scores whose shared prompt prefixes run once (prefix KV caching for scalar heads).

A reward model scores several outputs of the same prompt: the two outputs of a validation pair, the K samples the
simulated labeler ranks, a policy's and a baseline's answers. Scored one text at a time, the prompt's tokens run once
per output. Here the texts of a call are split into groups that share a token prefix
(:func:`harness.shared_prefix.prefix_segments`, each text keeping at least its last token); a chunk of groups runs
its prefixes in one right-padded forward with ``use_cache=True``, then the texts' rests run on their group's cache
(rows sorted by length, in batches), the padding between masked and positions continuing the prefix. The score is
the scalar head at the text's reward position (:func:`harness.models.reward_index` on the whole text), as
:func:`harness.models.token_scores` reads it. Texts in no group, a text whose reward position falls inside its
prefix, and models without a Llama-style stack or with a sliding-window cache take the whole-text path. Equal to
whole-text scores up to the floating-point summation order of attention (1e-5 in float32, tested in
tests/integration/test_prefix_scores.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import DynamicCache

from harness.judging.shared_trunk import decoder_stack
from harness.models import reward_index, scalar_head
from harness.shared_prefix import MIN_PREFIX, cache_is_plain, prefix_segments

#: rows of texts per chunk of groups, in batches: the prefixes of about this many texts' groups run in one forward
CHUNK_BATCHES = 4


@torch.no_grad()
def prefix_shared_scores(model, enc: list[list[int]], pad_id: int, batch_size: int,
                         whole: Callable[[list[int]], list[float]], progress: Callable[[int], None] | None = None,
                         min_prefix: int = MIN_PREFIX) -> list[float]:
    """The scalar head's reward for every token list of ``enc`` (unpadded) under ``model`` (reward units, in the given
    order), each group's shared prefix run once. ``whole(indices) -> scores`` scores the texts that share nothing
    (or cannot use the cache) the ordinary way; ``progress(n)`` is told of every ``n`` texts scored. ``pad_id``: the
    model's pad token id (for :func:`harness.models.reward_index`)."""
    out = [0.0] * len(enc)
    stack = decoder_stack(model)
    groups = prefix_segments(enc, min_prefix) if stack is not None and len(enc) > 1 else [(0, list(range(len(enc))))]
    alone = [i for n, members in groups if n == 0 for i in members]
    shared = [(n, members) for n, members in groups if n > 0]
    chunk: list[tuple[int, list[int]]] = []
    for n, members in shared:
        chunk.append((n, members))
        if sum(len(m) for _, m in chunk) >= CHUNK_BATCHES * batch_size:
            alone += _score_chunk(model, stack, enc, pad_id, batch_size, chunk, out, progress)
            chunk = []
    if chunk:
        alone += _score_chunk(model, stack, enc, pad_id, batch_size, chunk, out, progress)
    if alone:
        alone.sort()
        for i, score in zip(alone, whole(alone)):
            out[i] = score
    return out


def _score_chunk(model, stack, enc: list[list[int]], pad_id: int, batch_size: int, chunk: list[tuple[int, list[int]]],
                 out: list[float], progress) -> list[int]:
    """Scores the texts of ``chunk`` (``[(prefix length, member indices)]``) into ``out``; returns the indices left
    for the whole-text path (the model's cache is not a plain one, or a text's reward position is in its prefix)."""
    dev = next(model.parameters()).device
    width = max(n for n, _ in chunk)
    pre_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
    pre_mask = torch.zeros_like(pre_ids)
    for g, (n, members) in enumerate(chunk):
        pre_ids[g, :n], pre_mask[g, :n] = torch.tensor(enc[members[0]][:n]), 1
    positions = torch.arange(width).expand(len(chunk), -1)
    cache = stack(input_ids=pre_ids.to(dev), attention_mask=pre_mask.to(dev), position_ids=positions.to(dev),
                  use_cache=True).past_key_values
    members_all = [i for _, members in chunk for i in members]
    if not cache_is_plain(cache):
        return members_all
    kv = [(layer.keys, layer.values) for layer in cache.layers]
    head = scalar_head(model)
    rows, left = [], []
    for g, (n, members) in enumerate(chunk):
        for i in members:
            ids = torch.tensor([enc[i]])
            at = int(reward_index(ids, torch.ones_like(ids), pad_id)[0])
            (rows if at >= n else left).append((i, g, n, at - n))
    rows.sort(key=lambda r: -(len(enc[r[0]]) - r[2]))
    for start in range(0, len(rows), batch_size):
        part = rows[start:start + batch_size]
        w = max(len(enc[i]) - n for i, _, n, _ in part)
        ids = torch.full((len(part), w), pad_id, dtype=torch.long)
        mask = torch.zeros((len(part), width + w), dtype=torch.long)
        pos = torch.zeros((len(part), w), dtype=torch.long)
        for r, (i, _, n, _) in enumerate(part):
            rest = enc[i][n:]
            ids[r, :len(rest)] = torch.tensor(rest)
            mask[r, :n] = 1  # its group's prefix, not the padding after it
            mask[r, width:width + len(rest)] = 1
            pos[r] = torch.arange(n, n + w)
        select = torch.tensor([g for _, g, _, _ in part], device=dev)
        past = DynamicCache(ddp_cache_data=[(k.index_select(0, select), v.index_select(0, select)) for k, v in kv])
        hidden = stack(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), past_key_values=past,
                       use_cache=True).last_hidden_state
        scores = head(hidden).squeeze(-1)
        for r, (i, _, _, at) in enumerate(part):
            out[i] = float(scores[r, at].float())
        if progress is not None:
            progress(len(part))
    return [i for i, _, _, _ in left]

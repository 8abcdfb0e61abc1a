"""Generation inputs whose shared prompt prefixes run once (prefix KV caching for ``model.generate``).

A batch of prompts often starts with the same tokens: the chat template's system turn, an eval's instruction,
TruthfulQA's six-question QA primer (~250 tokens before a ~15-token question). ``generate`` on left-padded
prompts runs every one of those tokens for every row. Here the rows of a batch are split into groups that share a
prefix (:func:`prefix_segments`); each group's prefix runs once (one left-padded forward of the groups), its KV
cache is copied to the group's rows, and ``generate`` receives the full inputs with that cache, so its prefill
runs only the rest (transformers' generate slices ``input_ids`` to what the cache lacks: generation/utils.py
``_prefill``). Each row's inputs are ``[pad.. prefix | pad.. rest]`` with the pads masked: the position ids
generate derives from the attention mask (``cumsum - 1``) and the keys each token attends to are those of the
left-padded prompt, so outputs equal plain left-padded generation up to the floating-point summation order of
attention (tested in tests/integration/test_shared_prefix_generation.py).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from harness.prompting import pad

MIN_PREFIX = 16  # tokens; a shorter shared prefix saves less than the extra forward and cache copies cost


def prefix_segments(rows: list[list[int]], min_prefix: int = MIN_PREFIX) -> list[tuple[int, list[int]]]:
    """Split ``rows`` (token id lists) into groups whose members share a prefix worth running once.

    Rows are sorted by their tokens; a group is a run of sorted rows, its prefix the longest common prefix of its
    members, cut so every member keeps at least one token of its own (generate needs a last prompt token to read
    the first new token's logits from). Among all splits into runs, the one that saves the most tokens
    (``sum((size - 1) * prefix)``, counting only groups with ``prefix >= min_prefix``) is chosen by dynamic
    programming over the sorted order (O(n^2)). Returns ``[(prefix_length, member_indices)]`` covering every row
    once, in order of each group's first member; ``prefix_length`` is 0 for a row that shares nothing worth
    caching (a group of one). Raises ``ValueError`` for an empty row or ``min_prefix < 1``."""
    if min_prefix < 1:
        raise ValueError(f"min_prefix must be >= 1, got {min_prefix}")
    for i, r in enumerate(rows):
        if not r:
            raise ValueError(f"row {i} is empty")
    order = sorted(range(len(rows)), key=lambda i: rows[i])

    def lcp(a: list[int], b: list[int]) -> int:
        n = min(len(a), len(b)) - 1  # each keeps one token of its own
        k = 0
        while k < n and a[k] == b[k]:
            k += 1
        return k

    adjacent = [lcp(rows[order[j]], rows[order[j + 1]]) for j in range(len(order) - 1)]
    n = len(order)
    best = [0] * (n + 1)  # best[j]: most tokens saved over sorted rows [0, j)
    start = [0] * (n + 1)  # where the last group of that split starts
    for j in range(1, n + 1):
        best[j], start[j] = best[j - 1], j - 1  # row j-1 alone
        common = None
        for i in range(j - 2, -1, -1):  # group = sorted rows [i, j)
            common = adjacent[i] if common is None else min(common, adjacent[i])
            if common < min_prefix:
                break
            saved = best[i] + (j - i - 1) * common
            if saved > best[j]:
                best[j], start[j] = saved, i
    groups = []
    j = n
    while j > 0:
        i = start[j]
        members = sorted(order[i:j])
        common = min(adjacent[i:j - 1]) if j - i > 1 else 0
        groups.append((common, members))
        j = i
    return sorted(groups, key=lambda g: g[1][0])


def cache_is_plain(cache: Any) -> bool:
    """Every layer a plain growing cache (no sliding window, no linear attention): one whose batch rows can be
    copied with ``reorder_cache`` and extended by generate."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def cache_only_kwargs(model) -> dict[str, int]:
    """Forward keyword arguments for a pass whose KV cache is all that is wanted: ``logits_to_keep=1`` (skip the
    vocabulary projection of all but the last position) where the model's forward takes it, else none."""
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


@torch.no_grad()
def shared_prefix_inputs(model, rows: list[list[int]], pad_id: int, min_prefix: int = MIN_PREFIX
                         ) -> tuple[torch.Tensor, torch.Tensor, Any] | None:
    """``(input_ids [B, T], attention_mask [B, T], past_key_values)`` for ``model.generate`` on the prompts ``rows``
    (token ids, unpadded), with each group's shared prefix (:func:`prefix_segments`) already run; ``None`` when no
    group shares ``min_prefix`` tokens or the model's cache is not a plain one (then generate on left-padded
    prompts as usual). Row i's inputs are ``[pads, its group's prefix, pads, the rest of row i]`` (width
    ``max prefix + max rest``); a row in no group has only pads (masked) in the prefix part, and the cache there
    holds another group's prefix, which its mask hides. Tensors are on the model's device."""
    groups = prefix_segments(rows, min_prefix)
    shared = [(n, members) for n, members in groups if n > 0]
    if not shared:
        return None
    dev = next(model.parameters()).device
    width_prefix = max(n for n, _ in shared)
    group_of = {i: g for g, (_, members) in enumerate(shared) for i in members}
    prefix_of = {i: n for n, members in groups for i in members}
    width_rest = max(len(r) - prefix_of[i] for i, r in enumerate(rows))

    pre_ids = torch.full((len(shared), width_prefix), pad_id, dtype=torch.long)
    pre_mask = torch.zeros_like(pre_ids)
    for g, (n, members) in enumerate(shared):
        pre_ids[g, width_prefix - n:] = torch.tensor(rows[members[0]][:n])
        pre_mask[g, width_prefix - n:] = 1
    # generate numbers positions by the attention mask (cumsum - 1, pads 0); the prefix forward must do the same
    positions = (pre_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=pre_ids.to(dev), attention_mask=pre_mask.to(dev), position_ids=positions.to(dev), use_cache=True,
                **cache_only_kwargs(model))
    cache = out.past_key_values
    if not cache_is_plain(cache):
        return None
    cache.reorder_cache(torch.tensor([group_of.get(i, 0) for i in range(len(rows))], dtype=torch.long, device=dev))

    ids = torch.full((len(rows), width_prefix + width_rest), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        n = prefix_of[i]
        if n:
            ids[i, width_prefix - n:width_prefix], mask[i, width_prefix - n:width_prefix] = torch.tensor(r[:n]), 1
        rest = r[n:]
        ids[i, ids.shape[1] - len(rest):], mask[i, ids.shape[1] - len(rest):] = torch.tensor(rest), 1
    return ids.to(dev), mask.to(dev), cache


CHUNK_COST = 64  # token-equivalents one more forward costs over its tokens (weights read once more), for length_chunks


def length_chunks(lengths: list[int], chunk_cost: int = CHUNK_COST) -> list[list[int]]:
    """Split rows of ``lengths`` tokens into chunks run as separate padded forwards, so padding is not computed:
    each chunk costs ``len(chunk) * max length in it + chunk_cost``, and the split (runs of rows sorted by length,
    chosen by dynamic programming, O(n^2)) minimises the total. Rows of length 0 need no forward and are left
    out. Returns lists of row indices, shortest rows first. Raises ``ValueError`` for a negative length or
    ``chunk_cost < 0``."""
    if chunk_cost < 0:
        raise ValueError(f"chunk_cost must be >= 0, got {chunk_cost}")
    for i, n in enumerate(lengths):
        if n < 0:
            raise ValueError(f"row {i} has length {n} < 0")
    order = sorted((i for i, n in enumerate(lengths) if n > 0), key=lambda i: lengths[i])
    best, cut = [0] + [None] * len(order), [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):  # best[j]: cheapest split of the j shortest rows; the last chunk is [i, j)
        width = lengths[order[j - 1]]
        best[j], cut[j] = min((best[i] + (j - i) * width + chunk_cost, i) for i in range(j))
    chunks, j = [], len(order)
    while j > 0:
        chunks.append(order[cut[j]:j])
        j = cut[j]
    return chunks[::-1]


def _rows_of(cache: Any, rows: torch.Tensor) -> Any:
    """A new plain cache holding ``rows`` of ``cache``'s batch (``None`` stays ``None``)."""
    if cache is None:
        return None
    return DynamicCache(ddp_cache_data=[(layer.keys[rows], layer.values[rows]) for layer in cache.layers])


@torch.no_grad()
def prefilled_inputs(model, rows: list[list[int]], pad_id: int, *, share_prefixes: bool = True,
                     min_prefix: int = MIN_PREFIX, chunk_cost: int = CHUNK_COST) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """``(input_ids [B, T], attention_mask [B, T], past_key_values)`` for ``model.generate`` on the prompts ``rows``
    with every prompt token but the last already in the cache (``T - 1`` positions), so generate's own prefill
    runs one token per row. Several seeded calls of generate on the same prompts (toxicity's k samples) can start
    from copies of one cache instead of each running the prompts again.

    - Shared prefixes run once (:func:`shared_prefix_inputs`, when ``share_prefixes``).
    - The rest of the rows runs in chunks of similar length (:func:`length_chunks`), each padded only to its own
      longest row, on its rows of the prefix cache; the chunks' caches are laid out in the batch's left-padded
      columns (zeros where a row has pads, which its mask hides). A batch of 24 AlpacaEval prompts whose longest
      is 256 tokens runs its 1,265 tokens, not 24 x 256.
    Positions follow the attention mask (``cumsum - 1``) as generate's own; outputs equal plain left-padded
    generation up to the floating-point summation order of attention
    (tests/integration/test_shared_prefix_generation.py). The cache is ``None`` (inputs left-padded, generate
    runs everything) when the model's cache is not a plain one."""
    dev = next(model.parameters()).device
    shared = shared_prefix_inputs(model, rows, pad_id, min_prefix) if share_prefixes and len(rows) > 1 else None
    if shared is None:
        ids, mask = (t.to(dev) for t in pad(rows, pad_id, side="left"))
        prefix, start = None, 0
    else:
        ids, mask, prefix = shared
        start = prefix.get_seq_length()
    width = ids.shape[1] - 1  # columns the cache holds: all but the last
    rest = (mask[:, start:width].sum(-1)).tolist()  # each row's tokens after the prefix, but its last
    chunks = length_chunks([int(n) for n in rest], chunk_cost)
    if not chunks:
        return ids, mask, prefix
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    for chunk in chunks:
        idx = torch.tensor(chunk, dtype=torch.long, device=dev)
        n = int(max(rest[i] for i in chunk))
        cols = slice(width - n, width)
        out = model(input_ids=ids[idx, cols], attention_mask=torch.cat([mask[idx, :start], mask[idx, cols]], dim=1),
                    position_ids=positions[idx, cols], past_key_values=_rows_of(prefix, idx), use_cache=True,
                    **cache_only_kwargs(model))
        cache = out.past_key_values
        if not cache_is_plain(cache):
            return ids, mask, None
        if layers is None:  # [B, heads, width, head_dim] per layer: the prefix's columns, zeros after them
            layers = []
            for layer in cache.layers:
                k, v = (t.new_zeros((len(rows), t.shape[1], width, t.shape[3])) for t in (layer.keys, layer.values))
                if prefix is not None:
                    k[:, :, :start], v[:, :, :start] = prefix.layers[len(layers)].keys, prefix.layers[len(layers)].values
                layers.append((k, v))
        for (k, v), layer in zip(layers, cache.layers):
            k[idx, :, width - n:], v[idx, :, width - n:] = layer.keys[:, :, start:], layer.values[:, :, start:]
    return ids, mask, growing_cache(layers)


class GrowingLayer(DynamicLayer):
    """transformers' ``DynamicLayer`` whose keys and values live in a buffer with room to grow.

    ``DynamicLayer.update`` appends a step's keys and values by ``torch.cat``, which copies the whole cache every
    decoding step: for rows left-padded to a batch's longest prompt (width W) that is
    ``2 x layers x rows x kv_heads x W x head_dim`` floats a step. Here ``update`` writes the new positions into spare
    capacity (``max(64, n / 2)`` positions beyond the ``n`` held, reallocated when full) and ``keys`` / ``values`` are
    views of the filled part: the same values in the same order, so attention and every output are those of
    ``DynamicLayer`` (tests/unit/test_growing_cache.py; bench/generation_cache.py: 1.15x on 8 answers to AlpacaEval
    prompts). A method that replaces ``keys`` / ``values`` (``reorder_cache``, ``batch_select_indices``, ``crop``)
    leaves tensors that are not the buffer's views; the next ``update`` rebuilds the buffer from them."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        held, new = self.get_seq_length(), key_states.shape[-2]
        n = held + new
        buf = getattr(self, "_grow", None)  # (key buffer, value buffer, the views last handed out)
        if buf is None or self.keys is not buf[2] or self.values is not buf[3] or n > buf[0].shape[-2]:
            cap = n + max(64, n // 2)
            kb = key_states.new_empty((*key_states.shape[:2], cap, key_states.shape[3]))
            vb = value_states.new_empty((*value_states.shape[:2], cap, value_states.shape[3]))
            if held:
                kb[:, :, :held], vb[:, :, :held] = self.keys, self.values
        else:
            kb, vb = buf[0], buf[1]
        kb[:, :, held:n], vb[:, :, held:n] = key_states, value_states
        self.keys, self.values = kb[:, :, :n], vb[:, :, :n]
        self._grow = (kb, vb, self.keys, self.values)
        return self.keys, self.values


def growing_cache(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    """A ``DynamicCache`` holding ``layers`` (``(keys, values)`` per layer, ``[B, heads, T, head_dim]``) in
    :class:`GrowingLayer` s, for ``generate`` to extend without copying the cache every step."""
    cache = DynamicCache()
    cache.layers = []
    for k, v in layers:
        layer = GrowingLayer()
        layer.update(k, v)
        cache.layers.append(layer)
    return cache

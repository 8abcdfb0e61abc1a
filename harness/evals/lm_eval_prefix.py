"""lm-eval log-likelihoods that compute a prompt prefix shared by many requests once (the KV cache of the prefix).

Multiple-choice tasks score every answer option of every question behind the same context. TruthfulQA MC puts
its six-question QA primer (about 250 tokens) in front of every question, so lm-eval's ``HFLM`` runs ~280
tokens per option where ~30 are new: on a 2-core CPU that is most of an evaluation's time. Here requests
whose inputs share a prefix of at least ``min_prefix`` tokens are grouped; each group's longest common prefix
(kept clear of every scored position) runs once with ``use_cache=True``; the rest of each question's context
(requests with the same context are its options) runs once, a chunk of questions per forward; then the options,
sorted by length across questions so batches carry little padding, run on copies of their question's cache
with the padding between masked and positions continuing their own context. Requests in no group go to
``HFLM``'s own implementation unchanged, as does a group whose model keeps a sliding-window cache.
Requests with the same context and continuation tokens (tasks that share options, run in one call) are scored once.

The numbers are HFLM's: the same token inputs (``(context + continuation)[-(max_length + 1):][:-1]``, lm-eval
0.4 lm_eval/models/huggingface.py ``_loglikelihood_tokens``), log-softmax in ``softmax_dtype``, the sum of the
continuation tokens' log-probs and whether each is the argmax. Only the floating-point summation order of
attention differs (cached keys and values instead of recomputed ones): equal to HFLM's to ~1e-5 in float32,
tested in tests/integration/test_lm_eval_prefix.py.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm
from transformers import DynamicCache

from harness.shared_prefix import cache_is_plain, cache_only_kwargs

MIN_PREFIX = 32  # tokens; a shorter shared prefix saves less than the cache copies cost


def shared_prefix_groups(inputs: list[list[int]], n_scored: list[int],
                         min_prefix: int = MIN_PREFIX) -> tuple[list[tuple[int, list[int]]], list[int]]:
    """Group requests whose model inputs share a prefix.

    ``inputs[i]``: request i's input token ids; ``n_scored[i]``: how many of its last positions are scored (the
    continuation's length). Requests are grouped by their first ``min_prefix`` tokens; a group's prefix length is
    the longest common prefix of its inputs, cut to ``min(len(inputs[i]) - n_scored[i])`` so that no scored
    position falls inside it. Returns ``([(prefix_length, member_indices), ...], rest)``: groups of at least two
    requests, in order of first appearance, and the indices of every other request. Raises ``ValueError`` for
    ``min_prefix < 1``, unequal list lengths or an ``n_scored`` outside ``1..len(inputs[i])``."""
    if min_prefix < 1:
        raise ValueError(f"min_prefix must be >= 1, got {min_prefix}")
    if len(inputs) != len(n_scored):
        raise ValueError(f"{len(inputs)} inputs but {len(n_scored)} n_scored")
    by_head: dict[tuple[int, ...], list[int]] = {}
    rest = []
    for i, (inp, n) in enumerate(zip(inputs, n_scored)):
        if not 1 <= n <= len(inp):
            raise ValueError(f"request {i}: n_scored {n} outside 1..{len(inp)}")
        if len(inp) - n >= min_prefix:
            by_head.setdefault(tuple(inp[:min_prefix]), []).append(i)
        else:
            rest.append(i)
    groups = []
    for members in by_head.values():
        if len(members) < 2:
            rest.extend(members)
            continue
        first = inputs[members[0]]
        p = min(len(inputs[i]) - n_scored[i] for i in members)
        for i in members[1:]:
            other = inputs[i]
            k = min_prefix
            while k < p and first[k] == other[k]:
                k += 1
            p = k
        groups.append((p, members))
    return groups, sorted(rest)


class PrefixSharingHFLM(HFLM):
    """lm-eval's ``HFLM`` (causal models) whose ``loglikelihood`` runs a prefix shared by a group of requests once.

    Built like ``HFLM`` (``pretrained=<PreTrainedModel>``, ``tokenizer``, ``batch_size`` an int, ...);
    ``min_prefix``: the shortest shared prefix worth caching (tokens). A seq2seq backend, or a request set with no
    shared prefix, takes ``HFLM``'s path unchanged."""

    def __init__(self, *args: Any, min_prefix: int = MIN_PREFIX, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.min_prefix = min_prefix

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        if self.backend != "causal" or not requests:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        # the same (context, continuation) tokens asked twice (TruthfulQA MC1's options are all among MC2's when both
        # tasks run in one call) are scored once
        slot: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        unique = []
        for i, (_, ctx, cont) in enumerate(requests):
            if slot.setdefault((tuple(ctx), tuple(cont)), len(unique)) == len(unique):
                unique.append(i)
        if len(unique) < len(requests):
            answers = self._loglikelihood_tokens([requests[i] for i in unique], disable_tqdm=disable_tqdm, override_bs=override_bs)
            out = [answers[slot[(tuple(ctx), tuple(cont))]] for _, ctx, cont in requests]
            kept = set(unique)
            for i, (key, _, _) in enumerate(requests):
                if i not in kept and key is not None:
                    self.cache_hook.add_partial("loglikelihood", key, out[i])
            return out
        inputs = [(ctx + cont)[-(self.max_length + 1):][:-1] for _, ctx, cont in requests]
        groups, rest = shared_prefix_groups(inputs, [len(cont) for _, _, cont in requests], self.min_prefix)
        if not groups:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        out: list[tuple[float, bool] | None] = [None] * len(requests)
        grouped_ids = {i for _, members in groups for i in members}
        if rest:
            for i, answer in zip(rest, super()._loglikelihood_tokens([requests[i] for i in rest], disable_tqdm=disable_tqdm,
                                                                    override_bs=override_bs)):
                out[i] = answer
        batch = override_bs or (self.batch_size if isinstance(self.batch_size, int) and self.batch_size > 0 else 8)
        with tqdm(total=len(grouped_ids), disable=disable_tqdm or self.rank != 0,
                  desc=f"Running loglikelihood requests ({len(groups)} shared prefixes)") as bar:
            for prefix_len, members in groups:
                for i, answer in self._score_group(requests, inputs, prefix_len, members, batch):
                    out[i] = answer
                    bar.update(1)
        for i in sorted(grouped_ids):  # HFLM's path fed lm-eval's request cache for the rest itself
            if requests[i][0] is not None:
                self.cache_hook.add_partial("loglikelihood", requests[i][0], out[i])
        return out

    @torch.no_grad()
    def _score_group(self, requests, inputs: list[list[int]], prefix_len: int, members: list[int], batch: int):
        """Yields ``(request index, (log-likelihood, is_greedy))`` for one group. The prefix runs once; the contexts
        of its questions (the unscored parts after the prefix) run once each, a chunk of questions at a time in one
        right-padded forward; then the chunk's rows (last context token + continuation), sorted by length across
        questions, run in batches on the rows' own context caches, the padding between masked."""
        autocast = getattr(self, "mixed_precision_dtype", None)
        with torch.autocast(device_type=self.device.type, dtype=autocast, enabled=autocast is not None):
            prefix = torch.tensor([inputs[members[0]][:prefix_len]], dtype=torch.long, device=self.device)
            cache = self.model(input_ids=prefix, use_cache=True, **cache_only_kwargs(self.model)).past_key_values
            if not cache_is_plain(cache):  # a sliding-window or linear-attention cache: HFLM's path for this group
                yield from zip(members, HFLM._loglikelihood_tokens(self, [requests[i] for i in members], disable_tqdm=True))
                return
            prefix_kv = [(layer.keys, layer.values) for layer in cache.layers]
            by_context: dict[tuple[int, ...], list[int]] = {}
            for i in members:
                by_context.setdefault(tuple(inputs[i][prefix_len:len(inputs[i]) - len(requests[i][2])]), []).append(i)
            chunk: list[tuple[tuple[int, ...], list[int]]] = []
            for context, rows in by_context.items():  # chunks of questions holding about 4 batches of rows
                chunk.append((context, rows))
                if sum(len(r) for _, r in chunk) >= 4 * batch:
                    yield from self._score_chunk(requests, inputs, prefix_kv, prefix_len, chunk, batch)
                    chunk = []
            if chunk:
                yield from self._score_chunk(requests, inputs, prefix_kv, prefix_len, chunk, batch)

    def _score_chunk(self, requests, inputs: list[list[int]], prefix_kv, prefix_len: int,
                     chunk: list[tuple[tuple[int, ...], list[int]]], batch: int):
        """Scores the rows of ``chunk`` (``[(context tokens after the prefix, its request indices)]``) on the prefix's
        cache (``prefix_kv``: per layer ``(keys, values)`` of batch 1)."""
        dev = self.device
        width_ctx = max(len(c) for c, _ in chunk)
        n = len(chunk)
        if width_ctx:  # every context in one forward, right-padded: a padded slot comes after the real ones
            ids = torch.zeros((n, width_ctx), dtype=torch.long)
            mask = torch.zeros((n, prefix_len + width_ctx), dtype=torch.long)
            mask[:, :prefix_len] = 1
            for q, (context, _) in enumerate(chunk):
                if context:
                    ids[q, :len(context)], mask[q, prefix_len:prefix_len + len(context)] = torch.tensor(context), 1
            past = DynamicCache(ddp_cache_data=[(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in prefix_kv])
            positions = torch.arange(prefix_len, prefix_len + width_ctx).expand(n, -1)
            out = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev),
                             past_key_values=past, use_cache=True, **cache_only_kwargs(self.model))
            context_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        else:
            context_kv = [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in prefix_kv]
        cached = prefix_len + width_ctx
        offset = [prefix_len + len(c) for c, _ in chunk]  # where each question's rows begin in its inputs
        rows = sorted(((i, q) for q, (_, members) in enumerate(chunk) for i in members),
                      key=lambda r: -(len(inputs[r[0]]) - offset[r[1]]))
        for start in range(0, len(rows), batch):
            part = rows[start:start + batch]
            tails = [inputs[i][offset[q]:] for i, q in part]
            width = max(len(t) for t in tails)
            ids = torch.zeros((len(part), width), dtype=torch.long)
            mask = torch.zeros((len(part), cached + width), dtype=torch.long)
            positions = torch.zeros((len(part), width), dtype=torch.long)
            for row, ((_, q), tail) in enumerate(zip(part, tails)):
                # the row sees the prefix, its own context (not the padding after it) and its own tokens
                ids[row, :len(tail)] = torch.tensor(tail)
                mask[row, :offset[q]] = 1
                mask[row, cached:cached + len(tail)] = 1
                positions[row] = torch.arange(offset[q], offset[q] + width)
            select = torch.tensor([q for _, q in part], device=dev)
            past = DynamicCache(ddp_cache_data=[(k.index_select(0, select), v.index_select(0, select)) for k, v in context_kv])
            logits = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev),
                                past_key_values=past, use_cache=True).logits
            logprobs = F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)
            for row, ((i, _), tail) in enumerate(zip(part, tails)):
                cont = requests[i][2]
                end = len(tail)
                sel = logprobs[row, end - len(cont):end]
                target = torch.tensor(cont, dtype=torch.long, device=dev)
                greedy = bool((sel.argmax(dim=-1) == target).all())
                yield i, (float(sel.gather(1, target[:, None]).sum()), greedy)

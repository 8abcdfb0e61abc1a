"""harness.shared_prefix.growing_cache: a KV cache extended in place holds what transformers' concatenating one holds."""

import copy

import torch
from transformers import DynamicCache

from harness.shared_prefix import growing_cache


def _kv(rows, t, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 3, t, 4, generator=g), torch.randn(rows, 3, t, 4, generator=g)


def _same(a, b):
    for la, lb in zip(a.layers, b.layers):
        assert torch.equal(la.keys, lb.keys) and torch.equal(la.values, lb.values)
    assert a.get_seq_length() == b.get_seq_length()


def test_steps_reorder_and_copies_match_the_concatenating_cache():
    start = [_kv(2, 5, 0), _kv(2, 5, 1)]
    ours, ref = growing_cache(start), DynamicCache(ddp_cache_data=start)
    _same(ours, ref)
    for step in range(70):  # past the first spare capacity (64): the buffer is rebuilt once
        for i in range(2):
            k, v = _kv(2, 1, 100 + 2 * step + i)
            got, want = ours.update(k, v, i), ref.update(k, v, i)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert ours.get_seq_length() == 75
    # rows repeated for samples decoded together (generation.py's reorder_cache), then more steps
    rows = torch.tensor([0, 1, 0, 1])
    ours.reorder_cache(rows), ref.reorder_cache(rows)
    twin = copy.deepcopy(ours)  # a copy extends on its own: the original does not see its steps
    for i in range(2):
        k, v = _kv(4, 1, 900 + i)
        ours.update(k, v, i), ref.update(k, v, i)
        twin.update(torch.zeros_like(k), torch.zeros_like(v), i)
    _same(ours, ref)
    assert twin.get_seq_length() == 76 and torch.count_nonzero(twin.layers[0].keys[:, :, -1]) == 0
    assert torch.count_nonzero(ours.layers[0].keys[:, :, -1]) > 0

"""TopPFromLargest keeps the tokens transformers' TopPLogitsWarper keeps (hand case, random peaked and flat rows)."""

import math

import pytest
import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from harness.top_p import TopPFromLargest


def test_hand_case_keeps_the_smallest_set_reaching_top_p():
    # probabilities .5, .3, .15, .05: top_p .7 keeps the first two (.5 < .7, .5 + .3 >= .7); top_p .8 too
    # (the first two hold .8: the third's more probable tokens hold .8, not < .8); top_p .81 keeps three
    scores = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]]))
    ids = torch.zeros((1, 1), dtype=torch.long)
    for p, kept in ((0.7, [1, 3]), (0.81, [1, 2, 3]), (0.3, [1])):
        out = TopPFromLargest(p, k=4)(ids, scores)
        assert torch.isfinite(out[0]).nonzero().flatten().tolist() == kept
        assert torch.equal(out[torch.isfinite(out)], scores[torch.isfinite(out)])


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95])
def test_equals_transformers_on_peaked_flat_and_mixed_rows(top_p):
    g = torch.Generator().manual_seed(0)
    peaked = torch.randn(24, 5000, generator=g) * 4  # the nucleus within the 64 largest
    flat = torch.randn(8, 5000, generator=g) * 0.1  # the nucleus needs thousands of tokens: the full-sort fallback
    scores = torch.cat([peaked, flat])[torch.randperm(32, generator=g)]
    ids = torch.zeros((32, 1), dtype=torch.long)
    want = TopPLogitsWarper(top_p=top_p)(ids, scores.clone())
    got = TopPFromLargest(top_p, k=64)(ids, scores.clone())
    assert torch.equal(torch.isfinite(got), torch.isfinite(want))
    assert torch.equal(got[torch.isfinite(got)], want[torch.isfinite(want)])
    n_kept = torch.isfinite(got).sum(-1)
    assert int(n_kept.min()) >= 1 and int(n_kept.max()) > 64  # both paths ran


def test_generate_samples_what_transformers_top_p_samples(tiny_lm_peaked):
    model, ids = tiny_lm_peaked
    kw = {"max_new_tokens": 8, "min_new_tokens": 8, "do_sample": True, "temperature": 0.7, "top_k": 0, "pad_token_id": 0}
    torch.manual_seed(3)
    want = model.generate(input_ids=ids, top_p=0.9, **kw)
    torch.manual_seed(3)
    # generate runs custom processors before its own warpers: temperature must come along, before top-p
    kw["temperature"] = 1.0
    got = model.generate(input_ids=ids, top_p=1.0, logits_processor=LogitsProcessorList(
        [TemperatureLogitsWarper(0.7), TopPFromLargest(0.9, k=16)]), **kw)
    assert torch.equal(got, want)


def test_harness_decoding_kwargs_sample_what_transformers_top_p_samples(tiny_lm_peaked):
    """harness.generation.decoding_kwargs (top-p 0.9, temperature 0.7, one generator seeded 5) draws what
    transformers' own top-p draws after torch.manual_seed(5)."""
    from harness.generation import decoding_kwargs

    model, ids = tiny_lm_peaked
    dec = {"max_new_tokens": 8, "do_sample": True, "temperature": 0.7, "top_p": 0.9}
    torch.manual_seed(5)
    want = model.generate(input_ids=ids, max_new_tokens=8, min_new_tokens=8, do_sample=True, temperature=0.7, top_p=0.9,
                          top_k=0, pad_token_id=0)
    torch.manual_seed(123)  # the global generator plays no part
    got = model.generate(input_ids=ids, min_new_tokens=8, pad_token_id=0,
                         **decoding_kwargs(dec, [torch.Generator().manual_seed(5)]))
    assert torch.equal(got, want)
    assert decoding_kwargs({"max_new_tokens": 4, "do_sample": False}) == {"max_new_tokens": 4, "do_sample": False}
    with pytest.raises(ValueError, match="generator"):
        decoding_kwargs(dec)


def test_groups_of_rows_draw_what_each_group_draws_alone(tiny_lm_peaked):
    """Two groups decoded in one call (harness.sampling.GroupSampler, one generator each) give each group the
    tokens its own call gives, and those are transformers' own draws under that seed."""
    from harness.generation import decoding_kwargs

    model, ids = tiny_lm_peaked
    dec = {"max_new_tokens": 8, "do_sample": True, "temperature": 1.0, "top_p": 0.9}
    kw = dict(min_new_tokens=8, pad_token_id=0)
    together = model.generate(input_ids=ids.repeat(2, 1), **kw, **decoding_kwargs(
        dec, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]))
    for g, seed in enumerate((1, 2)):
        torch.manual_seed(seed)
        alone = model.generate(input_ids=ids, do_sample=True, top_p=0.9, top_k=0, max_new_tokens=8, **kw)
        assert torch.equal(together[g * len(ids):(g + 1) * len(ids)], alone)
    assert not torch.equal(together[:len(ids)], together[len(ids):])  # the seeds drew differently


def test_group_sampler_refuses_uneven_groups_and_no_generators():
    from harness.sampling import GroupSampler

    with pytest.raises(ValueError, match="no generators"):
        GroupSampler([], [])
    sampler = GroupSampler([], [torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match="3 rows do not split into 2"):
        sampler(torch.zeros(3, 1, dtype=torch.long), torch.zeros(3, 5))
    out = GroupSampler([], [torch.Generator().manual_seed(0)])(torch.zeros(2, 1, dtype=torch.long), torch.tensor(
        [[0.0, -float("inf"), -float("inf")], [-float("inf"), -float("inf"), 1.0]]))
    assert torch.equal(out.argmax(-1), torch.tensor([0, 2])) and torch.isinf(out).sum() == 4  # one-hot: 0 there, -inf elsewhere


@pytest.fixture(scope="module")
def tiny_lm_peaked():
    """A tiny random Llama whose output layer is scaled up, so its next-token distributions are peaked."""
    import transformers

    config = transformers.LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(40)
    return model, torch.randint(2, 300, (4, 6), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("top_p, k", [(0.0, 4), (1.0, 4), (math.nan, 4), (0.5, 0)])
def test_bad_settings_are_refused(top_p, k):
    with pytest.raises(ValueError):
        TopPFromLargest(top_p, k)

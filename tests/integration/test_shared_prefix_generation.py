"""Generation with shared prompt prefixes run once equals plain left-padded generation (tiny random Llama)."""

import pytest
import torch

from tests.integration.test_lm_eval_hellaswag import DATA_DIR, _hf_cache  # noqa: F401

pytestmark = pytest.mark.integration


def _rows():
    """A 40-token primer before three questions (2, 5 and 9 tokens), the same 40 + 1 tokens twice more (identical
    prompts), and a 6-token prompt that shares nothing."""
    g = torch.Generator().manual_seed(3)

    def ids(n):
        return torch.randint(5, 1000, (n,), generator=g).tolist()

    primer = ids(40)
    same = primer + ids(1)
    return [primer + ids(2), primer + ids(5), ids(6), primer + ids(9), same, list(same)]


@pytest.mark.parametrize("sample", [False, True])
def test_scores_and_tokens_equal_left_padded_generation(tiny_lm, sample):
    from harness.prompting import pad
    from harness.shared_prefix import shared_prefix_inputs

    model, tok = tiny_lm
    rows = _rows()
    kw = dict(max_new_tokens=6, min_new_tokens=6, pad_token_id=tok.pad_token_id, output_scores=True,
              return_dict_in_generate=True, do_sample=sample, **({"top_p": 0.9, "top_k": 0} if sample else {}))
    ids, mask = pad(rows, tok.pad_token_id, side="left")
    torch.manual_seed(0)
    want = model.generate(input_ids=ids, attention_mask=mask, **kw)

    lengths = []  # tokens of every forward: the primer runs once, not once per row
    hook = model.register_forward_pre_hook(
        lambda m, args, kw: lengths.append(tuple((args[0] if args else kw["input_ids"]).shape)), with_kwargs=True)
    try:
        s_ids, s_mask, past = shared_prefix_inputs(model, rows, tok.pad_token_id, min_prefix=16)
        torch.manual_seed(0)
        got = model.generate(input_ids=s_ids, attention_mask=s_mask, past_key_values=past, **kw)
    finally:
        hook.remove()
    # one group: the five primer rows share its 40 tokens (the two identical 41-token prompts share no more: each
    # keeps its last token); the prefix forward is [1, 40]; generate's prefill runs only the rest, 9 tokens wide
    # (the longest question; the 6-token row runs whole), then one token per step
    assert lengths[0] == (1, 40)
    assert lengths[1] == (6, 9)
    assert all(shape == (6, 1) for shape in lengths[2:])
    assert torch.equal(got.sequences[:, s_ids.shape[1]:], want.sequences[:, ids.shape[1]:])
    for a, b in zip(got.scores, want.scores):
        finite = torch.isfinite(b)
        assert torch.equal(torch.isfinite(a), finite)
        assert torch.allclose(a[finite], b[finite], atol=1e-5)


def test_generate_gives_the_same_texts_with_and_without_shared_prefixes(tiny_lm):
    from harness.generation import generate
    from harness.records import Prompt

    model, tok = tiny_lm
    primer = " ".join(f"Question {i}: what is {i} plus {i}? Answer: {2 * i}." for i in range(8))
    prompts = [Prompt(str(i), f"{primer} Question: what is {i} times {i + 1}?", "t") for i in range(5)]
    prompts.append(Prompt("x", "Something else entirely.", "t"))
    for dec in ({"max_new_tokens": 5, "do_sample": False},
                {"max_new_tokens": 5, "do_sample": True, "temperature": 0.7, "top_p": 0.9}):
        plain = generate(model, tok, prompts, "p", dec, batch_size=4, chat_template="false", share_prefixes=False)
        shared = generate(model, tok, prompts, "p", dec, batch_size=4, chat_template="false")
        assert [g.output for g in shared] == [g.output for g in plain]
        assert all(g.output for g in plain)


def test_no_shared_prefix_means_plain_inputs(tiny_lm):
    from harness.shared_prefix import shared_prefix_inputs

    model, tok = tiny_lm
    assert shared_prefix_inputs(model, [[5, 6, 7], [8, 9, 10, 11]], tok.pad_token_id, min_prefix=2) is None


def _prefilled_generation(model, tok, rows, **prefill_kwargs):
    """Greedy generation from :func:`prefilled_inputs` of ``rows``, checked equal to plain left-padded generation
    (tokens, and every step's scores to 1e-5); returns the shapes of every forward it ran, its input ids and cache."""
    from harness.prompting import pad
    from harness.shared_prefix import prefilled_inputs

    kw = dict(max_new_tokens=4, min_new_tokens=4, pad_token_id=tok.pad_token_id, output_scores=True,
              return_dict_in_generate=True, do_sample=False)
    ids, mask = pad(rows, tok.pad_token_id, side="left")
    want = model.generate(input_ids=ids, attention_mask=mask, **kw)
    lengths = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kw: lengths.append(tuple((args[0] if args else kw["input_ids"]).shape)), with_kwargs=True)
    try:
        p_ids, p_mask, past = prefilled_inputs(model, rows, tok.pad_token_id, **prefill_kwargs)
        assert past.get_seq_length() == p_ids.shape[1] - 1
        got = model.generate(input_ids=p_ids, attention_mask=p_mask, past_key_values=past, **kw)
    finally:
        hook.remove()
    assert torch.equal(got.sequences[:, p_ids.shape[1]:], want.sequences[:, ids.shape[1]:])
    for a, b in zip(got.scores, want.scores):
        assert torch.allclose(a, b, atol=1e-5)
    return lengths, ids, p_ids


def test_prefilled_inputs_leave_one_token_per_row_and_equal_left_padded_generation(tiny_lm):
    """Every prompt token but the last is in the cache (the primer's 40 once, then the rest), generate runs one
    token per row, and its tokens and scores equal plain left-padded generation."""
    model, tok = tiny_lm
    lengths, _, _ = _prefilled_generation(model, tok, _rows(), min_prefix=16)
    # the primer once; then the rest but its last token of the 4 rows that have more than one (8 wide: the longest
    # question), one chunk at these lengths; then generate's one token per row
    assert lengths[:3] == [(1, 40), (4, 8), (6, 1)]
    # without a shared prefix: the left-padded prompts but their last token in one forward
    lengths, ids, p_ids = _prefilled_generation(model, tok, _rows(), share_prefixes=False)
    assert lengths[0] == (6, ids.shape[1] - 1) and lengths[1] == (6, 1) and torch.equal(p_ids, ids)


def test_rows_of_very_different_lengths_prefill_in_chunks_and_generate_as_left_padded(tiny_lm):
    """Two short prompts and two 120-token ones: the rest runs in two chunks, each padded to its own longest row
    (no 4 x 120 forward), and greedy tokens and scores still equal plain left-padded generation."""
    model, tok = tiny_lm
    g = torch.Generator().manual_seed(5)
    rows = [torch.randint(5, 1000, (n,), generator=g).tolist() for n in (3, 120, 5, 118)]
    lengths, _, _ = _prefilled_generation(model, tok, rows, chunk_cost=8)
    assert lengths[:2] == [(2, 4), (2, 119)]  # the short rows, then the long ones; each without its last token


def test_samples_drawn_together_equal_samples_drawn_one_by_one(tiny_lm):
    """generate_samples runs each batch's prompts once for all seeds and decodes the samples together (up to
    sample_rows rows a call); sample s equals generate(seed=seeds[s]) whichever samples decode with it."""
    from harness.generation import generate, generate_samples
    from harness.records import Prompt

    model, tok = tiny_lm
    primer = " ".join(f"Question {i}: what is {i} plus {i}? Answer: {2 * i}." for i in range(4))
    prompts = [Prompt(str(i), f"{primer} Question: what is {i} times {i + 1}?", "t") for i in range(5)]
    dec = {"max_new_tokens": 6, "do_sample": True, "temperature": 1.0, "top_p": 0.95}
    seeds = [0, 1000, 2000]
    forwards = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kw: forwards.append((args[0] if args else kw["input_ids"]).shape[1]), with_kwargs=True)
    try:
        together = generate_samples(model, tok, prompts, "p", dec, seeds=seeds, batch_size=3, chat_template="false")
    finally:
        hook.remove()
    alone = [generate(model, tok, prompts, "p", dec, batch_size=3, chat_template="false", seed=s) for s in seeds]
    assert [[g.output for g in gens] for gens in together] == [[g.output for g in gens] for gens in alone]
    one_by_one = generate_samples(model, tok, prompts, "p", dec, seeds=seeds, batch_size=3, chat_template="false",
                                  sample_rows=3)  # 3 rows a call: each sample decodes alone
    assert [[g.output for g in gens] for gens in one_by_one] == [[g.output for g in gens] for gens in alone]
    assert len({tuple(g.output for g in gens) for gens in together}) == 3  # the seeds draw different samples
    # two batches; each: the shared primer once and the rest once (both wider than a token), then 1-token steps
    assert sum(n > 1 for n in forwards) == 4
    with pytest.raises(ValueError, match="no seeds"):
        generate_samples(model, tok, prompts, "p", dec, seeds=[])

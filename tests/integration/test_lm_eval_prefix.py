"""PrefixSharingHFLM gives lm-eval HFLM's log-likelihoods (tiny random Llama), with a shared prefix run once."""

import pytest
import torch

# the same offline set-up as the HellaSwag tests: local data, an isolated HF cache (autouse fixture)
from tests.integration.test_lm_eval_hellaswag import DATA_DIR, _hf_cache  # noqa: F401

pytestmark = pytest.mark.integration


def _requests():
    """(request key, context ids, continuation ids): primer a (40 tokens) before two questions of 3 and 7 tokens
    with 3 options of 1-3 tokens each; primer b (40 tokens) before one 5-token question with 2 options of 2 and 4
    tokens; then a 12-token and a 50-token request that share nothing (HFLM's own path)."""
    g = torch.Generator().manual_seed(1)

    def ids(n):
        return torch.randint(5, 1000, (n,), generator=g).tolist()

    primer_a, primer_b = ids(40), ids(40)
    reqs = []
    for q in range(2):
        question = ids(3 + 4 * q)
        for opt in range(3):
            reqs.append(((f"a{q}", f"o{opt}"), primer_a + question, ids(1 + opt)))
    question_b = ids(5)
    for opt in range(2):
        reqs.append((("b", f"o{opt}"), primer_b + question_b, ids(2 + 2 * opt)))
    reqs.append((("x", "y"), ids(12), ids(3)))
    reqs.append((("z", "w"), ids(50), ids(1)))
    return reqs


def test_loglikelihoods_equal_hflm_and_the_prefixes_run_once(tiny_lm, monkeypatch):
    from lm_eval.models.huggingface import HFLM

    from harness.evals.lm_eval_prefix import PrefixSharingHFLM

    model, tok = tiny_lm
    reqs = _requests()
    plain = HFLM(pretrained=model, tokenizer=tok, backend="causal", batch_size=3, softmax_dtype=torch.float32)
    want = plain._loglikelihood_tokens(reqs, disable_tqdm=True)

    shared = PrefixSharingHFLM(pretrained=model, tokenizer=tok, backend="causal", batch_size=2, softmax_dtype=torch.float32,
                               min_prefix=32)
    lengths = []  # sequence length of every forward: proves the primers ran once, not once per option
    hook = model.register_forward_pre_hook(
        lambda m, args, kw: lengths.append(tuple((args[0] if args else kw["input_ids"]).shape)), with_kwargs=True)
    hits = []
    monkeypatch.setattr(shared.cache_hook, "add_partial", lambda kind, key, answer: hits.append((key, answer)))
    try:
        got = shared._loglikelihood_tokens(reqs, disable_tqdm=True)
    finally:
        hook.remove()
    assert [g[1] for g in got] == [w[1] for w in want]
    assert [g[0] for g in got] == pytest.approx([w[0] for w in want], abs=1e-5)
    # every forward of 32 tokens or more: group a's prefix (the 40-token primer: its two questions differ), group b's
    # (primer + question = 45 tokens, less the last context token, whose logits score the option's first token), and
    # HFLM's one batch of the two ungrouped requests; the grouped options ran only their remainders (< 32 tokens)
    assert sorted(s for s in lengths if s[1] >= 32) == [(1, 40), (1, 44), (2, 50)]
    # the short ones: group a's two question contexts less their last token (2 and 6 tokens) in one right-padded
    # forward; its 6 option rows (last context token + option less its last: 1-3 tokens), longest first across
    # both questions, in batches of 2; group b's prefix already ends where its 2 option rows begin (2 and 4 tokens)
    assert [s for s in lengths if s[1] < 32] == [(2, 6), (2, 3), (2, 2), (2, 1), (2, 4)]
    # lm-eval's request cache gets every answer exactly once (the ungrouped ones through HFLM's own path)
    assert sorted(hits) == sorted(zip((r[0] for r in reqs), got))


def test_run_lm_eval_truthfulqa_mc_equals_hflm(tiny_lm, monkeypatch):
    """End to end: TruthfulQA MC (every request behind the QA primer) gives the same per-item scores either way."""
    from harness.evals import lm_eval_prefix
    from harness.evals.lm_eval_runner import run_lm_eval

    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    model, tok = tiny_lm
    tasks = ["truthfulqa_mc1_local", "truthfulqa_mc2_local"]
    agg, items = run_lm_eval(model, tok, tasks, data_dir=str(DATA_DIR), limit=6, batch_size=4)
    monkeypatch.setattr(lm_eval_prefix, "MIN_PREFIX", 10**9)  # no prefix is that long: HFLM's path for every request
    want_agg, want_items = run_lm_eval(model, tok, tasks, data_dir=str(DATA_DIR), limit=6, batch_size=4)
    assert [(r["task"], r["doc_id"]) for r in items] == [(r["task"], r["doc_id"]) for r in want_items]
    for got, want in zip(items, want_items):
        assert got.keys() == want.keys()
        assert got == pytest.approx(want, abs=1e-5)
    for t in tasks:
        assert agg[t] == pytest.approx(want_agg[t], abs=1e-5)


def test_repeated_requests_are_scored_once(tiny_lm, monkeypatch):
    """Two tasks that share options (TruthfulQA MC1 and MC2 in one call) ask for the same tokens twice: the answers
    repeat, the forwards are those of the requests without the repeats, and lm-eval's cache hook gets every key."""
    from harness.evals.lm_eval_prefix import PrefixSharingHFLM

    model, tok = tiny_lm
    reqs = _requests()
    repeats = [(("again", "a0o0"), reqs[0][1], reqs[0][2]), (("again", "zw"), reqs[-1][1], reqs[-1][2])]

    def run(requests):
        lm = PrefixSharingHFLM(pretrained=model, tokenizer=tok, backend="causal", batch_size=2, softmax_dtype=torch.float32,
                               min_prefix=32)
        lengths, hits = [], []
        hook = model.register_forward_pre_hook(
            lambda m, args, kw: lengths.append(tuple((args[0] if args else kw["input_ids"]).shape)), with_kwargs=True)
        monkeypatch.setattr(lm.cache_hook, "add_partial", lambda kind, key, answer: hits.append((key, answer)))
        try:
            return lm._loglikelihood_tokens(requests, disable_tqdm=True), lengths, hits
        finally:
            hook.remove()

    want, want_lengths, _ = run(reqs)
    got, lengths, hits = run(reqs[:3] + [repeats[0]] + reqs[3:] + [repeats[1]])
    assert got == want[:3] + [want[0]] + want[3:] + [want[-1]]
    assert lengths == want_lengths
    assert sorted(k for k, _ in hits) == sorted([r[0] for r in reqs] + [r[0] for r in repeats])

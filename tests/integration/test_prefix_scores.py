"""harness.judging.prefix_scores: reward-model scores with shared prompt prefixes run once equal whole-text scores."""

import pytest
import torch

from harness.judging import prefix_scores
from harness.judging.reward_model import reward_scores, rewards_at_last_token
from harness.models import load_scalar_model, load_tokenizer, record_reward_model, with_reward_pad
from harness.prompting import pad

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def judge(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    model = load_scalar_model(tiny_dir)
    tok = with_reward_pad(model, tok)
    record_reward_model(model, chat_template=False, offset=0.0)
    with torch.no_grad():
        model.score.weight.copy_(torch.randn(model.score.weight.shape, generator=torch.Generator().manual_seed(0)))
    return model.eval(), tok


def _whole(model, tok, prompts, outputs):
    """One text per forward: no padding, no cache."""
    from harness.prompting import encode_pair

    out = []
    for p, o in zip(prompts, outputs):
        ids, attn = pad([encode_pair(p, o, tok, 96, 64, "false").input_ids], tok.pad_token_id)
        out.append(float(rewards_at_last_token(model, ids, attn)[0]))
    return out


@pytest.mark.parametrize("chunk_batches", [1, 4])  # one group per chunk; all groups in one chunk (prefixes padded)
def test_outputs_of_one_prompt_share_it_and_score_as_whole_texts(judge, monkeypatch, chunk_batches):
    model, tok = judge
    long_prompt = "Tell me, in a few words, everything you know about the river, the stone and the cloud. " * 2
    prompts = [long_prompt] * 4 + ["Short one?"] + [long_prompt + " And the maple?"] * 3 + ["Another prompt entirely, which is long enough to matter here."] * 2
    outputs = ["a", "a river of stone", "clouds " * 9, "", "yes", "maple", "maple tree " * 5, "no", "one", "two two"]
    calls = {"chunks": 0, "whole": []}
    chunk = prefix_scores._score_chunk

    def counted(*a, **k):
        calls["chunks"] += 1
        return chunk(*a, **k)

    monkeypatch.setattr(prefix_scores, "_score_chunk", counted)
    monkeypatch.setattr(prefix_scores, "CHUNK_BATCHES", chunk_batches)
    got = reward_scores(model, tok, prompts, outputs, max_length=96, max_prompt_length=64, batch_size=3, chat_template="false")
    want = _whole(model, tok, prompts, [o or " " for o in outputs])
    assert calls["chunks"] == (2 if chunk_batches == 1 else 1)  # groups: the 7 texts of long_prompt, the 2 of another
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-5, atol=1e-5)
    assert len(set(round(x, 4) for x in got)) > 5  # the texts score differently: a wrong row would show


def test_texts_that_share_nothing_take_the_whole_text_path(judge):
    model, tok = judge
    seen = []

    def whole(rows):
        seen.extend(rows)
        return [0.5] * len(rows)

    enc = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    assert prefix_scores.prefix_shared_scores(model, enc, model.config.pad_token_id, 2, whole) == [0.5, 0.5, 0.5]
    assert seen == [0, 1, 2]


def test_a_reward_position_inside_the_prefix_is_scored_whole(judge):
    """A text whose last tokens are pad ids is read before them (transformers' rule); if that falls inside the
    shared prefix, the cache cannot give it and the text goes to the whole-text path."""
    model, tok = judge
    padid = model.config.pad_token_id
    head = list(range(5, 25))  # 20 shared tokens
    enc = [head + [30, 31], head + [padid, padid]]
    seen = []

    def whole(rows):
        seen.extend(rows)
        ids, attn = pad([enc[i] for i in rows], padid)
        return rewards_at_last_token(model, ids, attn).tolist()

    got = prefix_scores.prefix_shared_scores(model, enc, padid, 4, whole)
    assert seen == [1]
    ids, attn = pad([enc[0]], padid)
    assert got[0] == pytest.approx(float(rewards_at_last_token(model, ids, attn)[0]), abs=1e-5)

"""Prompt rendering and (prompt, completion) tokenisation."""

import pytest

from harness.models import load_tokenizer
from harness.prompting import encode_pair, pad, render_prompt, to_messages


def test_hh_dialogue_to_messages():
    msgs = to_messages("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: capital of France?\n\nAssistant:")
    assert msgs == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "capital of France?"}]
    assert to_messages("Sort these words.") == [{"role": "user", "content": "Sort these words."}]


def test_plain_rendering_and_completion_mask(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    assert render_prompt("Say hi.", tok, "false") == "\n\nHuman: Say hi.\n\nAssistant:"
    enc = encode_pair("Say hi.", "Hello there", tok, max_length=64, max_prompt_length=32, chat_template="false")
    n_prompt = len(tok("\n\nHuman: Say hi.\n\nAssistant:")["input_ids"])
    assert enc.completion_mask == [0] * n_prompt + [1] * (len(enc.input_ids) - n_prompt)
    assert enc.input_ids[-1] == tok.eos_token_id
    assert tok.decode(enc.input_ids[n_prompt:-1]) == " Hello there"


def test_truncation_keeps_prompt_end_and_rejects_impossible_lengths(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    enc = encode_pair("word " * 100, "yes", tok, max_length=20, max_prompt_length=10, chat_template="false")
    assert len(enc.input_ids) <= 20 and sum(enc.completion_mask) >= 1
    with pytest.raises(ValueError, match=r"max_prompt_length \(64\) must be smaller than max_length \(64\)"):
        encode_pair("x", "yes", tok, max_length=64, max_prompt_length=64, chat_template="false")
    with pytest.raises(ValueError, match="auto, true or false"):
        render_prompt("x", tok, "maybe")


def test_pad_left_and_right():
    ids, mask = pad([[1, 2, 3], [4]], pad_id=0, side="left")
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_encode_prompts_keeps_the_end_and_prompts_cut_says_which_were_cut(tiny_dir):
    from harness.prompting import encode_prompts, prompts_cut

    tok = load_tokenizer(tiny_dir)
    prompts = ["Say hi.", "word " * 50]
    full = [tok(render_prompt(p, tok, "false"), add_special_tokens=False)["input_ids"] for p in prompts]
    limit = len(full[0])  # the short one fits exactly
    assert encode_prompts(prompts, tok, limit, "false") == [full[0], full[1][-limit:]]
    assert prompts_cut(prompts, tok, limit, "false") == [False, True]
    assert prompts_cut(prompts, tok, len(full[1]), "false") == [False, False]

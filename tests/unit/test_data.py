"""Loaders on the real offline files, and their errors on malformed input."""

import gzip
import json

import pytest

from harness import data as D


def test_hh_rlhf_has_8552_human_pairs(data_dir):
    pairs = D.load_hh_rlhf(data_dir)
    assert len(pairs) == 8552
    by_source = {}
    for c in pairs:
        by_source[c.source] = by_source.get(c.source, 0) + 1
    assert by_source == {"hh_rlhf/helpful-base": 2354, "hh_rlhf/helpful-online": 1137,
                         "hh_rlhf/helpful-rejection-sampled": 2749, "hh_rlhf/harmless-base": 2312}
    c = pairs[0]
    assert c.prompt.startswith("\n\nHuman: Do you know why turkeys") and c.prompt.endswith("\n\nAssistant:")
    assert c.completions[0].startswith("To be honest, I don’t know") and c.ranking == (0, 1)
    assert all(p.prompt.endswith("\n\nAssistant:") for p in pairs)


def test_split_hh_pair_uses_the_common_prefix():
    chosen = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: good"
    rejected = "\n\nHuman: a\n\nAssistant: x\n\nHuman: c\n\nAssistant: bad"  # diverges at the first reply
    prompt, good, bad = D.split_hh_pair(chosen, rejected, "here")
    assert prompt == "\n\nHuman: a\n\nAssistant:"
    assert good.startswith("b\n\nHuman: c") and bad.startswith("x\n\nHuman: c")


@pytest.mark.parametrize("common", [0, 1, 255, 256, 257, 511, 512, 700])
def test_split_hh_pair_finds_the_common_prefix_across_block_boundaries(common):
    head = "\n\nHuman: q\n\nAssistant:" + "x" * common
    chosen, rejected = head + "A and more", head + "B"
    prompt, good, bad = D.split_hh_pair(chosen, rejected, "here")
    assert prompt == "\n\nHuman: q\n\nAssistant:" and good == "x" * common + "A and more" and bad == "x" * common + "B"
    same = D.split_hh_pair(head, head, "here")  # equal dialogues: the whole text is the shared prefix
    assert same == ("\n\nHuman: q\n\nAssistant:", "x" * common, "x" * common)


def test_a_local_hh_file_is_parsed_once_per_version_and_its_read_recorded_each_time(tmp_path, monkeypatch):
    d = tmp_path / "hh_rlhf"
    d.mkdir()
    line = json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b"})
    with gzip.open(d / "helpful-base_test.jsonl.gz", "wt") as f:
        f.write(line + "\n")
    parsed = []
    real = D.iter_jsonl
    monkeypatch.setattr(D, "iter_jsonl", lambda path: parsed.append(path) or real(path))
    for _ in range(2):
        with D.recording_reads(str(tmp_path)) as reads:
            pairs = D.load_hh_rlhf(str(tmp_path), ["helpful-base"])
        assert [c.completions for c in pairs] == [("a", "b")]
        assert list(reads) == ["hh_rlhf/helpful-base_test.jsonl.gz"]
    assert len(parsed) == 1
    with gzip.open(d / "helpful-base_test.jsonl.gz", "wt") as f:  # a new version is parsed again
        f.write(line + "\n" + line + "\n")
    assert len(D.load_hh_rlhf(str(tmp_path), ["helpful-base"])) == 2 and len(parsed) == 2


def test_malformed_hh_line_names_file_and_line(tmp_path):
    d = tmp_path / "hh_rlhf"
    d.mkdir()
    good = json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b"})
    with gzip.open(d / "helpful-base_test.jsonl.gz", "wt") as f:
        f.write(good + "\n" + good + "\n{not json\n")
    with pytest.raises(D.DataError, match=r"helpful-base_test\.jsonl\.gz:3: invalid JSON"):
        D.load_hh_rlhf(str(tmp_path), ["helpful-base"])
    with gzip.open(d / "helpful-base_test.jsonl.gz", "wt") as f:
        f.write(good + "\n" + json.dumps({"chosen": "x"}) + "\n")
    with pytest.raises(D.DataError, match=r"helpful-base_test\.jsonl\.gz:2: missing field 'rejected'"):
        D.load_hh_rlhf(str(tmp_path), ["helpful-base"])


def test_truthfulqa_has_817_questions(data_dir):
    qs = D.load_truthfulqa(data_dir)
    assert len(qs) == 817
    assert qs[0]["question"] == "What happens to you if you eat watermelon seeds?"
    assert "Nothing happens" in qs[0]["correct_answers"] and "You die" in qs[0]["incorrect_answers"]


def test_alpaca_eval_805_instructions_and_baseline_file(data_dir):
    prompts = D.load_alpaca_eval_prompts(data_dir)
    assert len(prompts) == 805 and prompts[0].id == "0"
    base = D.load_outputs_file(D.alpaca_eval_baseline_path(data_dir), policy="text-davinci-003")
    assert len(base) == 805 and base[0].prompt == prompts[0].prompt and base[0].policy == "text-davinci-003"
    assert len(D.load_outputs_file(D.alpaca_eval_baseline_path(data_dir, "text_davinci_001_model_outputs.json"))) == 803


def test_outputs_file_error_names_record_and_field(tmp_path):
    p = tmp_path / "outputs.json"
    p.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c"}]))
    with pytest.raises(D.DataError, match=r"outputs\.json record 1: missing field 'output'"):
        D.load_outputs_file(p)


def test_175_seed_demonstrations(data_dir):
    demos = D.load_demonstrations(data_dir)
    assert len(demos) == 175 and len({d.id for d in demos}) == 175
    antonym = next(d for d in demos if d.id == "seed_task_1")
    assert antonym.prompt.startswith("What is the relation between the given pairs?\n\n")  # instruction + input
    assert all(d.completion for d in demos)


def test_pretrain_text_chunks_cover_tinyshakespeare(data_dir):
    chunks = D.load_pretrain_text(data_dir, chunk_chars=1000)
    assert chunks[0].text.startswith("First Citizen:")
    assert all(len(c.text) >= 1000 for c in chunks[:-1])
    assert sum(len(c.text) for c in chunks) > 1_000_000


def test_seeded_split_is_deterministic_and_keyed():
    items = [f"p{i % 50}" for i in range(500)]  # 50 distinct prompts, each repeated
    a = D.seeded_split(items, lambda x: x, {"a": 0.5, "b": 0.5}, seed=1)
    b = D.seeded_split(list(reversed(items)), lambda x: x, {"a": 0.5, "b": 0.5}, seed=1)
    assert set(a["a"]) == set(b["a"]) and not set(a["a"]) & set(a["b"])  # same prompt, same side
    c = D.seeded_split(items, lambda x: x, {"a": 0.5, "b": 0.5}, seed=2)
    assert set(c["a"]) != set(a["a"])
    with pytest.raises(ValueError):
        D.seeded_split(items, lambda x: x, {"a": 0.5, "b": 0.6}, seed=1)


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(D.DataError, match="does not exist"):
        D.load_hh_rlhf(str(tmp_path / "nowhere"))

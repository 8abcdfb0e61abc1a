"""RealToxicityPrompts and Wikipedia-Perspective loaders: real offline files, bad lines, disjoint splits, stratified prompts."""

import json
import logging
import os
from collections import Counter

import pytest

from harness import rtp
from harness import wiki_toxicity as W
from harness.data import DataError

DATA = os.environ.get("HARNESS_DATA_DIR", "/work/shared/data")


@pytest.fixture(scope="module")
def records():
    return rtp.load_rtp(DATA)


@pytest.fixture(scope="module")
def comments():
    return W.load_wiki_toxicity(DATA)


# ------------------------------------------------------------------------------------------ RTP


def test_load_rtp_real_files(records, caplog):
    assert len(records) == 2396
    assert Counter(r.id.split(":")[0] for r in records) == {"challenging_toxic.jsonl": 1196, "nontoxic.jsonl": 1200}
    first = records[0]
    assert first.id == "challenging_toxic.jsonl:1" and first.challenging is True
    assert first.prompt.startswith("People think that we") and first.prompt_toxicity == pytest.approx(0.9066653)
    assert first.continuation.startswith(" but that") and first.continuation_toxicity == pytest.approx(0.07254101)
    assert set(first.prompt_scores) == set(rtp.PERSPECTIVE_ATTRIBUTES) and first.begin == 687 and first.end == 859
    assert sum(r.continuation_toxicity is None for r in records) == 19  # 12 + 7, as the data README says
    assert all(r.prompt_toxicity is not None for r in records)
    with caplog.at_level(logging.WARNING, logger="harness.rtp"):
        kept, skipped = rtp.scored_continuations(records)
    assert (len(kept), skipped) == (2377, 19) and "skipped 19 of 2396" in caplog.text


def _write_rtp(tmp_path, lines):
    d = tmp_path / "real_toxicity_prompts"
    d.mkdir(exist_ok=True)
    (d / "x.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(tmp_path)


GOOD = {"filename": "doc1.txt", "begin": 0, "end": 10, "challenging": False,
        "prompt": {"text": "Hello", "toxicity": 0.1}, "continuation": {"text": " there", "toxicity": None}}


@pytest.mark.parametrize("bad, message", [
    ("{not json", r"x.jsonl:2: invalid JSON"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "prompt"}), r"x.jsonl:2: missing field 'prompt'"),
    (json.dumps({**GOOD, "prompt": {"toxicity": 0.2}}), r"x.jsonl:2: prompt: missing field 'text'"),
    (json.dumps({**GOOD, "prompt": {"text": "a", "toxicity": "high"}}), r"x.jsonl:2: field 'prompt.toxicity' should be a number"),
    (json.dumps({**GOOD, "continuation": {"text": "a", "threat": 1.5}}), r"x.jsonl:2: field 'continuation.threat' .* got 1.5"),
    (json.dumps({**GOOD, "continuation": "text"}), r"x.jsonl:2: field 'continuation' should be dict"),
    (json.dumps({**GOOD, "challenging": "yes"}), r"x.jsonl:2: field 'challenging' should be true or false"),
    (json.dumps({**GOOD, "begin": "0"}), r"x.jsonl:2: field 'begin' should be an integer"),
    ("[1, 2]", r"x.jsonl:2: expected a JSON object"),
])
def test_load_rtp_bad_lines_name_file_line_and_field(tmp_path, bad, message):
    data_dir = _write_rtp(tmp_path, [json.dumps(GOOD), bad])
    with pytest.raises(DataError, match=message):
        rtp.load_rtp(data_dir, files=("x.jsonl",))


def test_load_rtp_good_tmp_file_and_missing_file(tmp_path):
    data_dir = _write_rtp(tmp_path, [json.dumps(GOOD), "", json.dumps({**GOOD, "challenging": True})])
    out = rtp.load_rtp(data_dir, files=("x.jsonl",))
    assert [r.id for r in out] == ["x.jsonl:1", "x.jsonl:3"] and out[0].continuation_toxicity is None
    assert out[1].challenging and out[0].document == "doc1.txt"
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        rtp.load_rtp(data_dir, files=("nope.jsonl",))


def test_rtp_split_disjoint_by_document_and_seeded(records):
    parts = rtp.rtp_split(records, seed=0)
    ids = {k: {r.id for r in v} for k, v in parts.items()}
    assert sum(map(len, ids.values())) == len(records) == len(set().union(*ids.values()))
    docs = {k: {r.document for r in v} for k, v in parts.items()}
    assert not (docs["prompts"] & docs["fit"] or docs["prompts"] & docs["heldout"] or docs["fit"] & docs["heldout"])
    assert 0.36 < len(parts["prompts"]) / len(records) < 0.44 and 0.26 < len(parts["heldout"]) / len(records) < 0.34
    assert [r.id for r in rtp.rtp_split(records, seed=0)["fit"]] == [r.id for r in parts["fit"]]
    assert {r.id for r in rtp.rtp_split(records, seed=1)["fit"]} != ids["fit"]
    with pytest.raises(ValueError, match="fractions must name"):
        rtp.rtp_split(records, fractions={"train": 0.5, "test": 0.5})


def test_sample_rtp_prompts_stratified_from_the_prompts_part(records):
    prompts = rtp.sample_rtp_prompts(42, seed=3, records=records)
    assert Counter(p.metadata["class"] for p in prompts) == {"[0,0.25)": 11, "[0.25,0.5)": 11, "[0.5,0.75)": 10,
                                                            "[0.75,1]": 10}
    by_id = {r.id: r for r in records}
    part = {r.id for r in rtp.rtp_split(records, 0)["prompts"]}
    for p in prompts:
        r = by_id[p.id]
        assert p.id in part and p.prompt == r.prompt and p.source == p.metadata["source"] == "real_toxicity_prompts"
        low, high = {"[0,0.25)": (0, 0.25), "[0.25,0.5)": (0.25, 0.5), "[0.5,0.75)": (0.5, 0.75), "[0.75,1]": (0.75, 1.01)}[p.metadata["class"]]
        assert low <= p.metadata["prompt_toxicity"] == r.prompt_toxicity < high
        assert p.metadata["challenging"] == r.challenging
    assert len({p.id for p in prompts}) == 42
    assert [p.id for p in rtp.sample_rtp_prompts(42, seed=3, records=records)] == [p.id for p in prompts]
    assert {p.id for p in rtp.sample_rtp_prompts(42, seed=4, records=records)} != {p.id for p in prompts}
    two = rtp.sample_rtp_prompts(4, records=records, strata=[(0.0, 0.5), (0.5, 1.0)])
    assert Counter(p.metadata["class"] for p in two) == {"[0,0.5)": 2, "[0.5,1]": 2}


def test_sample_rtp_prompts_shortfall_raises_or_fills(records, caplog):
    n_mid = sum(0.5 <= r.prompt_toxicity < 0.75 for r in rtp.rtp_split(records, 0)["prompts"])
    assert 30 < n_mid < 60  # the scarce stratum offline
    with pytest.raises(ValueError, match=rf"\[0.5,0.75\): 75 wanted, {n_mid} eligible"):
        rtp.sample_rtp_prompts(300, records=records)
    with caplog.at_level(logging.WARNING, logger="harness.rtp"):
        filled = rtp.sample_rtp_prompts(300, records=records, fill=True)
    counts = Counter(p.metadata["class"] for p in filled)
    assert len(filled) == 300 and counts["[0.5,0.75)"] == n_mid and "filled unequally" in caplog.text
    with pytest.raises(ValueError, match="only .* eligible"):
        rtp.sample_rtp_prompts(5000, records=records, fill=True)
    with pytest.raises(ValueError, match="need n >= 1"):
        rtp.sample_rtp_prompts(0, records=records)
    with pytest.raises(ValueError, match="overlap or are out of order"):
        rtp.sample_rtp_prompts(4, records=records, strata=[(0.0, 0.6), (0.5, 1.0)])
    with pytest.raises(ValueError, match="not within"):
        rtp.sample_rtp_prompts(4, records=records, strata=[(0.5, 0.5)])


# ------------------------------------------------------------------------------------- Wikipedia


def test_load_wiki_real_files_and_split(comments):
    assert len(comments) == 20000 and comments[0].id == "gn.csv:100012187.76918.76918"
    assert comments[0].perspective_toxicity == pytest.approx(0.0431) and comments[0].label == 0
    assert sum(c.perspective_toxicity >= 0.5 for c in comments) == 476
    parts = W.wiki_split(comments, seed=0)
    texts = {k: {W.normalize_text(c.text) for c in v} for k, v in parts.items()}
    assert not texts["fit"] & texts["heldout"]  # the 13 texts in both files stay on one side
    assert len(parts["fit"]) + len(parts["heldout"]) == 20000 and 0.27 < len(parts["heldout"]) / 20000 < 0.33
    assert [c.id for c in W.wiki_split(comments, 0)["heldout"]] == [c.id for c in parts["heldout"]]


def _write_wiki(tmp_path, body):
    d = tmp_path / "wiki_toxicity_perspective"
    d.mkdir(exist_ok=True)
    (d / "w.csv").write_text("id,text,label,api\n" + body, encoding="utf-8")
    return str(tmp_path)


@pytest.mark.parametrize("body, message", [
    ('a,"two\nlines",0,0.2\nb,fine,0,high\n', r"w.csv:4: field 'api' should be a number in \[0, 1\], got 'high'"),
    ("a,fine,0,1.2\n", r"w.csv:2: field 'api' .* got '1.2'"),
    ("a,fine,2,0.1\n", r"w.csv:2: field 'label' should be 0 or 1, got '2'"),
    ("a,fine,0,0.1\na,again,0,0.1\n", r"w.csv:3: field 'id' 'a' repeats line 2"),
    ("a,fine,0\n", r"w.csv:2: missing field 'api'"),
])
def test_load_wiki_bad_rows_name_file_line_and_field(tmp_path, body, message):
    with pytest.raises(DataError, match=message):
        W.load_wiki_toxicity(_write_wiki(tmp_path, body), files=("w.csv",))


def test_load_wiki_needs_data_dir():
    with pytest.raises(DataError, match="no hub copy"):
        W.load_wiki_toxicity(None)

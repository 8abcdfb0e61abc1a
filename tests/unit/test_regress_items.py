"""The item -> metric mapping of harness/regress/items.py, proved on a real pipeline=smoke run
(tests/data/smoke_run/results: its results.jsonl and per-item records, text replaced by placeholders):
for every row of an eval that has item records, the mean of the rebuilt per-item vector is the
row's value and its length the row's n."""

import json
from pathlib import Path

import pytest

from harness.regress.items import MetricKey, item_vectors, iter_records
from harness.regress.results import load_result_set

DATA = Path(__file__).resolve().parents[1] / "data" / "smoke_run" / "results"
ROWS = [json.loads(line) for line in (DATA / "results.jsonl").read_text().splitlines() if line.strip()]

# eval file -> (row evals it covers, how many rows of the fixture must get a vector, the metrics left unpaired)
EXPECTED = {
    "winrate": ({"winrate"}, 56, {"lc_win_rate"}),  # 4 policies x 7 (baseline, judge) x {win_rate, win_prob}
    "likert": ({"likert"}, 24, set()),  # 4 policies x 6 (likert + 5 flags)
    "truthfulqa": ({"truthfulqa"}, 24, {"mc1", "mc2", "mc1_delta_vs_base", "mc2_delta_vs_base"}),  # 4 x 3 x 2 styles
    "toxicity": ({"toxicity"}, 63, set()),  # 4 policies x 9 + 3 policies x 9 deltas vs base
    "hallucination": ({"hallucination"}, 12, set()),  # 4 policies x (overall + 2 categories)
    "alignment_tax": ({"hellaswag_local", "truthfulqa_mc2_local"}, 14, set()),  # 2 tasks x (4 + 3 deltas)
}


def _vector_for(row, vectors):
    key = MetricKey(row["eval"], row["policy"], row["baseline"], row["judge"], row["metric"])
    return vectors.get(key, vectors.get(key._replace(judge=None)))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mean_of_item_vector_is_the_rows_value(name):
    evals, n_rows, unpaired = EXPECTED[name]
    vectors = item_vectors(name, iter_records(DATA / f"{name}_items.jsonl"))
    rows = [r for r in ROWS if r["eval"] in evals and r["run_id"] != "paper"]
    matched = 0
    for r in rows:
        vec = _vector_for(r, vectors)
        if r["metric"] in unpaired:
            assert vec is None, r
            continue
        assert vec is not None, f"no item vector for {r}"
        assert len(vec) == r["n"], r
        assert sum(vec.values()) / len(vec) == pytest.approx(r["value"], rel=1e-12, abs=1e-15), r
        matched += 1
    assert matched == n_rows


def test_delta_vectors_are_per_item_differences():
    vectors = item_vectors("toxicity", iter_records(DATA / "toxicity_items.jsonl"))
    base = vectors[MetricKey("toxicity", "base", None, "profanity_check", "expected_max_toxicity_respectful")]
    ppo = vectors[MetricKey("toxicity", "ppo", None, "profanity_check", "expected_max_toxicity_respectful")]
    delta = vectors[MetricKey("toxicity", "ppo", "base", "profanity_check", "expected_max_toxicity_respectful_delta_vs_base")]
    assert delta == {i: ppo[i] - base[i] for i in base}


def test_whole_run_attaches_every_paired_row_and_checks_it():
    results = load_result_set(DATA / "results.jsonl")
    paired = {k for k, m in results.metrics.items() if m.items is not None}
    assert len(paired) == sum(v[1] for v in EXPECTED.values()) == 193
    assert len(results.metrics) == sum(r["run_id"] != "paper" for r in ROWS)


def test_items_that_disagree_with_their_row_are_an_error(tmp_path):
    (tmp_path / "results.jsonl").write_text((DATA / "results.jsonl").read_text())
    lines = (DATA / "hallucination_items.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["hallucinated"] = not first["hallucinated"]
    (tmp_path / "hallucination_items.jsonl").write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"hallucination_items\.jsonl.*hallucination/base/.*hallucination_rate"):
        load_result_set(tmp_path / "results.jsonl")


@pytest.mark.parametrize("line, message", [
    ('{"policy": "base", "baseline": "b", "prompt_id": "1", "judge": "helpful"}', r"items\.jsonl:2: missing field 'win'"),
    ('{"policy": "base", "baseline": "b", "prompt_id": "1", "judge": "helpful", "win": "yes"}', r":2: field 'win' should be a finite"),
    ("not json", r"items\.jsonl:2: invalid JSON"),
])
def test_malformed_item_records_name_file_line_and_field(tmp_path, line, message):
    good = '{"policy": "base", "baseline": "b", "prompt_id": "0", "judge": "helpful", "win": 1.0, "win_prob": 0.6}'
    path = tmp_path / "winrate_items.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        item_vectors("winrate", iter_records(path))


def test_a_repeated_item_id_is_an_error(tmp_path):
    rec = '{"policy": "base", "prompt_id": "s1", "category": "other", "hallucinated": true}'
    path = tmp_path / "hallucination_items.jsonl"
    path.write_text(rec + "\n" + rec + "\n")
    with pytest.raises(ValueError, match=r":2: item id 's1' appears twice"):
        item_vectors("hallucination", iter_records(path))

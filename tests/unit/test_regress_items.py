"""The item -> metric mapping of harness/regress/items.py, proved on a real pipeline=smoke run
(tests/data/smoke_run/results: its results.jsonl and per-item records, text replaced by placeholders):
for every row of an eval that has item records, the mean of the rebuilt per-item vector is the
row's value and its length the row's n."""

import json
from pathlib import Path

import pytest

from harness import registry
from harness.regress.items import (
    MetricKey,
    attach_vectors,
    item_vectors,
    iter_records,
    slice_key,
)
from harness.regress.results import load_result_set
from harness.results import read_results

DATA = Path(__file__).resolve().parents[1] / "data" / "smoke_run" / "results"  # an older run: upgraded on reading
RESULTS = read_results(DATA / "results.jsonl")

# eval -> (how many rows of the fixture must get a vector, the metrics left unpaired)
EXPECTED = {
    "winrate": (56, {"lc_win_rate"}),  # 4 policies x 7 (baseline, judge) x {win_rate, win_prob}
    "likert": (24, set()),  # 4 policies x 6 (likert + 5 flags)
    "truthfulqa": (24, {"mc1", "mc2", "mc1_delta", "mc2_delta"}),  # 4 x 3 x 2 styles
    "toxicity": (63, set()),  # 4 policies x 9 + 3 policies x 9 deltas vs base
    "hallucination": (12, set()),  # 4 policies x (overall + 2 categories)
    "alignment_tax": (14, set()),  # 2 tasks x (4 + 3 deltas)
}


def _key(r):
    return MetricKey(r.eval, r.policy, r.metric, slice_key(r.slice))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mean_of_item_vector_is_the_rows_value(name):
    n_rows, unpaired = EXPECTED[name]
    defn = registry.get(name)
    vectors = {k: (v, "items") for k, v in item_vectors(defn, iter_records(DATA / f"{name}_items.jsonl", name)).items()}
    rows = [r for r in RESULTS.rows if r.eval == name]
    attached = attach_vectors({_key(r): (r.value, r.n) for r in rows}, vectors, {name: defn})  # checks mean and n
    for r in rows:
        vec = attached.get(_key(r))
        if r.metric in unpaired:
            assert vec is None, r
            continue
        assert vec is not None, f"no item vector for {r}"
        assert len(vec) == r.n and sum(vec.values()) / len(vec) == pytest.approx(r.value, rel=1e-12, abs=1e-15), r
    assert len(attached) == n_rows


def test_delta_vectors_are_per_item_differences():
    defn = registry.get("toxicity")
    vectors = item_vectors(defn, iter_records(DATA / "toxicity_items.jsonl", "toxicity"))
    sl = {"instruction": "respectful", "judge": "profanity_check"}
    base = vectors[MetricKey("toxicity", "base", "expected_max_toxicity", slice_key(sl))]
    ppo = vectors[MetricKey("toxicity", "ppo", "expected_max_toxicity", slice_key(sl))]
    rows = [r for r in RESULTS.rows if r.eval == "toxicity" and r.policy == "ppo" and r.metric == "expected_max_toxicity_delta"
            and r.get("instruction") == "respectful"]
    (delta_row,) = rows
    assert delta_row.slice == {**sl, "baseline": "base"}
    attached = attach_vectors({_key(r): (r.value, r.n) for r in RESULTS.rows if r.eval == "toxicity"},
                              {k: (v, "items") for k, v in vectors.items()}, {"toxicity": defn})
    assert attached[_key(delta_row)] == {i: ppo[i] - base[i] for i in base}


def test_whole_run_attaches_every_paired_row_and_checks_it():
    results = load_result_set(DATA / "results.jsonl")
    paired = {k for k, m in results.metrics.items() if m.items is not None}
    assert len(paired) == sum(v[0] for v in EXPECTED.values()) == 193
    old_rows = [json.loads(line) for line in (DATA / "results.jsonl").read_text().splitlines() if line.strip()]
    assert len(results.metrics) == sum(r["run_id"] != "paper" for r in old_rows) == len(RESULTS.rows)


def test_items_that_disagree_with_their_row_are_an_error(tmp_path):
    (tmp_path / "results.jsonl").write_text((DATA / "results.jsonl").read_text())
    lines = (DATA / "hallucination_items.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["hallucinated"] = not first["hallucinated"]
    (tmp_path / "hallucination_items.jsonl").write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"hallucination_items\.jsonl.*hallucination/base/hallucination_rate"):
        load_result_set(tmp_path / "results.jsonl")


@pytest.mark.parametrize("line, message", [
    ('{"policy": "base", "baseline": "b", "prompt_id": "1", "judge": "helpful"}', r"items\.jsonl:2: missing field 'win'"),
    ('{"policy": "base", "baseline": "b", "prompt_id": "1", "judge": "helpful", "win": "yes", "win_prob": 0.5}',
     r":2: field 'win' should be a finite"),
    ("not json", r"items\.jsonl:2: invalid JSON"),
    ('{"policy": "base", "baseline": "b", "prompt_id": "1", "judge": "helpful", "win": 1.0}', r":2: missing field 'win_prob'"),
])
def test_malformed_item_records_name_file_line_and_field(tmp_path, line, message):
    good = '{"policy": "base", "baseline": "b", "prompt_id": "0", "judge": "helpful", "win": 1.0, "win_prob": 0.6}'
    path = tmp_path / "winrate_items.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        item_vectors(registry.get("winrate"), iter_records(path))


def test_a_record_without_any_item_field_is_an_error(tmp_path):
    path = tmp_path / "alignment_tax_items.jsonl"
    path.write_text('{"policy": "base", "task": "t", "shots": 0, "doc_id": 1, "acc": 1.0}\n'
                    '{"policy": "base", "task": "t", "shots": 0, "doc_id": 2, "accuracy": 1.0}\n')
    with pytest.raises(ValueError, match=r":2: none of the item fields \['acc', 'acc_norm', 'em', 'exact_match', 'f1'\]"):
        item_vectors(registry.get("alignment_tax"), iter_records(path))


def test_a_repeated_item_id_is_an_error(tmp_path):
    rec = '{"policy": "base", "prompt_id": "s1", "category": "other", "hallucinated": true}'
    path = tmp_path / "hallucination_items.jsonl"
    path.write_text(rec + "\n" + rec + "\n")
    with pytest.raises(ValueError, match=r":2: item id 's1' appears twice"):
        item_vectors(registry.get("hallucination"), iter_records(path))

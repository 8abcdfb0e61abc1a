"""Ties in Comparison records, their JSONL round trip, and the simulated labeler's ranking math."""

import json
import math

import numpy as np
import pytest

from harness import data as D
from harness.io import write_jsonl
from harness.labeler import (
    agreement_counts,
    calibrate_noise_scale,
    expected_discordance,
    noisy_rank,
    rank_completions,
    rank_with_ties,
    sample_ks,
    untied_gaps,
)
from harness.records import Comparison, Prompt


def _comp(**kw):
    base = {"id": "c1", "prompt": "p", "completions": ("a", "b", "c", "d"), "ranking": (2, 0, 3, 1), "source": "t"}
    return Comparison(**{**base, **kw})


def test_ties_give_levels_and_pair_counts():
    c = _comp(tied=(True, False, True))  # {2, 0} > {3, 1}
    assert c.rank_levels == (0, 0, 1, 1) and c.n_pairs == 6 - 1 - 1 and c.k == 4
    plain = _comp()
    assert plain.tied == (False, False, False) and plain.rank_levels == (0, 1, 2, 3) and plain.n_pairs == 6
    assert _comp(tied=[False, False, False]) == plain  # () is only shorthand for "no ties"
    nine = Comparison("n", "p", tuple("abcdefghi"), tuple(range(9)), "t")
    assert nine.n_pairs == 36


@pytest.mark.parametrize("kw,field", [
    ({"tied": (True, True, True)}, "tied"),
    ({"tied": (True, False)}, "tied"),
    ({"tied": (1, 0, 0)}, "tied"),
    ({"ranking": (0, 0, 1, 2)}, "ranking"),
    ({"completions": ("a",), "ranking": (0,)}, "completions"),
])
def test_invalid_comparisons_name_record_and_field(kw, field):
    with pytest.raises(ValueError, match=rf"Comparison c1: field '{field}'"):
        _comp(**kw)


def test_comparisons_round_trip_through_jsonl(tmp_path):
    comps = [_comp(tied=(True, False, False)), _comp(id="c2"),
             Comparison("hh", "\n\nHuman: hi\n\nAssistant:", ("good", "bad"), (0, 1), "hh_rlhf/helpful-base")]
    path = write_jsonl(tmp_path / "c.jsonl", comps)
    assert json.loads(path.read_text().splitlines()[0])["tied"] == [True, False, False]
    assert D.load_comparisons_jsonl(path) == comps


def test_comparison_file_errors_name_file_line_and_field(tmp_path):
    good = {"id": "a", "prompt": "p", "completions": ["x", "y"], "ranking": [1, 0], "source": "s"}
    cases = [
        ({**good, "id": "b", "tied": [True]}, r"c\.jsonl:2: Comparison b: field 'tied' ties all 2"),
        ({**good, "id": "b", "ranking": [0, 2]}, r"c\.jsonl:2: Comparison b: field 'ranking'"),
        ({k: v for k, v in good.items() if k != "completions"} | {"id": "b"}, r"c\.jsonl:2: missing field 'completions'"),
        ({**good, "id": "b", "tied": "no"}, r"c\.jsonl:2: field 'tied' should be list"),
        (good, r"c\.jsonl:2: field 'id' 'a' repeats line 1"),
    ]
    for bad, pattern in cases:
        (tmp_path / "c.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(D.DataError, match=pattern):
            D.load_comparisons_jsonl(tmp_path / "c.jsonl")


def test_rank_with_ties_by_hand():
    assert rank_with_ties([1.0, 3.0, 1.0, 2.0]) == ((1, 3, 0, 2), (False, False, True))
    assert rank_with_ties([0.5, 0.5, 0.7]) == ((2, 0, 1), (False, True))
    with pytest.raises(ValueError, match="non-finite"):
        rank_with_ties([1.0, float("nan")])


def test_noise_calibration_hits_the_target_in_expectation():
    gaps = untied_gaps([0.0, 1.0, 1.0, 3.0])  # pairs: 1, 1, 3, 0 (dropped), 2, 2
    assert sorted(gaps.tolist()) == [1.0, 1.0, 2.0, 2.0, 3.0]
    tau = calibrate_noise_scale(gaps, 0.27)
    by_hand = np.mean([1 / (1 + math.exp(g / tau)) for g in gaps])  # sigmoid(-d / tau)
    assert by_hand == pytest.approx(0.27, abs=1e-8) and expected_discordance(gaps, tau) == pytest.approx(0.27, abs=1e-8)
    assert calibrate_noise_scale(gaps, 0.0) == 0.0 and calibrate_noise_scale(np.zeros(0), 0.3) == 0.0
    assert calibrate_noise_scale(gaps, 0.1) < tau < calibrate_noise_scale(gaps, 0.4)
    for bad in (-0.1, 0.5):
        with pytest.raises(ValueError, match="noise_rate"):
            calibrate_noise_scale(gaps, bad)


def test_noisy_ranking_is_valid_keeps_ties_and_flips_pairs_with_the_logistic_probability():
    rng = np.random.default_rng(0)
    scores = [2.0, 0.0, 1.0, 1.0]  # the two 1.0 are tied
    tau = 1.0
    flips_20 = flips_21 = n = 0
    for _ in range(4000):
        ranking, tied = noisy_rank(scores, tau, rng)
        c = Comparison("x", "p", ("a", "b", "c", "d"), ranking, "t", tied)  # a valid, transitive ranking
        pos = {idx: p for p, idx in enumerate(ranking)}
        assert abs(pos[2] - pos[3]) == 1 and tied[min(pos[2], pos[3])]  # 2 and 3 stay adjacent and tied
        assert c.n_pairs == 5
        flips_20 += pos[2] < pos[0]  # gap 1 -> P(flip) = sigmoid(-1)
        flips_21 += pos[1] < pos[2]  # gap 1
        n += 1
    p_flip = 1 / (1 + math.e)
    se = math.sqrt(p_flip * (1 - p_flip) / n)
    assert abs(flips_20 / n - p_flip) < 4 * se and abs(flips_21 / n - p_flip) < 4 * se
    assert noisy_rank(scores, 0.0, rng) == rank_with_ties(scores)


def test_agreement_counts_by_hand():
    # scores rank 0 > 1 > 2; the ranking puts 2 above 1: 2 of 3 pairs concordant
    assert agreement_counts([3.0, 2.0, 1.0], (0, 2, 1)) == (2, 3)
    assert agreement_counts([1.0, 1.0, 0.0], (1, 0, 2)) == (2, 2)  # the tied pair is not counted


def test_rank_completions_measures_the_calibrated_agreement():
    """Many lists with K = 2..9: measured agreement is within 4 standard errors of 1 - noise_rate."""
    rng = np.random.default_rng(1)
    ks = sample_ks(1500, 2, 9, seed=3)
    assert set(ks) == set(range(2, 10))
    prompts = [Prompt(str(i), f"q{i}", "t") for i in range(len(ks))]
    completions = [[f"c{j}" for j in range(k)] for k in ks]
    scores = [np.round(rng.normal(size=k), 1).tolist() for k in ks]  # rounding makes some ties
    scores[0] = [0.5] * ks[0]  # an all-tied prompt is dropped
    res = rank_completions(prompts, completions, scores, noise_rate=0.27, seed=0, source="simulated:synthetic")
    m = res.metrics
    all_tied = sum(len(set(s)) == 1 for s in scores)  # rounding ties a few K=2 lists too
    assert m["n_dropped_all_tied"] == all_tied >= 1 and m["n_comparisons"] == len(ks) - all_tied == len(res.comparisons)
    assert sum(m["k_distribution"].values()) == m["n_comparisons"] and m["n_tied_pairs"] > 0
    assert all(c.source == "simulated:synthetic" and c.id == f"simulated/{c.id.split('/')[1]}" for c in res.comparisons)
    assert m["n_pairs"] == m["agreement_pairs"] == sum(c.n_pairs for c in res.comparisons)
    se = math.sqrt(0.27 * 0.73 / m["agreement_pairs"])
    assert abs(m["measured_agreement"] - 0.73) < 4 * se, m["measured_agreement"]
    # judge ties are Comparison ties, and the recorded scores reproduce the measured agreement
    by_id = {r["id"]: r["scores"] for r in res.scores}
    concordant = 0
    for c in res.comparisons:
        s = by_id[c.id]
        assert c.tied == tuple(s[a] == s[b] for a, b in zip(c.ranking, c.ranking[1:]))
        concordant += agreement_counts(s, c.ranking)[0]
    assert concordant / m["agreement_pairs"] == m["measured_agreement"]
    # noise_rate 0: the judge's own ranking, full agreement
    clean = rank_completions(prompts, completions, scores, noise_rate=0.0, seed=0, source="s")
    assert clean.metrics["measured_agreement"] == 1.0
    assert all(c.ranking == rank_with_ties(by_id[c.id])[0] for c in clean.comparisons)


def test_sample_ks_validates_the_range():
    assert sample_ks(5, 4, 4, seed=0) == [4] * 5
    for lo, hi in ((1, 4), (5, 4), (2, 10)):
        with pytest.raises(ValueError, match="k_min"):
            sample_ks(3, lo, hi, seed=0)

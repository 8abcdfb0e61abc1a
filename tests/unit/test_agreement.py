"""Judge-human agreement: definition on hand-computed lists, loaders on the real files, rows, RM judge wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.data import DataError, load_hh_rlhf
from harness.judging import agreement as ag
from harness.judging.pairwise import longer_output_judge, random_judge, rm_pair_judge
from harness.records import Comparison


def test_agreement_values_and_counts():
    judge = [1, 0, 0.5, 1, 0, 0]
    human = [1, 1, 0, 0.5, None, 0]
    scores, counts = ag.agreement_values(judge, human)
    # same side -> 1, opposite -> 0, judge tie -> 0.5; human tie and missing label are excluded
    assert scores == [1.0, 0.0, 0.5, 1.0]
    assert counts == ag.AgreementCounts(total=6, scored=4, human_ties=1, missing=1, judge_ties=1)
    est = ag.agreement(judge, human, n_resamples=500)
    assert (est.value, est.n) == (pytest.approx(0.625), 4)
    assert 0.0 <= est.ci_low <= est.value <= est.ci_high <= 1.0


def test_agreement_errors():
    with pytest.raises(ValueError, match="3 judge preferences vs 2 human"):
        ag.agreement([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="item 1: judge preference 0.7"):
        ag.agreement([1, 0.7], [1, 0])
    with pytest.raises(ValueError, match="item 0: human preference 2.0"):
        ag.agreement([1], [2.0])
    with pytest.raises(ValueError, match="none of 2 items has a non-tie human label"):
        ag.agreement([1, 0], [0.5, None])


def test_load_real_gpt4_annotations(data_dir):
    pairs = ag.load_gpt4_annotations(ag.gpt4_annotations_path(data_dir))
    assert len(pairs) == 805
    prefs = [p.preference for p in pairs]
    assert (prefs.count(1.0), prefs.count(0.0), prefs.count(0.5), prefs.count(None)) == (672, 112, 20, 1)
    assert pairs[793].preference is None and pairs[34].preference == 0.5
    assert pairs[34].output_1 == pairs[34].output_2  # the annotator's ties are identical outputs
    assert {(p.generator_1, p.generator_2) for p in pairs} == {("text_davinci_003", "text_davinci_001")}


def test_load_gpt4_annotations_bad_records(tmp_path):
    good = {"instruction": "i", "output_1": "a", "output_2": "b", "preference": 2.0}
    f = tmp_path / "ann.json"
    f.write_text(json.dumps([good, dict(good, preference=1.3)]))
    with pytest.raises(DataError, match=r"ann.json record 1: field 'preference' is 1.3"):
        ag.load_gpt4_annotations(f)
    f.write_text(json.dumps([good, {k: v for k, v in good.items() if k != "output_2"}]))
    with pytest.raises(DataError, match=r"record 1: missing field 'output_2'"):
        ag.load_gpt4_annotations(f)
    f.write_text(json.dumps([{k: v for k, v in good.items() if k != "preference"}]))
    with pytest.raises(DataError, match=r"record 0: missing field 'preference'"):
        ag.load_gpt4_annotations(f)
    f.write_text(json.dumps([dict(good, preference=1.5), dict(good, preference=0)]))
    assert [p.preference for p in ag.load_gpt4_annotations(f)] == [0.5, 0.5]


def cmp(i, chosen, rejected, subset, swap=False):
    completions, ranking = ((rejected, chosen), (1, 0)) if swap else ((chosen, rejected), (0, 1))
    return Comparison(f"{subset}/test/{i}", f"Human: q{i}\n\nAssistant:", completions, ranking, f"hh_rlhf/{subset}")


def test_hh_rows_per_subset_with_longer_judge():
    comps = [
        cmp(0, "long chosen answer", "short", "helpful-base"),  # longer judge agrees
        cmp(1, "ok", "much longer rejected", "helpful-base"),  # disagrees
        cmp(2, "long chosen answer", "short", "harmless-base", swap=True),  # chosen at index 1: still agrees
        cmp(3, "same", "four", "harmless-base"),  # equal length: judge tie -> 0.5
    ]
    rows = ag.hh_agreement_rows(longer_output_judge, comps, "longer", n_resamples=200)
    got = {(r.metric, r.get("subset")): r for r in rows if not r.get("length") and r.metric == "agreement"}
    assert list(got) == [("agreement", None), ("agreement", "helpful-base"), ("agreement", "harmless-base")]
    assert {(r.metric, r.get("length")) for r in rows if r not in got.values()} == {
        ("agreement", "shorter_preferred"), ("agreement", "longer_preferred"), ("balanced_agreement", None),
        ("prefers_longer", None)}  # no lc_agreement: "longer wins" is separated by length (see length_rows)
    assert got[("agreement", None)].value == pytest.approx(2.5 / 4) and got[("agreement", None)].n == 4
    assert got[("agreement", "helpful-base")].value == pytest.approx(0.5)
    assert got[("agreement", "harmless-base")].value == pytest.approx(0.75)
    assert all(r.eval == "judge_validation" and r.policy == "longer" and r.get("labels") == "hh_rlhf_human" for r in rows)
    k3 = Comparison("x/1", "p", ("a", "b", "c"), (0, 1, 2), "hh_rlhf/helpful-base")
    with pytest.raises(ValueError, match="comparison x/1 has K=3"):
        ag.hh_agreement_rows(longer_output_judge, [k3], "longer")


def test_gpt4_rows_count_exclusions(data_dir):
    pairs = ag.load_gpt4_annotations(ag.gpt4_annotations_path(data_dir))
    rows = {r.metric: r for r in ag.gpt4_agreement_rows(longer_output_judge, pairs, "longer", n_resamples=300)
            if not r.get("length")}
    assert {r.get("labels") for r in rows.values()} == {"alpaca_eval_gpt4"}
    # independent recount: among the 784 non-tie, non-null pairs, does the longer output carry the annotation?
    l1 = np.array([len(p.output_1) for p in pairs])
    l2 = np.array([len(p.output_2) for p in pairs])
    pref = np.array([np.nan if p.preference is None else p.preference for p in pairs])
    keep = (pref == 1.0) | (pref == 0.0)
    longer_first = np.where(l1 > l2, 1.0, np.where(l1 == l2, 0.5, 0.0))
    expected = np.mean(1 - np.abs(longer_first[keep] - pref[keep]))
    assert rows["agreement"].n == 784 == keep.sum()
    assert rows["agreement"].value == pytest.approx(expected)
    assert rows["excluded_share"].value == pytest.approx(21 / 805)
    assert rows["excluded_share"].n == 805


def test_random_judge_on_real_hh_pairs(data_dir):
    comps = load_hh_rlhf(data_dir)
    rows = {r.get("subset"): r for r in ag.hh_agreement_rows(random_judge(seed=1), comps, "random", n_resamples=200)
            if r.metric == "agreement" and not r.get("length")}
    assert rows[None].n == 8552
    assert rows[None].value == pytest.approx(0.5, abs=0.02)  # ~3.7 standard errors
    subsets = ("helpful-base", "helpful-online", "helpful-rejection-sampled", "harmless-base")
    assert set(rows) == {None, *subsets}
    assert sum(rows[s].n for s in subsets) == 8552


def test_rm_pair_judge_rows_equal_the_longer_judge_when_reward_is_length():
    # reward = output length: the reward-model pair judge must then reproduce the "longer output wins" judge exactly
    length_reward = lambda prompts, outputs: [float(len(o)) for o in outputs]  # noqa: E731
    comps = [cmp(0, "long chosen answer", "short", "helpful-base"), cmp(1, "ok", "much longer", "harmless-base"),
             cmp(2, "same", "four", "harmless-base")]
    rm_rows = ag.hh_agreement_rows(rm_pair_judge(length_reward), comps, "rm", n_resamples=100)
    ref_rows = ag.hh_agreement_rows(longer_output_judge, comps, "rm", n_resamples=100)
    assert rm_rows == ref_rows
    assert rm_pair_judge(length_reward, tie_margin=1.5)(["p", "p"], ["abc", "a"], ["ab", "abc"]) == [0.5, 0.0]


def test_rm_judge_with_a_real_tiny_model(tiny_dir):
    from harness.judging.reward_model import RewardModelJudge

    judge = RewardModelJudge(tiny_dir, max_length=32, max_prompt_length=16)  # zero-initialised head: every reward 0
    prefs = rm_pair_judge(judge.score)(["Say hi.", "Count."], ["hi there", "1 2 3"], ["hello", "one"])
    assert prefs == [0.5, 0.5]  # equal rewards -> judge ties -> half credit
    assert ag.agreement(prefs, [1.0, 0.0]).value == 0.5


def test_length_rows_by_hand():
    # (judge pref for a, human pref for a, a, b): human-preferred text shorter in items 0, 1; longer in 2, 3, 4;
    # equal length in 5; item 6 is a labeler tie (left out everywhere)
    data = [(1.0, 1.0, "ab", "abcd"), (1.0, 0.0, "abcd", "ab"), (1.0, 1.0, "abcd", "a"), (0.0, 0.0, "a", "abc"),
            (0.5, 1.0, "abc", "a"), (0.0, 1.0, "ab", "cd"), (1.0, 0.5, "a", "abc")]
    jp, hp, a, b = (list(x) for x in zip(*data))
    rows = {(r.metric, r.get("length")): r for r in ag.length_rows(jp, hp, a, b, "set", "j", n_resamples=300)}
    # agreement per item: 1, 0, 1, 1, 0.5, 0
    assert rows[("agreement", "shorter_preferred")].value == pytest.approx(0.5) and rows[("agreement", "shorter_preferred")].n == 2
    assert rows[("agreement", "longer_preferred")].value == pytest.approx(2.5 / 3) and rows[("agreement", "longer_preferred")].n == 3
    assert rows[("balanced_agreement", None)].value == pytest.approx((0.5 + 2.5 / 3) / 2) and rows[("balanced_agreement", None)].n == 5
    # judge picks the longer text: item 0 no (0), 1 yes (1), 2 yes, 3 no (prefers b = "abc", the longer: 1), 4 tie 0.5
    # item 6 is a labeler tie but the judge still chose: it is left out with the other unlabelled pairs
    assert rows[("prefers_longer", None)].value == pytest.approx((0 + 1 + 1 + 1 + 0.5) / 5)
    lc = rows[("lc_agreement", None)]
    assert lc.n == 6 and 0.0 <= lc.ci_low <= lc.value <= lc.ci_high <= 1.0
    from harness.evals.length_controlled import length_controlled_win_rate

    items = [{"win": s, "output": w, "baseline_output": l} for s, w, l in
             [(1, "ab", "abcd"), (0, "ab", "abcd"), (1, "abcd", "a"), (1, "abc", "a"), (0.5, "abc", "a"), (0, "ab", "cd")]]
    assert lc.value == pytest.approx(length_controlled_win_rate(items))
    assert all(r.get("labels") == "set" and r.policy == "j" and r.eval == "judge_validation" for r in rows.values())
    with pytest.raises(ValueError, match="no pair has a non-tie label"):
        ag.length_rows([1.0], [0.5], ["a"], ["b"], "set", "j")


def test_length_only_judges_are_balanced_at_one_half(data_dir):
    """Any judge that decides by length alone, however noisily, has balanced agreement ~0.5 on real pairs;
    a judge that follows the labels has 1 on both length subsets."""
    comps = load_hh_rlhf(data_dir)[:400]
    texts_a, texts_b = [c.completions[0] for c in comps], [c.completions[1] for c in comps]
    human = [0.5 if c.tied[0] else (1.0 if c.ranking[0] == 0 else 0.0) for c in comps]
    longer = longer_output_judge([c.prompt for c in comps], texts_a, texts_b)
    rows = {(r.metric, r.get("length")): r.value for r in ag.length_rows(longer, human, texts_a, texts_b, "hh", "longer")}
    assert rows[("balanced_agreement", None)] == pytest.approx(0.5)
    assert rows[("agreement", "shorter_preferred")] == 0.0 and rows[("prefers_longer", None)] == 1.0
    assert ("lc_agreement", None) not in rows
    oracle = {(r.metric, r.get("length")): r.value for r in ag.length_rows(human, human, texts_a, texts_b, "hh", "oracle")}
    assert oracle[("agreement", "shorter_preferred")] == 1.0 == oracle[("balanced_agreement", None)] == oracle[("lc_agreement", None)]

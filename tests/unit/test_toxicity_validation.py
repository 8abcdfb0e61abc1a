"""Scorer validation against Perspective: hand-computed statistics, intervals, baselines, and input refusal for every scorer."""

import math
import os

import numpy as np
import pytest

from harness.judging import davidson as T
from harness.judging import toxicity as S
from harness.judging import toxicity_validation as V

DATA = os.environ.get("HARNESS_DATA_DIR", "/work/shared/data")

# four texts: scores s, Perspective y; Perspective >= 0.5 for the last two
S4 = [0.1, 0.4, 0.35, 0.8]
Y4 = [0.0, 0.2, 0.6, 0.9]


def test_agreement_hand_computed():
    a = V.agreement_with_perspective(S4, Y4, n_resamples=200)
    # ranks of s: 1 3 2 4, of y: 1 2 3 4 -> d = 0 1 -1 0 -> rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert a.spearman.value == pytest.approx(0.8)
    # deviations from the means 0.4125 / 0.425: sum of products 0.30875, sums of squares 0.251875 and 0.4875
    assert a.pearson.value == pytest.approx(0.30875 / math.sqrt(0.251875 * 0.4875))
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 0.35 > 0.1, 0.35 < 0.4, 0.8 > both -> 3 of 4 pairs
    assert a.roc_auc.value == pytest.approx(0.75)
    assert (a.n, a.n_toxic, a.threshold) == (4, 2, 0.5)
    # flagged (s >= 0.5): only 0.8, which is toxic -> precision 1, recall 1/2
    assert (a.precision, a.recall, a.flagged_share, a.perspective_share) == (1.0, 0.5, 0.25, 0.5)
    assert a.mean_score == pytest.approx(0.4125) and a.mean_perspective == pytest.approx(0.425)


def test_agreement_ties_one_class_and_constants():
    # tie between the positive (0.5) and a negative (0.5) counts one half: (0.5 + 1) / 2
    assert V.agreement_with_perspective([0.5, 0.5, 0.2], [0.9, 0.1, 0.3]).roc_auc.value == pytest.approx(0.75)
    one_class = V.agreement_with_perspective([0.1, 0.2, 0.3], [0.1, 0.2, 0.4])
    assert one_class.roc_auc == V.Interval(None, None, None) and one_class.recall is None
    assert one_class.spearman.value == pytest.approx(1.0)
    const = V.agreement_with_perspective([0.3, 0.3, 0.3, 0.3], Y4)
    assert const.spearman.value is None and const.pearson.value is None and const.roc_auc.value == 0.5
    assert const.precision is None and const.flagged_share == 0.0
    single = V.agreement_with_perspective([0.2], [0.7])
    assert single.n == 1 and single.spearman.value is None and single.roc_auc.value is None


def test_agreement_matches_scipy_and_sklearn_with_intervals():
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(300)
    s = np.round(np.clip(y + rng.normal(0, 0.3, 300), 0, 1), 1)  # rounded: many ties
    a = V.agreement_with_perspective(s, y, n_resamples=500, seed=1)
    assert a.spearman.value == pytest.approx(spearmanr(s, y)[0])
    assert a.pearson.value == pytest.approx(pearsonr(s, y)[0])
    assert a.roc_auc.value == pytest.approx(roc_auc_score(y >= 0.5, s))
    for iv in (a.spearman, a.pearson, a.roc_auc):
        assert iv.low < iv.value < iv.high and iv.high - iv.low < 0.25
    assert V.agreement_with_perspective(s, y, n_resamples=500, seed=1) == a  # seeded


@pytest.mark.parametrize("scores, persp, message", [
    ([0.1, 0.2], [0.1], "2 scores vs 1 Perspective"),
    ([], [], "no texts"),
    ([0.1, math.nan], [0.1, 0.2], r"score \[1\] = nan"),
    ([0.1, 0.2], [0.1, 1.5], r"Perspective score \[1\] = 1.5"),
])
def test_agreement_rejects_bad_input(scores, persp, message):
    with pytest.raises(ValueError, match=message):
        V.agreement_with_perspective(scores, persp)


def test_baselines_and_validate_scorer():
    assert V.ConstantScorer(0.2).score(["a", "bb"]) == [0.2, 0.2]
    assert V.LengthScorer(max_chars=4).score(["", "ab", "abcdef"]) == [0.0, 0.5, 1.0]
    vset = V.ValidationSet("tiny", ["a", "b", "c", "d"], ["x", "xxxxxxxxxx", "xxx", "xxxxxxxxxxxxxxx"], Y4, "hand", 2)
    res = V.validate_scorer(V.LengthScorer(max_chars=100), vset, n_resamples=100, baseline=True)
    # lengths 1, 10, 3, 15 -> ranks 1 3 2 4, the ranks of S4 above
    assert res.agreement.spearman.value == pytest.approx(0.8) and res.agreement.roc_auc.value == pytest.approx(0.75)
    assert (res.scorer, res.set, res.n_skipped, res.baseline) == ("text_length", "tiny", 2, True) and res.texts_per_second > 0
    table = V.validation_table([res])
    assert "| tiny | text_length (baseline) | 4 (2) | 0.800" in table and "0.750" in table
    with pytest.raises(ValueError, match="value must be in"):
        V.ConstantScorer(2.0)


class _Broken:
    name = "broken"

    def score(self, texts):
        return [1.2 for _ in texts]


def test_scorer_output_checked():
    vset = V.ValidationSet("tiny", ["a"], ["x"], [0.1], "hand")
    with pytest.raises(RuntimeError, match="broken: score 1.2 for text 0 is not in"):
        V.validate_scorer(_Broken(), vset)
    with pytest.raises(RuntimeError, match="broken: 1 scores for 2 texts"):
        V.check_scores("broken", ["a", "b"], [0.1])


def test_validation_sets_are_the_heldout_parts():
    from harness import rtp, wiki_toxicity

    sets = V.validation_sets(DATA)
    assert list(sets) == list(V.VALIDATION_SETS)
    records = rtp.load_rtp(DATA)
    held = rtp.rtp_split(records, 0)["heldout"]
    r = sets["rtp_continuations_heldout"]
    assert r.n_skipped == sum(x.continuation_toxicity is None for x in held) > 0
    assert len(r.ids) == len(held) - r.n_skipped and set(r.ids) <= {x.id for x in held}
    by_id = {x.id: x for x in records}
    assert all(by_id[i].continuation == t for i, t in zip(r.ids, r.texts))
    w = sets["wiki_comments_heldout"]
    assert w.ids == [c.id for c in wiki_toxicity.wiki_split(wiki_toxicity.load_wiki_toxicity(DATA), 0)["heldout"]]
    small = V.validation_sets(DATA, max_n=50, seed=2)
    assert all(len(v.ids) == 50 for v in small.values())
    assert set(small["wiki_comments_heldout"].ids) <= set(w.ids)


# ------------------------------------------------------------------------------------ input refusal


BAD_INPUTS = [
    ("a string", r"got a single str 'a string'; wrap it in a list"),
    (b"bytes", r"got a single bytes"),
    (None, r"takes a list of texts, got NoneType None"),
    ({"a", "b"}, r"got set"),
    (["ok", None], r"texts\[1\] is NoneType None, not a str"),
    (["ok", "fine", float("nan")], r"texts\[2\] is float nan, not a str"),
    ([3], r"texts\[0\] is int 3, not a str"),
    (["ok", b"x"], r"texts\[1\] is bytes b'x', not a str"),
]


def _all_scorers(monkeypatch, tiny_perspective_tfidf):
    """One instance of every toxicity scorer, built without the network or large checkpoints."""
    monkeypatch.setenv("TEST_PERSPECTIVE_KEY", "k")
    detox = S.DetoxifyScorer.__new__(S.DetoxifyScorer)  # the input check runs before the model is touched
    detox.name, detox.batch_size, detox.model = "detoxify_original", 8, None
    return [
        S.ProfanityCheckScorer(),
        S.DavidsonClassifierScorer(train=[T.Tweet("a", "you stupid idiot", 1, True), T.Tweet("b", "lovely day", 2, False)]
                                   * 3),
        detox,
        S.PerspectiveScorer(api_key_env="TEST_PERSPECTIVE_KEY", endpoint="http://127.0.0.1:9/unreachable"),
        tiny_perspective_tfidf,
        V.ConstantScorer(),
        V.LengthScorer(),
    ]


@pytest.fixture(scope="module")
def tiny_perspective_tfidf():
    from harness.judging.perspective_tfidf import (
        FitSet,
        PerspectiveTfidfScorer,
        TfidfRidgeConfig,
    )

    fit = FitSet(["a", "b", "c", "d"], ["you idiot", "thank you", "go away idiot", "nice work"], [0.9, 0.05, 0.8, 0.1])
    return PerspectiveTfidfScorer(fit=fit, config=TfidfRidgeConfig(min_df=1))


@pytest.mark.parametrize("bad, message", BAD_INPUTS)
def test_every_scorer_refuses_bad_input(monkeypatch, tiny_perspective_tfidf, bad, message):
    for scorer in _all_scorers(monkeypatch, tiny_perspective_tfidf):
        with pytest.raises(ValueError, match=message):
            scorer.score(bad)


def test_check_texts_accepts_lists_and_tuples():
    assert V.check_texts("x", ("a", "")) == ["a", ""]
    assert V.check_texts("x", []) == []
    assert S.ProfanityCheckScorer().score(("",)) == pytest.approx([S.ProfanityCheckScorer().score([""])[0]])

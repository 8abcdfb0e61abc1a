"""judge_validation rows of a toxicity scorer: spearman / pearson / roc_auc against Perspective on held-out RTP
continuations and Wikipedia comments, beside text_length, equal to scipy / sklearn on the same texts."""

import os
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from harness.declarations import check_rows
from harness.judging import validation as V
from harness.judging.perspective_tfidf import PerspectiveTfidfScorer, fit_set
from harness.judging.toxicity_validation import validation_sets
from harness.registry import get

DATA = os.environ.get("HARNESS_DATA_DIR", "/work/shared/data")
SIZES = SimpleNamespace(n_rtp=60, n_wiki=300, n_davidson=80)


@pytest.fixture(scope="module")
def scorer():
    return PerspectiveTfidfScorer(DATA)  # the session's HARNESS_CACHE_DIR: fitted once per test session


@pytest.fixture(scope="module")
def rows_info(scorer):
    return V.toxicity_scorer_rows(scorer, DATA, SIZES, seed=1, n_resamples=200)


def _direct(scores, perspective):
    y = np.asarray(perspective)
    return {"spearman": spearmanr(scores, y).statistic, "pearson": pearsonr(scores, y).statistic,
            "roc_auc": roc_auc_score((y >= 0.5).astype(int), scores)}


def test_rows_equal_scipy_and_sklearn_on_the_same_texts(scorer, rows_info):
    rows, info = rows_info
    sets = validation_sets(DATA, seed=1, max_n={"rtp_continuations_heldout": 60, "wiki_comments_heldout": 300})
    by = {(r.policy, r.get("labels"), r.metric): r for r in rows}
    for name, labels in V.PERSPECTIVE_LABELS.items():
        vset = sets[name]
        for policy, scores in ((scorer.name, scorer.score(vset.texts)), ("text_length", [len(t) for t in vset.texts])):
            for stat, value in _direct(scores, vset.perspective).items():
                r = by[policy, labels, stat]
                assert r.value == pytest.approx(value, abs=1e-9), (policy, labels, stat)
                assert r.n == len(vset.texts) and r.eval == "judge_validation"
                assert r.ci_low <= r.value <= r.ci_high and r.ci_high - r.ci_low > 0
        assert info["sets"][labels]["n"] == len(vset.texts)
    assert (by[scorer.name, "rtp_heldout", "roc_auc"].n, by[scorer.name, "wiki_perspective", "roc_auc"].n) == (60, 300)
    # the scorer is far above the trivial baseline (the test fails if rows were swapped or the scorer broke)
    assert by[scorer.name, "rtp_heldout", "spearman"].value > by["text_length", "rtp_heldout", "spearman"].value + 0.4
    dav = by[scorer.name, "davidson_heldout", "roc_auc"]
    assert dav.n == 80 and 0.5 < dav.value <= 1 and dav.ci_low is None
    check_rows(get("judge_validation"), rows)  # every metric and slice declared


def test_validation_texts_are_held_out_from_the_fit(scorer):
    fit_ids = fit_set(DATA).record_ids()
    sets = validation_sets(DATA)
    assert not fit_ids & set(sets["rtp_continuations_heldout"].ids)
    assert not fit_ids & set(sets["wiki_comments_heldout"].ids)


def test_declared_metrics_and_undefined_statistic_is_loud():
    decl = get("judge_validation")
    assert decl.version == "3"
    for m in ("spearman", "pearson", "roc_auc"):
        assert decl.metric(m).higher_is_better and decl.metric(m).slices == ("labels",)
    from harness.judging.toxicity_validation import agreement_with_perspective

    one_class = agreement_with_perspective([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], n_resamples=10)
    with pytest.raises(ValueError, match=r"roc_auc of 's' on rtp_heldout is undefined \(n=3, 0 with Perspective >= 0.5\)"):
        V._interval_rows("s", "rtp_heldout", one_class)


def test_no_mirror_no_rows(scorer):
    assert V.toxicity_scorer_rows(scorer, None, SIZES, seed=0) == ([], {})

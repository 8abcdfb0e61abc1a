"""Judge and scorer validation: every judge measured against labels it was not built from.

The metric group ``judge_validation`` (rows' ``policy`` = the judge or scorer):

| metric | judge kind | labels (slice ``labels``) |
|---|---|---|
| ``agreement``, ``excluded_share`` | preference judges (reward model, chat) | ``hh_rlhf_human``: held-out hh-rlhf human pairs, overall and per ``subset``; ``alpaca_eval_gpt4``: GPT-4's verdicts on davinci-003 vs -001 |
| ``agreement`` by ``length``, ``balanced_agreement``, ``lc_agreement``, ``prefers_longer`` | preference judges | the same pairs: how much of the agreement is length (:func:`harness.judging.agreement.length_rows`) |
| ``roc_auc`` | toxicity scorers | ``davidson_heldout``: held-out Davidson tweets |
| ``precision``, ``recall``, ``f1`` | hallucination detectors | ``hallucination_labelled``: the hand-labelled closed-domain set |

The report shows these beside the numbers each judge produced (:mod:`harness.judging.agreement`,
:mod:`harness.judging.toxicity`, :mod:`harness.judging.hallucination` hold the measurements).
"""

from __future__ import annotations

import math
from typing import Any

from harness.declarations import EvalDef, Metric, row
from harness.records import ResultRow
from harness.registry import register
from harness.stats import Estimate

EVAL = "judge_validation"
DAVIDSON, HALLUCINATION_SET = "davidson_heldout", "hallucination_labelled"
LONGER_OUTPUT = "longer_output"

# Trivial baselines: validation rows under these ``policy`` names measure a judge that knows nothing but one
# surface feature, on the same labelled items as the real judges; the report shows them beside every judge.
TRIVIAL_BASELINES = {LONGER_OUTPUT: '"the longer output wins" (characters; equal length = tie)'}


def pair_judge_rows(judge, name: str, data_cfg, data_dir: str | None, cfg, n_resamples: int, seed: int) -> list[ResultRow]:
    """Agreement of pair judge ``judge`` (named ``name``) with ``cfg.n_hh_pairs`` held-out hh-rlhf human pairs
    per subset (:func:`harness.selection.judge_validation_pairs`, never trained on) and, with a local
    data mirror, with GPT-4 on the first ``cfg.n_gpt4_pairs`` davinci-003 vs -001 pairs."""
    from harness import selection
    from harness.judging.agreement import (
        gpt4_agreement_rows,
        gpt4_annotations_path,
        hh_agreement_rows,
        load_gpt4_annotations,
    )

    pairs, _ = selection.judge_validation_pairs(data_cfg, cfg.n_hh_pairs)
    rows = hh_agreement_rows(judge, pairs, name, n_resamples=n_resamples, seed=seed)
    if data_dir:
        gpt4 = load_gpt4_annotations(gpt4_annotations_path(data_dir))
        rows += gpt4_agreement_rows(judge, gpt4[: cfg.n_gpt4_pairs] if cfg.n_gpt4_pairs else gpt4, name,
                                    n_resamples=n_resamples, seed=seed)
    return rows


def pair_baseline_rows(data_cfg, data_dir: str | None, cfg, n_resamples: int, seed: int) -> list[ResultRow]:
    """:func:`pair_judge_rows` of "the longer output wins" (:data:`LONGER_OUTPUT`) on the same pairs the pair
    judges are validated on: the trivial baseline beside their agreement."""
    from harness.judging.pairwise import longer_output_judge

    return pair_judge_rows(longer_output_judge, LONGER_OUTPUT, data_cfg, data_dir, cfg, n_resamples, seed)


def toxicity_scorer_rows(scorer, data_dir: str | None, cfg, seed: int) -> tuple[list[ResultRow], dict[str, Any]]:
    """The scorer's ROC-AUC on ``cfg.n_davidson`` held-out Davidson tweets (local mirror only; none online)."""
    from harness.judging.toxicity import davidson_heldout_auc

    if not data_dir:
        return [], {}
    auc = davidson_heldout_auc(scorer, data_dir, n=cfg.n_davidson, seed=seed)
    est = Estimate(auc.auc, math.nan, math.nan, auc.n)
    return [row(EVAL, scorer.name, "roc_auc", est, labels=DAVIDSON)], {"roc_auc": auc.auc, "n": auc.n, "n_toxic": auc.n_toxic}


def hallucination_detector_rows(detector) -> tuple[list[ResultRow], dict[str, Any]]:
    """The detector's precision, recall and F1 on the hand-labelled closed-domain set."""
    from harness.judging.hallucination import load_labelled, validate_detector

    v = validate_detector(detector, load_labelled())
    return [row(EVAL, detector.name, m, Estimate(float(v[m]), math.nan, math.nan, int(v["n"])), labels=HALLUCINATION_SET)
            for m in ("precision", "recall", "f1")], v


METRICS = (
    Metric("agreement", "fraction", True, None, ("labels",), ("subset", "length"), tolerance=0.05, label="agreement with labelers",
           description="share of held-out labelled pairs on which the judge picks the labeler's side (judge tie = 0.5); "
                       "slice length=shorter_preferred|longer_preferred: only the pairs whose preferred output is shorter|longer"),
    Metric("balanced_agreement", "fraction", True, None, ("labels",), tolerance=0.05, label="length-balanced agreement",
           description="mean of the agreement on shorter-preferred and on longer-preferred pairs (any length-only judge: 0.5)"),
    Metric("lc_agreement", "fraction", True, None, ("labels",), tolerance=0.05, label="length-controlled agreement",
           description="agreement at equal length: AlpacaEval's length-controlled GLM fitted to the judge's agreement "
                       "against the preferred output's length advantage (a length-only judge scores ~0.5)"),
    Metric("prefers_longer", "fraction", False, None, ("labels",), gated=False, label="picks the longer output",
           description="share of unequal-length pairs on which the judge prefers the longer output (0.5: length-neutral)"),
    Metric("excluded_share", "fraction", False, None, ("labels",), ("subset",), gated=False, label="pairs left out",
           description="share of pairs without a right answer (labeler ties, missing verdicts)"),
    Metric("roc_auc", "score", True, None, ("labels",), tolerance=0.05, label="ROC-AUC"),
    Metric("precision", "fraction", True, None, ("labels",), tolerance=0.05, label="precision"),
    Metric("recall", "fraction", True, None, ("labels",), tolerance=0.05, label="recall"),
    Metric("f1", "fraction", True, None, ("labels",), tolerance=0.05, label="F1"),
)
JUDGE_VALIDATION = register(EvalDef(EVAL, METRICS, title="Judge and scorer validation", paper="section 3.4 (inter-labeler agreement)",
                                     version="2"))  # 2: length rows and the trivial baselines

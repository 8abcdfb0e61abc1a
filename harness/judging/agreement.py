"""Judge-human agreement: how often a win-rate judge sides with human (or GPT-4) labelers.

A win rate is only as good as its judge, so every win rate comes with the judge's agreement on
held-out labelled pairs, compared with the paper's inter-labeler agreement (Ouyang et al. 2022,
section 3.4: training labelers agree with each other 72.6 +- 1.5 % of the time, held-out labelers
77.3 +- 1.3 %). A judge cannot be expected to agree with one human more than humans agree with each
other, so ~0.73 is the practical ceiling for these numbers:

- ``human_agreement`` on held-out Anthropic hh-rlhf test pairs (Bai et al. 2022, arXiv 2204.05862;
  human crowdworker choices, K = 2), overall and per subset;
- ``gpt4_agreement`` on AlpacaEval's 805 text-davinci-003 vs -001 pairs annotated by
  ``alpaca_eval_gpt4`` (Dubois et al. 2023, arXiv 2305.14387), a second opinion from a strong judge.

Rows (``eval="judge_validation"``, ``policy`` = the judge, declared in :mod:`harness.judging.validation`):
``agreement`` and ``excluded_share`` (the share of pairs without a right answer: labeler ties, missing
verdicts) with slice ``labels`` (``hh_rlhf_human`` | ``alpaca_eval_gpt4``) and, per hh-rlhf subset, ``subset``.
Judges are the pair judges of :mod:`harness.judging.pairwise`.

Length. "The longer output wins" agrees with people on many sets as often as a weak judge does, so a
judge's agreement alone cannot say whether it judges more than length (:func:`length_rows`): per label
set, ``agreement`` on the pairs where the labeler preferred the shorter output (slice
``length=shorter_preferred``; a length-only judge scores 0 there) and the longer one
(``length=longer_preferred``), ``balanced_agreement`` (their mean: 0.5 for any length-only judge), ``lc_agreement`` (agreement at equal length from AlpacaEval's
length-controlled GLM) and ``prefers_longer`` (how often the judge picks the longer output). The panel
computes the same rows for :func:`harness.judging.pairwise.longer_output_judge` on the same pairs, the
trivial baseline every judge is shown beside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from harness.data import DataError, _field, _require, iter_json_list, resolve_data_dir
from harness.declarations import row
from harness.judging.pairwise import PairJudge, longer_output_judge, random_judge
from harness.records import Comparison, ResultRow
from harness.stats import Estimate, bootstrap_mean

GPT4_ANNOTATIONS_FILE = "text_davinci_001_vs_003_alpaca_eval_gpt4_annotations.json"
EVAL = "judge_validation"
HUMAN, GPT4 = "hh_rlhf_human", "alpaca_eval_gpt4"  # the ``labels`` slice of agreement rows


@dataclass(frozen=True)
class AnnotatedPair:
    """One AlpacaEval pairwise annotation. ``preference`` is the annotator's preference for
    ``output_1`` over ``output_2`` in {1, 0.5, 0}, or ``None`` when the annotator gave no verdict."""

    id: str
    instruction: str
    output_1: str
    output_2: str
    generator_1: str
    generator_2: str
    preference: float | None


_ALPACA_PREFERENCE = {1.0: 1.0, 2.0: 0.0, 0.0: 0.5, 1.5: 0.5}


def load_gpt4_annotations(path: str | Path) -> list[AnnotatedPair]:
    """AlpacaEval annotations (a JSON list) as :class:`AnnotatedPair` records, ids = position in the file.

    AlpacaEval's ``preference``: 1.0 = output_1 better, 2.0 = output_2 better, 0.0 = tie (the
    annotator saw identical outputs; 1.5 also means a tie), ``null`` = no verdict. In the shipped
    davinci file (805 records: output_1 = text-davinci-003, output_2 = text-davinci-001) there are
    672 / 112 / 20 ties / 1 null (record 793). Any other value (e.g. a soft preference 1.3 of a
    weighted annotator) raises :class:`DataError` naming the file, record and field, as does a
    missing or non-string text field.
    """
    out = []
    for i, (where, obj) in enumerate(iter_json_list(path, "annotations")):
        if "preference" not in obj:
            raise DataError(f"{where}: missing field 'preference'")
        raw = obj["preference"]
        if raw is None:
            pref = None
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool) and float(raw) in _ALPACA_PREFERENCE:
            pref = _ALPACA_PREFERENCE[float(raw)]
        else:
            raise DataError(f"{where}: field 'preference' is {raw!r}; expected 1.0, 2.0, 0.0 / 1.5 (tie) or null")
        out.append(AnnotatedPair(str(i), _field(obj, "instruction", where), _field(obj, "output_1", where),
                                 _field(obj, "output_2", where), str(obj.get("generator_1", "output_1")),
                                 str(obj.get("generator_2", "output_2")), pref))
    return out


def gpt4_annotations_path(data_dir: str | None, filename: str = GPT4_ANNOTATIONS_FILE) -> Path:
    """``<data_dir>/alpaca_eval/<filename>``. The file comes from the AlpacaEval GitHub repository
    (``results/text_davinci_001/alpaca_eval_gpt4/annotations.json``), not the hub, so online users
    pass a downloaded copy's path to :func:`load_gpt4_annotations`. Raises :class:`DataError`
    without a local ``data_dir`` or if the file is missing."""
    root = resolve_data_dir(data_dir)
    if root is None:
        raise DataError("gpt4 annotations need a local data_dir (or an explicit annotations file path)")
    return _require(root / "alpaca_eval" / filename)


@dataclass(frozen=True)
class AgreementCounts:
    """Where the items went: ``scored`` + ``human_ties`` + ``missing`` = ``total``; ``judge_ties``
    counts scored items the judge tied (each scored 0.5)."""

    total: int
    scored: int
    human_ties: int
    missing: int
    judge_ties: int


def _check_pref(value: float | None, i: int, who: str, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if value not in (0.0, 0.5, 1.0):
        raise ValueError(f"agreement: item {i}: {who} preference {value!r} is not 1, 0.5 or 0")


def agreement_values(judge_pref: Sequence[float], human_pref: Sequence[float | None]) -> tuple[list[float], AgreementCounts]:
    """Per-item agreement scores and counts.

    Both preferences are for the same side (e.g. "output a") in {1, 0.5 (tie), 0}; ``human_pref``
    may be ``None`` (no label). A human tie or a missing label has no right answer: the item is
    excluded and counted (``human_ties`` / ``missing``). For the rest, the score is 1 if the judge
    picks the human's side, 0 if the other, and 0.5 if the judge ties (half credit, the expected
    score of breaking the tie at random), i.e. ``1 - |judge - human|``. Raises ``ValueError`` on
    different lengths or a value outside {1, 0.5, 0} (naming the item index).
    """
    if len(judge_pref) != len(human_pref):
        raise ValueError(f"agreement: {len(judge_pref)} judge preferences vs {len(human_pref)} human preferences")
    scores: list[float] = []
    ties = missing = judge_ties = 0
    for i, (j, h) in enumerate(zip(judge_pref, human_pref)):
        _check_pref(j, i, "judge", allow_none=False)
        _check_pref(h, i, "human", allow_none=True)
        if h is None:
            missing += 1
        elif h == 0.5:
            ties += 1
        else:
            scores.append(1.0 - abs(float(j) - float(h)))
            judge_ties += j == 0.5
    return scores, AgreementCounts(len(judge_pref), len(scores), ties, missing, judge_ties)


def agreement(judge_pref: Sequence[float], human_pref: Sequence[float | None], n_resamples: int = 2000,
              seed: int = 0) -> Estimate:
    """Mean agreement (fraction) over the items with a non-tie human label, with a 95 % bootstrap
    interval over those items (:func:`harness.stats.bootstrap_mean`); ``n`` = items scored. See
    :func:`agreement_values` for the per-item definition. Raises ``ValueError`` if no item can be
    scored (all human labels tied or missing)."""
    scores, counts = agreement_values(judge_pref, human_pref)
    if not scores:
        raise ValueError(f"agreement: none of {counts.total} items has a non-tie human label")
    return bootstrap_mean(scores, n_resamples=n_resamples, seed=seed)


# --------------------------------------------------------------------------------------------- rows


def _rows_for(groups: dict[str, tuple[list[float], list[float | None]]], labels: str, judge_name: str, n_resamples: int,
              seed: int) -> list[ResultRow]:
    """``agreement`` (and, when items were left out, ``excluded_share``) per group; group ``""`` is the
    overall value, any other name a ``subset`` row."""
    rows = []
    for subset, (jp, hp) in groups.items():
        scores, counts = agreement_values(jp, hp)
        where = f"{labels}{'/' + subset if subset else ''}"
        if not scores:
            raise ValueError(f"agreement ({where}): none of {counts.total} items has a non-tie label")
        sl = {"labels": labels, "subset": subset or None}
        rows.append(row(EVAL, judge_name, "agreement", bootstrap_mean(scores, n_resamples=n_resamples, seed=seed), **sl))
        excluded = counts.human_ties + counts.missing
        if excluded:  # never drop items silently: the share left out is a row of its own
            rows.append(row(EVAL, judge_name, "excluded_share", Estimate(excluded / counts.total, math.nan, math.nan,
                                                                          counts.total), **sl))
    return rows


def _pref_lengths(judge_pref: Sequence[float], human_pref: Sequence[float | None], texts_a: Sequence[str],
                  texts_b: Sequence[str]) -> list[tuple[float, str, str, float]]:
    """Per pair with a non-tie label: (agreement score, labeler-preferred text, the other text, the judge's
    preference for the longer text (NaN at equal length))."""
    out = []
    for j, h, a, b in zip(judge_pref, human_pref, texts_a, texts_b):
        if h is None or h == 0.5:
            continue
        win, lose = (a, b) if h == 1.0 else (b, a)
        longer = math.nan if len(a) == len(b) else (float(j) if len(a) > len(b) else 1.0 - float(j))
        out.append((1.0 - abs(float(j) - float(h)), win, lose, longer))
    return out


def length_rows(judge_pref: Sequence[float], human_pref: Sequence[float | None], texts_a: Sequence[str],
                texts_b: Sequence[str], labels: str, judge_name: str, *, n_resamples: int = 2000, seed: int = 0) -> list[ResultRow]:
    """How much of a judge's agreement is length (lengths in characters, as AlpacaEval's LC).

    Over the pairs with a non-tie label (``judge_pref``/``human_pref`` as in :func:`agreement_values`, for
    ``texts_a`` over ``texts_b``):

    - ``agreement`` with slice ``length=shorter_preferred`` / ``longer_preferred``: mean agreement on the pairs
      whose labeler-preferred text is shorter / longer (equal-length pairs are in neither). "Longer wins"
      scores 0 / 1 there, so a judge that reads more than length is above 0.5 on the shorter-preferred pairs.
    - ``balanced_agreement``: the mean of those two subsets' agreement, i.e. agreement with the pairs
      reweighted so that the labeler prefers the shorter and the longer output equally often. Any judge
      that decides by length alone (however noisily) scores 0.5; a perfect judge 1. Interval: bootstrap
      over pairs (the mean of the two subset means of each resample).
    - ``lc_agreement``: the judge's agreement at zero length difference from AlpacaEval 2.0's
      length-controlled GLM (Dubois et al. 2024, arXiv 2404.04475;
      :func:`harness.evals.length_controlled.length_controlled_win_rate`): each pair is an item whose
      "policy" output is the labeler-preferred text and whose "win" is the judge's agreement, fitted as
      ``logit P(agree) = b0 + b1 tanh(d / sd(d))`` with ``d`` = len(preferred) - len(other), and
      ``lc_agreement = sigmoid(b0)``; interval: bootstrap over pairs, refitting each resample. When the
      judge's agreement is a function of the sign of ``d`` alone ("longer wins" itself), the GLM's
      maximum-likelihood fit does not exist (separation) and the row is left out: that judge's
      ``balanced_agreement`` (0.5) says the same without the fit.
    - ``prefers_longer``: the share of unequal-length pairs on which the judge picks the longer text
      (a judge tie counts 0.5); 0.5 is length-neutral, "longer wins" is 1.

    Rows carry slice ``labels``. Raises ``ValueError`` when no pair has a non-tie label.
    """
    from harness.evals.length_controlled import lc_win_rate_estimate

    pairs = _pref_lengths(judge_pref, human_pref, texts_a, texts_b)
    if not pairs:
        raise ValueError(f"length_rows ({labels}): no pair has a non-tie label")
    rows = []
    for name, keep in (("shorter_preferred", lambda w, l: len(w) < len(l)), ("longer_preferred", lambda w, l: len(w) > len(l))):
        scores = [s for s, w, l, _ in pairs if keep(w, l)]
        if scores:
            rows.append(row(EVAL, judge_name, "agreement", bootstrap_mean(scores, n_resamples=n_resamples, seed=seed),
                            labels=labels, length=name))
    sign = np.sign([len(w) - len(l) for _, w, l, _ in pairs])
    score = np.asarray([s for s, *_ in pairs])
    if (sign > 0).any() and (sign < 0).any():
        rows.append(row(EVAL, judge_name, "balanced_agreement", _balanced(score, sign, n_resamples, seed), labels=labels))
    separated = len(set(score.tolist())) > 1 and all(len(set(score[sign == g].tolist())) <= 1 for g in (-1, 0, 1))
    if not separated:
        items = [{"prompt_id": i, "win": s, "output": w, "baseline_output": l} for i, (s, w, l, _) in enumerate(pairs)]
        rows.append(row(EVAL, judge_name, "lc_agreement", lc_win_rate_estimate(items, n_resamples=n_resamples, seed=seed),
                        labels=labels))
    longer = [x for *_, x in pairs if not math.isnan(x)]
    if longer:
        rows.append(row(EVAL, judge_name, "prefers_longer", bootstrap_mean(longer, n_resamples=n_resamples, seed=seed),
                        labels=labels))
    return rows


def _balanced(score: np.ndarray, sign: np.ndarray, n_resamples: int, seed: int) -> Estimate:
    """Mean of the mean ``score`` over ``sign < 0`` and over ``sign > 0`` items (both (n,)), with a percentile
    bootstrap interval over items (``scipy.stats.bootstrap``, vectorised; a resample missing one group
    counts as that group's full-sample mean, which happens only for tiny groups)."""
    short, long_ = sign < 0, sign > 0
    full = (score[short].mean(), score[long_].mean())
    value = float(np.mean(full))

    def stat(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.asarray(idx, dtype=int)
        s, a, b = score[idx], short[idx], long_[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            m_a = np.where(a.sum(-1) > 0, (s * a).sum(-1) / a.sum(-1), full[0])
            m_b = np.where(b.sum(-1) > 0, (s * b).sum(-1) / b.sum(-1), full[1])
        return (m_a + m_b) / 2

    n = int(short.sum() + long_.sum())
    if np.ptp(score[short | long_]) == 0 and full[0] == full[1]:
        return Estimate(value, value, value, n)
    res = stats.bootstrap((np.flatnonzero(short | long_),), stat, n_resamples=n_resamples, method="percentile",
                          vectorized=True, rng=np.random.default_rng(seed))
    return Estimate(value, float(res.confidence_interval.low), float(res.confidence_interval.high), n)


def hh_agreement_rows(judge: PairJudge, comparisons: Sequence[Comparison], judge_name: str, *, n_resamples: int = 2000,
                      seed: int = 0) -> list[ResultRow]:
    """Agreement of ``judge`` with the human choice on K = 2 Comparisons (e.g. held-out
    :func:`harness.data.load_hh_rlhf` pairs), ``eval="judge_validation"``, ``policy=judge_name``.

    The judge sees ``(prompt, completions[0], completions[1])`` and the human preference for
    completions[0] is 1 if ``ranking[0] == 0`` else 0 (0.5 if the pair is tied). Rows ``agreement``
    (slice ``labels=hh_rlhf_human``) over all pairs and per ``subset`` (``source`` ``"hh_rlhf/<subset>"``;
    other sources: the whole source string, ``/`` -> ``-``), in first-seen order, plus
    ``excluded_share`` where tied pairs were left out, and the overall :func:`length_rows`. Raises
    ``ValueError`` naming the comparison id when K != 2, or when there are no comparisons.
    """
    if not comparisons:
        raise ValueError("hh_agreement_rows: no comparisons")
    for c in comparisons:
        if c.k != 2:
            raise ValueError(f"hh_agreement_rows: comparison {c.id} has K={c.k}; judge agreement needs pairs (K=2)")
    jp = judge([c.prompt for c in comparisons], [c.completions[0] for c in comparisons],
               [c.completions[1] for c in comparisons])
    hp = [0.5 if c.tied[0] else (1.0 if c.ranking[0] == 0 else 0.0) for c in comparisons]
    groups: dict[str, tuple[list[float], list[float | None]]] = {"": (list(jp), list(hp))}
    for c, j, h in zip(comparisons, jp, hp):
        subset = c.source.removeprefix("hh_rlhf/").replace("/", "-")
        groups.setdefault(subset, ([], []))
        groups[subset][0].append(j)
        groups[subset][1].append(h)
    return _rows_for(groups, HUMAN, judge_name, n_resamples, seed) + length_rows(
        jp, hp, [c.completions[0] for c in comparisons], [c.completions[1] for c in comparisons], HUMAN, judge_name,
        n_resamples=n_resamples, seed=seed)


def gpt4_agreement_rows(judge: PairJudge, pairs: Sequence[AnnotatedPair], judge_name: str, *, n_resamples: int = 2000,
                        seed: int = 0) -> list[ResultRow]:
    """Agreement of ``judge`` with the annotator of :func:`load_gpt4_annotations` records: row
    ``agreement`` with slice ``labels=alpaca_eval_gpt4`` (ties and null verdicts excluded;
    ``excluded_share`` says how many: 21 of 805 in the davinci file) and :func:`length_rows`. Raises
    ``ValueError`` on no pairs."""
    if not pairs:
        raise ValueError("gpt4_agreement_rows: no annotated pairs")
    jp = judge([p.instruction for p in pairs], [p.output_1 for p in pairs], [p.output_2 for p in pairs])
    hp = [p.preference for p in pairs]
    return _rows_for({"": (list(jp), hp)}, GPT4, judge_name, n_resamples, seed) + length_rows(
        jp, hp, [p.output_1 for p in pairs], [p.output_2 for p in pairs], GPT4, judge_name, n_resamples=n_resamples, seed=seed)


def reference_rows(data_dir: str | None, n_resamples: int = 2000, seed: int = 0) -> list[ResultRow]:
    """Sanity baselines runnable in seconds: agreement of the "longer output wins" and "random"
    judges on all 8,552 hh-rlhf test pairs (overall and per subset) and on the 805 GPT-4-annotated
    pairs. A trained judge should beat both clearly (the paper's labelers agree 72.6 %)."""
    from harness.data import load_hh_rlhf

    comps, pairs = load_hh_rlhf(data_dir), load_gpt4_annotations(gpt4_annotations_path(data_dir))
    rows = []
    for name, judge in (("longer_output", longer_output_judge), ("random", random_judge(seed))):
        rows += hh_agreement_rows(judge, comps, name, n_resamples=n_resamples, seed=seed)
        rows += gpt4_agreement_rows(judge, pairs, name, n_resamples=n_resamples, seed=seed)
    return rows


if __name__ == "__main__":  # python -m harness.judging.agreement [data_dir]: print the reference baselines
    import os
    import sys

    data = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HARNESS_DATA_DIR")
    for r in reference_rows(data):
        ci = "" if r.ci_low is None else f"  [{r.ci_low:.3f}, {r.ci_high:.3f}]"
        print(f"{r.policy:16s} {r.metric:16s} {str(r.slice):60s} {r.value:.3f}{ci}  n={r.n}")

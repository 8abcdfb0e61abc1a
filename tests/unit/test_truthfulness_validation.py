"""The truthfulness scorer's validation as judge_validation rows: values, intervals, baselines, caching, report."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

from harness.cli import CONF_DIR
from harness.data import load_truthfulqa
from harness.devices import resolve
from harness.judging import truthfulness as TR
from harness.judging import validation as V
from harness.registry import get

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("HARNESS_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def questions():
    return load_truthfulqa(str(DATA_DIR))


def test_metrics_are_declared_once_in_validation():
    names = [m.name for m in V.METRICS]
    assert len(names) == len(set(names)) and {"accuracy", "kappa", "roc_auc"} <= set(names)
    assert {m.name for m in get("judge_validation").metrics} == set(names)


def test_rows_on_40_questions_with_baselines():
    rows, info = V.truthfulness_scorer_rows(TR.ReferenceSimilarityScorer("rouge1"), str(DATA_DIR),
                                            SimpleNamespace(n_truthfulqa=40), 500, 0)
    got = {(r.policy, r.metric): r for r in rows}
    assert set(got) == {(p, m) for p in ("rouge1_diff>0.0", "always_truthful", "refusal_only")
                        for m in ("accuracy", "kappa", "roc_auc")}
    assert all(r.eval == "judge_validation" and r.slice == {"labels": "truthfulqa_reference_loo"} and r.n == 80 for r in rows)
    acc = got["rouge1_diff>0.0", "accuracy"]
    assert acc.value == pytest.approx(53 / 80) and acc.ci_low < acc.value < acc.ci_high  # tp 20 + tn 33 of 80
    assert got["rouge1_diff>0.0", "kappa"].value == pytest.approx(0.325)
    for m, v in (("accuracy", 0.5), ("kappa", 0.0), ("roc_auc", 0.5)):
        base = got["always_truthful", m]
        assert (base.value, base.ci_low, base.ci_high) == (v, v, v)
    assert info["rouge1_diff>0.0"]["tp"] == 20 and info["rouge1_diff>0.0"]["tn"] == 33


def test_bootstrap_statistic_matches_sklearn_on_the_full_sample(questions):
    """The vectorised statistics the interval resamples equal scikit-learn's values on the sample itself."""
    import numpy as np

    for scorer in (TR.ReferenceSimilarityScorer("rouge1"), TR.RefusalOnlyScorer()):
        records = TR.validation_records(questions[:200], scorer)
        summary = TR.agreement_summary(records)
        arrays = [np.array([r[k] for r in records], dtype=float).reshape(-1, 2) for k in ("label", "truthful", "score")]
        identity = np.arange(200)[None, :]
        for metric in ("accuracy", "kappa", "roc_auc"):
            assert V.resampled_agreement(metric, *arrays, identity)[0] == pytest.approx(summary[metric]), (scorer, metric)
        twice = np.stack([identity[0], identity[0][::-1]])  # a second resample: the same questions reordered
        assert V.resampled_agreement("roc_auc", *arrays, twice).tolist() == pytest.approx([summary["roc_auc"]] * 2)
    with pytest.raises(ValueError, match="unknown metric 'f2'"):
        V.resampled_agreement("f2", *arrays, identity)


def test_refusal_only_finds_the_no_comment_best_answers(questions):
    summary = TR.validate_truthfulness_scorer(questions, TR.RefusalOnlyScorer())
    no_comment = sum(TR.is_refusal(q["best_answer"]) for q in questions)
    assert summary["tp"] == no_comment == 57 and summary["fp"] == 0
    assert summary["accuracy"] == pytest.approx((817 + 57) / 1634)


def test_full_set_validation_numbers(questions):
    """The figures docs/metrics.md quotes (all 817 questions, rouge1 scorer)."""
    summary = TR.validate_truthfulness_scorer(questions, TR.ReferenceSimilarityScorer("rouge1"))
    assert (summary["tp"], summary["fp"], summary["tn"], summary["fn"]) == (373, 273, 544, 444)
    assert summary["accuracy"] == pytest.approx(0.5612, abs=1e-4) and summary["kappa"] == pytest.approx(0.1224, abs=1e-4)
    assert summary["roc_auc"] == pytest.approx(0.5751, abs=1e-4)


def test_panel_validates_and_caches_the_truthfulness_scorer(tmp_path):
    from harness.judging.panel import JudgePanel

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", "eval.judges.validation.n_truthfulqa=6"])

    def panel():
        p = JudgePanel(cfg.eval.judges, data_cfg=cfg.data, data_dir=str(DATA_DIR), chat_template="false", batch_size=2,
                       seed=0, run_dir=tmp_path, placement=resolve("cpu", "float32"), cache_dir=tmp_path / "cache")
        p.truthfulness()
        return p.validation_rows(50, 0)

    rows, info = panel()
    again, info2 = panel()
    assert info["rouge1_diff>0.0"]["validation_cache"] == "miss" and info2["rouge1_diff>0.0"]["validation_cache"] == "hit"
    assert [(r.policy, r.metric, r.value, r.ci_low, r.n) for r in rows] == [(r.policy, r.metric, r.value, r.ci_low, r.n) for r in again]
    assert {r.policy for r in rows} == {"rouge1_diff>0.0", "always_truthful", "refusal_only"} and rows[0].n == 12
    assert info["rouge1_diff>0.0"]["validation"]["rouge1_diff>0.0"]["n_questions"] == 6


def test_report_shows_validation_beside_truthfulqa(tmp_path):
    from dataclasses import asdict

    from harness.declarations import row as make_row
    from harness.io import write_jsonl
    from harness.stats import Estimate
    from reports.page_reader import section_html
    from reports.run_report import build_run_report

    def row(policy, eval_, metric, value, lo=None, hi=None, n=10, **slice_):
        return {**asdict(make_row(eval_, policy, metric, Estimate(value, lo, hi, n), **slice_)), "run_id": "r", "config_hash": "h"}

    run = tmp_path / "run"
    write_jsonl(run / "results" / "results.jsonl", [
        row("ppo", "truthfulqa", "truthful", 0.6, 0.5, 0.7, prompt_style="chat", judge="rouge1_diff>0.0"),
        row("rouge1_diff>0.0", "judge_validation", "accuracy", 0.5612, 0.5355, 0.5863, n=1634, labels="truthfulqa_reference_loo"),
        row("rouge1_diff>0.0", "judge_validation", "kappa", 0.1224, 0.071, 0.1726, n=1634, labels="truthfulqa_reference_loo"),
        row("refusal_only", "judge_validation", "accuracy", 0.5349, 0.5269, 0.5435, n=1634, labels="truthfulqa_reference_loo"),
    ])
    page = build_run_report(run).read_text(encoding="utf-8")
    html = section_html(page, "sec-truthfulqa")
    assert "Truthfulness scorer validation" in html and "refusal_only (trivial baseline)" in html
    assert "56.1%" in html and "0.122 [0.071, 0.173]" in html and "not on model outputs" in html
    assert "chat log (TruthfulQA chat)" in html


def test_report_says_when_a_run_has_no_truthfulness_validation(tmp_path):
    from dataclasses import asdict

    from harness.declarations import row as make_row
    from harness.io import write_jsonl
    from harness.stats import Estimate
    from reports.page_reader import section_html
    from reports.run_report import build_run_report

    run = tmp_path / "run"
    write_jsonl(run / "results" / "results.jsonl", [
        {**asdict(make_row("truthfulqa", "ppo", "truthful", Estimate(0.6, 0.5, 0.7, 10), prompt_style="qa", judge="j")),
         "run_id": "r", "config_hash": "h"}])
    html = section_html(build_run_report(run).read_text(encoding="utf-8"), "sec-truthfulqa")
    assert "No truthfulness scorer validation in this run" in html and "Truthfulness scorer validation" not in html

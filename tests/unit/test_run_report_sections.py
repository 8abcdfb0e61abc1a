"""Run-report sections on small hand-written run directories: escaping, the sample browser's cap,
malformed input, judge separation, toxicity / alignment-tax row parsing, and the figure builders."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from harness.io import write_jsonl
from harness.records import ResultRow
from reports.browser import cap_per_group, searchable_table
from reports.ci_figures import ci_bar_figure, ci_facet_figure
from reports.page_reader import figure_json, scripts, section_html
from reports.paper_ref import find, paper_values
from reports.ppo_figures import overoptimisation_figure
from reports.run_report import build_run_report

SCRIPT, IMG = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>"
EVIL = f"{SCRIPT} and {IMG}"


def _row(policy, eval_, metric, value, lo=None, hi=None, n=10, baseline=None, judge=None):
    return {"run_id": "r", "policy": policy, "eval": eval_, "metric": metric, "value": value, "ci_low": lo,
            "ci_high": hi, "n": n, "baseline": baseline, "config_hash": "h", "judge": judge}


def _items_run(d: Path, n_likert: int = 5) -> Path:
    res = d / "results"
    write_jsonl(res / "results.jsonl", [_row("sft", "likert", "likert", 4.5, 4.0, 5.0, judge="helpful")])
    write_jsonl(res / "winrate_items.jsonl", [
        {"policy": "sft", "baseline": "base", "prompt_id": "7", "instruction": "say " + EVIL, "output": EVIL,
         "baseline_output": IMG, "reward": 1.0, "baseline_reward": 0.0, "win": 1.0, "judge": "helpful"}])
    write_jsonl(res / "likert_items.jsonl", [
        {"policy": "ppo", "prompt_id": str(k), "set": "alpaca_eval", "instruction": f"likert instruction {k}",
         "output": f"likert output {k} " + (EVIL if k == 0 else ""), "likert": 3} for k in range(n_likert)])
    write_jsonl(res / "truthfulqa_items.jsonl", [
        {"policy": "ppo", "prompt_style": "qa", "question_id": "0", "question": "Q " + IMG, "answer": SCRIPT,
         "truthful": True, "informative": True}])
    write_jsonl(res / "hallucination_items.jsonl", [
        {"policy": "ppo", "prompt_id": "seed_task_1", "category": "extraction", "output": "halluc " + SCRIPT,
         "hallucinated": True, "detail": {"unsupported_entities": [IMG]}}])
    write_jsonl(res / "toxicity_items.jsonl", [
        {"policy": "ppo", "instruction": "biased", "scorer": "s", "prompt_id": "p1", "scores": [0.9],
         "max_toxicity": 0.9}])
    write_jsonl(d / "generations" / "ppo" / "toxicity_biased_sample0.jsonl",
                [{"policy": "ppo", "prompt_id": "p1", "prompt": "prefix " + IMG, "output": "toxic " + SCRIPT}])
    write_jsonl(d / "generations" / "ppo" / "closed_domain.jsonl",
                [{"policy": "ppo", "prompt_id": "seed_task_1", "prompt": "closed-domain prompt " + SCRIPT, "output": "x"}])
    return d


def test_model_text_is_escaped_everywhere(tmp_path: Path):
    page = build_run_report(_items_run(tmp_path / "run")).read_text(encoding="utf-8")
    assert SCRIPT not in page and "<img" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    browser = section_html(page, "sec-samples")
    # every eval's text made it into the browser (escaped), toxicity's and hallucination's via generations
    for text in ("toxic &lt;script&gt;", "prefix &lt;img", "closed-domain prompt &lt;script&gt;", "halluc &lt;script&gt;",
                 "Q &lt;img", "likert output 0 &lt;script&gt;"):
        assert text in browser, text
    assert "alert" not in " ".join(scripts(page)[1:])  # no figure or browser script carries model text


def test_sample_browser_cap_note_and_filters(tmp_path: Path):
    page = build_run_report(_items_run(tmp_path / "run"), max_items_per_eval=3).read_text(encoding="utf-8")
    browser = section_html(page, "sec-samples")
    assert "likert: 3 of 5 records shown, 2 left out (cap 3 per eval)" in browser
    assert all(f"likert output {k}" in browser for k in range(3)) and "likert output 3" not in browser
    assert "winrate: 1 of 1 records shown" in browser
    selects = re.findall(r'<select class="sb-filter">(.*?)</select>', browser)
    assert len(selects) == 2
    assert re.findall(r'<option value="([^"]*)">', selects[0]) == ["", "winrate", "likert", "truthfulqa", "toxicity",
                                                                   "hallucination"]
    assert re.findall(r'<option value="([^"]*)">', selects[1]) == ["", "sft", "ppo"]
    script = scripts(browser)[0]
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(", script)
    assert "textContent" in script and ".value" in script and "style.display" in script


def test_malformed_items_name_file_and_record(tmp_path: Path):
    d = _items_run(tmp_path / "run")
    write_jsonl(d / "results" / "truthfulqa_items.jsonl", [
        {"policy": "ppo", "question_id": "0", "question": "q", "answer": "a"}, {"policy": "ppo", "question_id": "1", "question": "q"}])
    with pytest.raises(ValueError, match=r"truthfulqa_items\.jsonl: record 2: missing field\(s\) answer"):
        build_run_report(d)
    (d / "results" / "truthfulqa_items.jsonl").write_text('{"policy": "ppo"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"truthfulqa_items\.jsonl: record 2: expected a JSON object"):
        build_run_report(d)
    (d / "results" / "truthfulqa_items.jsonl").unlink()
    (d / "generations" / "ppo" / "closed_domain.jsonl").write_text('{"prompt": "no id"}\n')
    with pytest.raises(ValueError, match=r"closed_domain\.jsonl: record 1"):
        build_run_report(d)
    assert not (d / "report.html").exists()


def test_missing_evals_leave_notes(tmp_path: Path):
    d = tmp_path / "run"
    write_jsonl(d / "results" / "results.jsonl", [_row("sft", "winrate", "win_rate", 0.6, 0.5, 0.7, baseline="base")])
    page = build_run_report(d).read_text(encoding="utf-8")
    for sid, what in (("sec-likert", "Likert results"), ("sec-truthfulqa", "TruthfulQA results"),
                      ("sec-toxicity", "toxicity results"), ("sec-hallucination", "hallucination results"),
                      ("sec-judge-validation", "results/evals.json"), ("sec-samples", "per-item records (results/*_items.jsonl)")):
        assert f"{what} not available in this run." in section_html(page, sid), sid
    data, layout = figure_json(page, "fig-winrate")  # a win rate without a judge name is still shown
    assert "unnamed judge" in layout["title"]["text"] and data[0]["y"] == [0.6]


def test_two_judges_never_share_a_figure_and_toxicity_rows_parse(tmp_path: Path):
    d = tmp_path / "run"
    rows = [_row(p, "winrate", m, v, baseline="base", judge=j) for j, v0 in (("harmless", 0.2), ("helpful", 0.7))
            for p, m, v in (("sft", "win_rate", v0), ("sft", "lc_win_rate", v0 + 0.05))]
    rows += [_row("base", "toxicity", "expected_max_toxicity_very_biased", 0.30, 0.2, 0.4, judge="sc"),
             _row("ppo", "toxicity", "expected_max_toxicity_very_biased", 0.50, 0.4, 0.6, judge="sc"),
             _row("ppo", "toxicity", "expected_max_toxicity_very_biased_delta_vs_base", 0.20, 0.1, 0.3, baseline="base", judge="sc")]
    write_jsonl(d / "results" / "results.jsonl", rows)
    page = build_run_report(d).read_text(encoding="utf-8")
    main, main_layout = figure_json(page, "fig-winrate")
    other, other_layout = figure_json(page, "fig-winrate-harmless")
    assert "judge: helpful" in main_layout["title"]["text"] and "judge: harmless" in other_layout["title"]["text"]
    assert [t["y"] for t in main] == [[0.7], [pytest.approx(0.75)]] and [t["y"] for t in other] == [[0.2], [0.25]]
    tox, layout = figure_json(page, "fig-toxicity")
    assert [a["text"] for a in layout["annotations"]] == ["instruction: very_biased"]
    assert tox[0]["x"] == ["base", "ppo"] and tox[0]["y"] == [0.30, 0.50]
    sec = section_html(page, "sec-toxicity")
    assert '<span class="pos">+0.200 [+0.100, +0.300]</span>' in sec and "— (reference)" in sec


def test_alignment_tax_fewshot_and_non_fraction_metrics(tmp_path: Path):
    d = tmp_path / "run"
    write_jsonl(d / "results" / "results.jsonl", [
        _row("base", "squadv2", "f1", 60.0), _row("ppo", "squadv2", "f1", 55.0),
        _row("base", "hellaswag", "acc_5shot", 0.40, 0.35, 0.45), _row("ppo", "hellaswag", "acc_5shot", 0.38, 0.33, 0.43),
        _row("ppo", "hellaswag", "acc_5shot_delta_vs_base", -0.02, -0.03, -0.01, baseline="base")])
    page = build_run_report(d).read_text(encoding="utf-8")
    tax = section_html(page, "sec-alignment-tax")
    assert "69.75 (F1 points (0-100))" in tax and "51.95 (F1 points (0-100))" in tax and "-17.80 (F1 points (0-100))" in tax
    assert "<td>f1</td><td>ppo</td><td class=\"num\">55.000</td>" in tax
    assert '<span class="neg">-2.0 pp [-3.0, -1.0]</span>' in tax
    data, _ = figure_json(page, "fig-alignment-tax")
    assert [t["name"] for t in data] == ["hellaswag (acc, 5-shot)"]  # F1 0-100 is not drawn on a % axis
    deltas, _ = figure_json(page, "fig-alignment-tax-delta")
    assert deltas[0]["y"] == [-0.02] and deltas[0]["error_y"]["array"] == [pytest.approx(0.01)]


def test_ci_facet_figure_values_order_and_duplicates():
    rows = pd.DataFrame([_row("ppo", "e", "m1", 0.5, 0.4, 0.7), _row("base", "e", "m1", 0.2, None, None),
                         _row("ppo", "e", "m2", 0.9, 0.8, 1.0), _row("x", "e", "m2", None)])
    fig = ci_facet_figure(rows, facet="metric", x="policy", title="t")
    assert [list(t.x) for t in fig.data] == [["base", "ppo"], ["ppo"]]  # canonical order, the None value dropped
    assert list(fig.data[0].y) == [0.2, 0.5] and list(fig.data[0].error_y.array) == [None, pytest.approx(0.2)]
    assert list(fig.data[0].error_y.arrayminus) == [None, pytest.approx(0.1)]
    assert (fig.data[0].xaxis, fig.data[1].xaxis) == ("x", "x2")
    with pytest.raises(ValueError, match="two rows for the same bar"):
        ci_bar_figure(rows, x="policy")  # m1 and m2 of ppo would share one bar
    with pytest.raises(ValueError, match="facets"):
        ci_bar_figure(rows, facet="metric")


def test_overoptimisation_figure_skips_missing_points():
    log = [{"step": 2, "kl": 0.2, "reward_mean": 0.3, "gold_reward_mean": None},
           {"step": 1, "kl": 0.1, "reward_mean": 0.1, "gold_reward_mean": 0.05}, {"step": 3, "kl": None, "reward_mean": 1.0}]
    fig = overoptimisation_figure({"ppo_ptx": log, "ppo": [{"step": 1, "kl": 0.0}]})
    assert [t.name for t in fig.data] == ["ppo_ptx: proxy", "ppo_ptx: gold"]
    assert list(fig.data[0].x) == [0.1, 0.2] and list(fig.data[0].y) == [0.1, 0.3]
    assert list(fig.data[1].x) == [0.1] and fig.data[1].line.dash == "dash"


def test_paper_values_mapping_and_override():
    values = paper_values()
    win = find(values, "winrate", "win_rate", ours="ppo_ptx", baseline="base_fewshot")
    assert win.paper_baseline == "gpt3_175b_prompted" and win.value == 0.71 and win.ci_low == pytest.approx(0.67)
    run_rows = [ResultRow("paper", "paper:ppo_ptx_175b", "winrate", "win_rate", 0.5, 0.4, 0.6, 0, {"baseline": "base"})]
    over = find(paper_values(run_rows), "winrate", "win_rate", ours="ppo_ptx", baseline="base")
    assert (over.value, over.ci_low, over.text()) == (0.5, 0.4, "50.0% [40.0%, 60.0%]")
    assert find(values, "alignment_tax", "acc", ours="sft", task="hellaswag_local") is None  # the paper has no SFT row
    assert find(values, "alignment_tax", "acc", ours="ppo", task="hellaswag_local").value == 0.759  # canonical task name


def test_searchable_table_escapes_and_validates():
    html = searchable_table(["eval", "text"], [["a<b", "<i>x</i>"]], table_id="t1", filter_columns=[0])
    assert '<option value="a&lt;b">a&lt;b</option>' in html and "&lt;i&gt;x&lt;/i&gt;" in html and "<i>" not in html
    with pytest.raises(ValueError, match="bad table id"):
        searchable_table(["a"], [["x"]], table_id='x"><script>')
    with pytest.raises(ValueError, match="plain strings"):
        searchable_table(["a"], [[1]], table_id="t", filter_columns=[0])
    kept, left = cap_per_group([("a", 1), ("b", 1), ("a", 2), ("a", 3)], lambda r: r[0], 2)
    assert kept == [("a", 1), ("b", 1), ("a", 2)] and left == {"a": 1}


def test_toxicity_section_shows_scorer_validation_beside_results_and_strata(tmp_path: Path):
    import json
    from dataclasses import replace

    from harness.declarations import row
    from harness.results import write_results
    from harness.stats import Estimate

    tox = [row("toxicity", p, "expected_max_toxicity", Estimate(v, v - 0.1, v + 0.1, 8), instruction="basic", judge="ptr")
           for p, v in (("base", 0.4), ("ppo", 0.3))]
    tox += [row("toxicity", "ppo", "expected_max_toxicity", Estimate(0.9, 0.8, 0.95, 4), instruction="basic", judge="ptr",
                stratum="[0.5,1]"),
            row("toxicity", "ppo", "toxicity_probability", Estimate(0.75, 0.5, 1.0, 4), instruction="basic", judge="ptr",
                stratum="[0.5,1]")]
    val = [row("judge_validation", pol, m, Estimate(v, v - 0.02, v + 0.02, n), labels=lab)
           for pol, m, v, lab, n in (("ptr", "spearman", 0.881, "rtp_heldout", 707), ("ptr", "roc_auc", 0.947, "rtp_heldout", 707),
                                     ("text_length", "spearman", 0.038, "rtp_heldout", 707),
                                     ("text_length", "roc_auc", 0.511, "rtp_heldout", 707),
                                     ("ptr", "roc_auc", 0.948, "wiki_perspective", 5998),
                                     ("text_length", "roc_auc", 0.501, "wiki_perspective", 5998))]
    d = tmp_path / "run"
    write_results(d / "results", [replace(r, run_id="r") for r in tox + val])
    (d / "results" / "evals.json").write_text(json.dumps({"judges": {"ptr": {"kind": "toxicity"}}}))
    page = build_run_report(d).read_text(encoding="utf-8")
    sec = section_html(page, "sec-toxicity")
    # the overall figure and table hold the overall rows only (the stratum row does not overwrite ppo's 0.3)
    fig, layout = figure_json(page, "fig-toxicity")
    assert fig[0]["x"] == ["base", "ppo"] and fig[0]["y"] == [0.4, 0.3]
    assert "0.300 [0.200, 0.400]" in sec and "scorer: ptr" in layout["title"]["text"]
    # the scorer's validation beside the results: set, statistic, value [CI], n, trivial baseline on the same texts
    assert "How far to trust the toxicity scores" in sec
    rows = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            for tr in re.findall(r"<tr>(.*?)</tr>", sec.split("How far to trust")[1], re.S)]
    assert ["ptr", "Perspective on held-out RealToxicityPrompts continuations", "Spearman correlation with Perspective",
            "0.881 [0.861, 0.901]", "707", "0.038 [0.018, 0.058] (text_length)"] in rows
    assert ["ptr", "Perspective on held-out Wikipedia comments", "ROC-AUC", "0.948 [0.928, 0.968]", "5998",
            "0.501 [0.481, 0.521] (text_length)"] in rows
    assert not any(r and r[0] == "text_length" for r in rows)  # the baseline is never listed as a scorer
    cells = re.findall(r"<td[^>]*>(.*?)</td>", sec)
    # per prompt-toxicity stratum
    j = cells.index("[0.5,1]")
    assert cells[j - 2:j + 4] == ["basic", "ppo", "[0.5,1]", "0.900 [0.800, 0.950]", "75.0% [50.0%, 100.0%]", "4"]


def test_judge_sections_show_the_validation_beside_the_trivial_baseline(tmp_path: Path):
    import json

    d = tmp_path / "run"
    jv = "judge_validation"
    def v(policy, metric, value, lo=None, hi=None, n=10, **sl):
        return {"run_id": "r", "policy": policy, "eval": jv, "metric": metric, "value": value, "ci_low": lo, "ci_high": hi,
                "n": n, "slice": sl, "config_hash": "h", "eval_version": "2"}

    rows = [_row("sft", "winrate", "win_rate", 0.6, 0.5, 0.7, baseline="base", judge="helpful"),
            _row("ppo", "toxicity", "expected_max_toxicity_very_biased", 0.50, 0.4, 0.6, judge="sc"),
            v("helpful", "agreement", 0.61, 0.55, 0.67, n=256, labels="hh_rlhf_human"),
            v("helpful", "agreement", 0.44, 0.35, 0.52, n=100, labels="hh_rlhf_human", length="shorter_preferred"),
            v("helpful", "agreement", 0.58, n=64, labels="hh_rlhf_human", subset="harmless-base"),
            v("helpful", "balanced_agreement", 0.52, 0.47, 0.57, n=250, labels="hh_rlhf_human"),
            v("longer_output", "agreement", 0.66, 0.60, 0.72, n=256, labels="hh_rlhf_human"),
            v("longer_output", "agreement", 0.0, 0.0, 0.0, n=100, labels="hh_rlhf_human", length="shorter_preferred"),
            v("longer_output", "balanced_agreement", 0.5, 0.5, 0.5, n=250, labels="hh_rlhf_human")]
    write_jsonl(d / "results" / "results.jsonl", rows)
    (d / "results" / "evals.json").write_text(json.dumps({"judges": {
        "longer_output": {"kind": "trivial_baseline"}, "helpful": {"kind": "reward_model"}, "sc": {"kind": "toxicity"}}}))
    page = build_run_report(d).read_text(encoding="utf-8")
    win = section_html(page, "sec-winrate")
    assert "How far to trust these win rates" in win
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<tr>(.*?)</tr>", win.split("How far to trust")[1], re.S)]
    assert any("shorter preferred" in c and "44.0% [35.0%, 52.0%]" in c and "0.0% [0.0%, 0.0%] (longer_output)" in c for c in cells)
    assert any("length-balanced agreement" in c and "52.0%" in c and "50.0% [50.0%, 50.0%] (longer_output)" in c for c in cells)
    assert not any("harmless-base" in c for c in cells)  # per-subset rows stay in the judge-validation section
    assert "longer_output" not in [c.split()[0] for c in cells if c]  # the baseline is never listed as a judge
    tox = section_html(page, "sec-toxicity")
    assert "How far to trust the toxicity scores" in tox and "not validated in this run" in tox
    _, layout = figure_json(page, "fig-judge-length")
    assert "longer output wins" in layout["title"]["text"]


def test_headline_verdicts_and_the_sample_size_that_would_resolve_them(tmp_path: Path):
    import json

    from reports.sections.headline import verdict

    assert verdict({"value": 0.7, "ci_low": 0.55, "ci_high": 0.85, "n": 40}) == "resolved: interval above 0.5"
    # effect 0.1, half-width 0.2 at n = 50: the half-width must halve, so n x 4
    assert verdict({"value": 0.6, "ci_low": 0.4, "ci_high": 0.8, "n": 50}).endswith("about n = 200 would resolve it at this effect and variance")
    assert verdict({"value": 0.45, "ci_low": 0.3, "ci_high": 0.6, "n": 50}).startswith("not resolved: the estimate is not above 0.5")
    assert verdict({"value": 0.6, "ci_low": None, "ci_high": None, "n": 1}) == "no interval"
    # the eval took 150 s at n = 50: at n = 200 about 4 x 150 s = 10 min
    assert verdict({"value": 0.6, "ci_low": 0.4, "ci_high": 0.8, "n": 50}, seconds=150.0).endswith(
        "(the eval took 2.5 min here at n = 50: about 10.0 min at n = 200)")

    d = tmp_path / "run"
    rows = [_row("rm", "reward_model", "pairwise_accuracy", 0.64, 0.56, 0.72, n=128),
            _row("ppo", "winrate", "win_rate", 0.58, 0.45, 0.71, baseline="sft", judge="helpful"),
            _row("ppo", "winrate", "lc_win_rate", 0.52, 0.40, 0.64, baseline="sft", judge="helpful"),
            _row("ppo", "winrate", "win_rate", 0.9, 0.8, 1.0, baseline="sft", judge="harmless"),  # not the gold judge

            {"run_id": "r", "policy": "ppo", "eval": "alignment_tax", "metric": "acc_delta", "value": -0.05, "ci_low": -0.08,
             "ci_high": -0.02, "n": 200, "slice": {"task": "hellaswag_local", "shots": 0, "baseline": "base"}, "config_hash": "h"},
            {"run_id": "r", "policy": "ppo_ptx", "eval": "alignment_tax", "metric": "acc_delta", "value": 0.02, "ci_low": -0.01,
             "ci_high": 0.05, "n": 200, "slice": {"task": "hellaswag_local", "shots": 0, "baseline": "ppo"}, "config_hash": "h"},
            {"run_id": "r", "policy": "ppo", "eval": "toxicity", "metric": "expected_max_toxicity_delta", "value": -0.03,
             "ci_low": -0.05, "ci_high": -0.01, "n": 160, "config_hash": "h",
             "slice": {"instruction": "respectful", "judge": "perspective_tfidf_ridge", "baseline": "base"}},
            {"run_id": "r", "policy": "ppo", "eval": "toxicity", "metric": "expected_max_toxicity_delta", "value": 0.2,
             "ci_low": 0.1, "ci_high": 0.3, "n": 160, "config_hash": "h",
             "slice": {"instruction": "biased", "judge": "perspective_tfidf_ridge", "baseline": "base"}}]
    write_jsonl(d / "results" / "results.jsonl", rows)
    (d / "run.json").write_text(json.dumps({"gold_judge": "helpful", "rl_runs": [{"name": "ppo"}]}))
    log = [{"step": i, "kl": k, "reward_mean": 0.1 * i, "gold_reward_mean": g}
           for i, (k, g) in enumerate([(0.0, 0.0), (0.5, 0.2), (1.0, 0.3), (2.0, 0.35), (4.0, 0.3), (6.0, 0.2), (8.0, 0.1)])]
    write_jsonl(d / "checkpoints" / "ppo" / "train_log.jsonl", log)
    page = build_run_report(d).read_text(encoding="utf-8")
    assert page.index('<section id="sec-headline">') < page.index('<section id="sec-run">')
    sec = section_html(page, "sec-headline")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", sec))
    assert "proxy reward model: pairwise accuracy on its held-out pairs 64.0% [56.0%, 72.0%] 128 resolved: interval above 0.5" in text
    assert "ppo vs SFT: win rate, gold judge helpful 58.0% [45.0%, 71.0%]" in text and "90.0%" not in text
    assert "ppo: proxy reward (optimised RM) along KL (per-iteration batch means, 7 points) rising" in text
    assert "ppo: gold reward (held-out judge) along KL (per-iteration batch means, 7 points) peaked" in text
    assert "ppo − base on hellaswag_local (an alignment tax is below 0) -5.0 pp" in text and "resolved: interval below 0" in text
    assert "ppo_ptx − ppo on hellaswag_local (ptx gives the tax back: above 0) +2.0 pp" in text
    assert "effect +0.020 at n = 200; about n = 450 would resolve it" in text
    assert ("ppo − base: expected maximum toxicity, respectful instruction, scorer perspective_tfidf_ridge (less toxic: "
            "below 0) -0.030 [-0.050, -0.010] 160 resolved: interval below 0") in text and "biased" not in text
    data, _ = figure_json(page, "fig-headline")
    assert data[0]["y"] == [0.64, 0.58, 0.52]
    assert "records no gold judge" not in sec
    assert "sweep the seed" in text
    from reports.run_report import load_run
    from reports.sections.headline import contrasts

    recs = [c.record() for c in contrasts(load_run(d))]  # what bench/eval_stage.py writes for a preset's run
    assert [r["contrast"] for r in recs] == ["a", "b", "b", "c", "c", "d", "d", "e"]
    assert recs[0] == {"contrast": "a", "label": "proxy reward model: pairwise accuracy on its held-out pairs", "value": 0.64,
                       "ci_low": 0.56, "ci_high": 0.72, "n": 128, "shape": None, "verdict": "resolved: interval above 0.5",
                       "resolved": True}
    assert [r["resolved"] for r in recs if r["contrast"] == "b"] == [False, False]
    assert [(r["shape"], r["resolved"]) for r in recs if r["contrast"] == "c"] == [("rising", None), ("peaked", None)]
    (d / "run.json").write_text(json.dumps({"rl_runs": [{"name": "ppo"}]}))  # e.g. a harness-eval run
    assert "records no gold judge" in section_html(build_run_report(d).read_text(encoding="utf-8"), "sec-headline")


def test_headline_and_winrate_section_name_the_samples_per_prompt(tmp_path: Path):
    import json

    d = tmp_path / "run"
    write_jsonl(d / "results" / "results.jsonl", [_row("ppo", "winrate", "win_rate", 0.54, 0.51, 0.57, baseline="sft", judge="helpful"),
                                                  _row("ppo", "winrate", "lc_win_rate", 0.53, 0.5, 0.56, baseline="sft", judge="helpful")])
    (d / "run.json").write_text(json.dumps({"gold_judge": "helpful", "rl_runs": [{"name": "ppo"}]}))
    (d / "results" / "evals.json").write_text(json.dumps({"evals": {"winrate": {"samples_per_prompt": 8, "seconds": 300}}}))
    page = build_run_report(d).read_text(encoding="utf-8")
    head = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section_html(page, "sec-headline")))
    assert "ppo vs SFT: win rate, gold judge helpful, 8 answers a side per prompt 54.0% [51.0%, 57.0%]" in head
    assert "not the RL run&#x27;s own luck" in head and "sweep the seed" in head  # b is one RL run's: read it over seeds
    win = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section_html(page, "sec-winrate")))
    assert "answered every prompt 8 times" in win
    (d / "results" / "evals.json").write_text(json.dumps({"evals": {"winrate": {"samples_per_prompt": 1}}}))
    page = build_run_report(d).read_text(encoding="utf-8")
    assert "answers a side" not in page and "answered every prompt" not in page


def test_a_run_with_a_probe_reads_its_curves_from_the_probe(tmp_path: Path):
    """``probe_log.jsonl`` (trainers.probe) replaces the batch means for the shape and the figure; the batch means stay
    in the figure as faint markers, and the probe's points carry 95 % error bars."""
    import json

    from reports.run_report import load_run
    from reports.sections.headline import contrasts

    d = tmp_path / "run"
    write_jsonl(d / "results" / "results.jsonl", [_row("rm", "reward_model", "pairwise_accuracy", 0.64, 0.56, 0.72, n=128)])
    (d / "run.json").write_text(json.dumps({"gold_judge": "helpful", "rl_runs": [{"name": "ppo"}]}))
    flat = [{"step": i, "kl": 0.5 * i, "reward_mean": (-1) ** i, "gold_reward_mean": 0.0} for i in range(1, 6)]
    write_jsonl(d / "checkpoints" / "ppo" / "train_log.jsonl", flat)
    probe = [{"step": s, "episodes": 16 * s, "kl": k, "kl_se": 0.01, "reward_mean": r, "reward_se": 0.05, "gold_reward_mean": -r,
              "gold_reward_se": 0.1, "prompts": 3, "samples": 2, "seconds": 1.0}
             for s, k, r in [(0, 0.0, 0.0), (2, 0.4, 0.2), (4, 0.9, 0.5), (6, 1.5, 0.7), (8, 2.2, 0.9)]]
    write_jsonl(d / "checkpoints" / "ppo" / "probe_log.jsonl", probe)
    recs = [c.record() for c in contrasts(load_run(d)) if c.key == "c"]
    assert [(r["label"], r["shape"]) for r in recs] == [
        ("ppo: proxy reward (optimised RM) along KL (probe of 3 held-out prompts x 2 samples, 5 points)", "rising"),
        ("ppo: gold reward (held-out judge) along KL (probe of 3 held-out prompts x 2 samples, 5 points)", "falling")]
    page = build_run_report(d).read_text(encoding="utf-8")
    data, _ = figure_json(page, "fig-overoptimisation")
    by_name = {t["name"]: t for t in data}
    assert list(by_name["ppo: proxy"]["x"]) == [0.0, 0.4, 0.9, 1.5, 2.2]
    assert by_name["ppo: proxy"]["error_y"]["array"] == pytest.approx([0.098] * 5)
    assert by_name["ppo: gold"]["error_y"]["array"] == pytest.approx([0.196] * 5)
    assert list(by_name["ppo: proxy, batch means"]["y"]) == [-1, 1, -1, 1, -1]


def test_a_probe_s_shape_uses_its_standard_errors_and_says_so_when_it_has_none():
    from reports.sections.training import reward_shapes

    kl, proxy = [0.0, 0.42, 1.08, 2.1, 3.5, 4.79], [-1.87, -1.24, -1.51, -2.11, -2.09, -2.22]  # the s9 demo's probe
    probe = [{"step": 2 * i, "kl": k, "reward_mean": r, "reward_se": 0.3, "gold_reward_mean": None, "prompts": 24, "samples": 1}
             for i, (k, r) in enumerate(zip(kl, proxy))]
    [(run, label, points, shape, text)] = reward_shapes({}, {"ppo": probe})
    assert (run, shape) == ("ppo", "flat") and "standard errors (median 0.3)" in text and points.startswith("probe of 24")
    one_prompt = [dict(p, reward_se=float("nan"), prompts=1) for p in probe]
    [(_, _, _, shape, text)] = reward_shapes({}, {"ppo": one_prompt})
    assert shape == "peaked" and text.endswith("tested without them)")  # the old test, and the row says so


def test_batch_means_with_logged_standard_errors_are_weighed_by_them(tmp_path: Path):
    """A train log's ``reward_se`` / ``gold_reward_se`` (trainers.ppo logs them per iteration) make a run without a probe
    take the weighted test and get error bars; a log without them keeps the old test, and the row says so."""
    import json

    from reports.sections.training import reward_shapes

    kl, proxy = [0.0, 0.42, 1.08, 2.1, 3.5, 4.79], [-1.87, -1.24, -1.51, -2.11, -2.09, -2.22]
    log = [{"step": i + 1, "kl": k, "reward_mean": r, "reward_se": 0.3, "gold_reward_mean": r / 2, "gold_reward_se": 0.15}
           for i, (k, r) in enumerate(zip(kl, proxy))]
    rows = reward_shapes({"ppo": log})
    assert [(label, points, shape) for _, label, points, shape, _ in rows] == [
        ("proxy reward (optimised RM)", "per-iteration batch means, 6 points", "flat"),
        ("gold reward (held-out judge)", "per-iteration batch means, 6 points", "flat")]
    assert "standard errors (median 0.3)" in rows[0][4] and "standard errors (median 0.15)" in rows[1][4]
    old = [{k: v for k, v in row.items() if not k.endswith("_se")} for row in log]
    [(_, _, _, shape, text), _] = reward_shapes({"ppo": old})
    assert shape == "peaked" and text.endswith("(the train log has no standard errors of its batch means: tested without them)")
    d = tmp_path / "run"
    write_jsonl(d / "results" / "results.jsonl", [_row("rm", "reward_model", "pairwise_accuracy", 0.64, 0.56, 0.72, n=128)])
    (d / "run.json").write_text(json.dumps({"gold_judge": "helpful", "rl_runs": [{"name": "ppo"}]}))
    write_jsonl(d / "checkpoints" / "ppo" / "train_log.jsonl", log)
    data, _ = figure_json(build_run_report(d).read_text(encoding="utf-8"), "fig-overoptimisation")
    by_name = {t["name"]: t for t in data}
    assert by_name["ppo: proxy"]["error_y"]["array"] == pytest.approx([0.588] * 6)
    assert by_name["ppo: gold"]["error_y"]["array"] == pytest.approx([0.294] * 6)


def test_a_probe_that_recorded_each_prompt_s_reward_is_tested_paired():
    from reports.sections.training import reward_shapes

    kl = [0.0, 0.4, 0.9, 1.5, 2.2]
    by_prompt = [[lvl + 0.3 * k ** 0.5 + eps for k, eps in zip(kl, (0.0, 0.01, -0.01, 0.0, 0.01))] for lvl in (-3.0, 0.0, 3.0)]
    means = [sum(col) / 3 for col in zip(*by_prompt)]
    probe = [{"step": 2 * i, "kl": k, "reward_mean": m, "reward_se": 1.7, "reward_by_prompt": [row[i] for row in by_prompt],
              "gold_reward_mean": None, "prompts": 3, "samples": 1} for i, (k, m) in enumerate(zip(kl, means))]
    [(_, _, _, shape, text)] = reward_shapes({}, {"ppo": probe})
    assert shape == "rising" and "over 3 prompts" in text  # each prompt rises: paired, the levels' spread does not hide it
    old = [{k: v for k, v in p.items() if k != "reward_by_prompt"} for p in probe]  # a probe from before they were kept
    [(_, _, _, shape, text)] = reward_shapes({}, {"ppo": old})
    assert shape == "flat" and "standard errors (median 1.7)" in text
    resumed = old[:2] + probe[2:]  # resumed from a training state written before they were kept: says it is not paired
    [(_, _, _, shape, text)] = reward_shapes({}, {"ppo": resumed})
    assert shape == "flat" and text.endswith("(per-prompt rewards at 3 of 5 points, of [3] prompts: not tested paired)")


def test_the_ppo_section_says_how_each_rl_run_estimated_its_advantages(tmp_path: Path):
    """From run.json's rl_runs: the leave-one-out baseline with its sample count; a record from before the option
    (no advantage_estimator) is GAE, the only estimator there was."""
    import json

    d = tmp_path / "run"
    write_jsonl(d / "results" / "results.jsonl", [_row("rm", "reward_model", "pairwise_accuracy", 0.64, 0.56, 0.72, n=128)])
    (d / "run.json").write_text(json.dumps({"gold_judge": "helpful", "rl_runs": [
        {"name": "ppo", "beta": 0.02, "ptx_coef": 0.0, "ptx": False, "advantage_estimator": "rloo", "samples_per_prompt": 4},
        {"name": "ppo_ptx", "beta": 0.02, "ptx_coef": 1.0, "ptx": True}]}))
    for run in ("ppo", "ppo_ptx"):
        write_jsonl(d / "checkpoints" / run / "train_log.jsonl",
                    [{"step": i, "kl": 0.5 * i, "reward_mean": 0.1 * i, "gold_reward_mean": 0.0} for i in range(1, 5)])
    html = section_html(build_run_report(d).read_text(encoding="utf-8"), "sec-ppo")
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    by_run = {re.sub(r"<[^>]+>", "|", r).strip("|").split("|")[0]: r for r in rows}
    assert "leave-one-out baseline over 4 samples of a prompt (no value model)" in by_run["ppo"]
    assert "GAE (value model)" in by_run["ppo_ptx"] and "leave-one-out" not in by_run["ppo_ptx"]

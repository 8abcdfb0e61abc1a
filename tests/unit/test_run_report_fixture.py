"""The run report built from a copy of a real smoke-pipeline run (tests/data/smoke_run).

tests/data/smoke_run is a trimmed copy of `harness-pipeline pipeline=smoke` on model=tiny (seed 0): run.json,
results/ (results.jsonl with the paper's rows, every *_items.jsonl, evals.json), the PPO train logs and the
toxicity / closed-domain generations (no weights). Expected values are read from those files with json/yaml
here, independently of the report's loaders, and compared with the numbers the page's figures and tables show.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import plotly.offline
import pytest
import yaml

from reports.page_reader import figure_ids, figure_json, scripts, section_html
from reports.run_report import build_run_report

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "smoke_run"
PAPER_YAML = Path(__file__).resolve().parents[2] / "harness" / "evals" / "data" / "paper_reference.yaml"
SECTIONS = ("sec-headline", "sec-run", "sec-winrate", "sec-likert", "sec-truthfulqa", "sec-toxicity", "sec-hallucination",
            "sec-alignment-tax", "sec-rm", "sec-ppo", "sec-judge-validation", "sec-samples")
FIGURES = ("fig-headline", "fig-winrate", "fig-winrate-harmless", "fig-likert", "fig-likert-flags", "fig-truthfulqa",
           "fig-truthfulqa-mc", "fig-toxicity", "fig-hallucination", "fig-alignment-tax", "fig-alignment-tax-delta",
           "fig-rm-accuracy", "fig-ppo-curves", "fig-overoptimisation", "fig-judge-validation",
           "fig-detector-validation")
POLICIES = ["base", "sft", "ppo", "ppo_ptx"]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rep") / "run"
    shutil.copytree(FIXTURE, d)
    return d


@pytest.fixture(scope="module")
def page(run: Path) -> str:
    return build_run_report(run, max_items_per_eval=200).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rows(run: Path) -> list[dict]:
    return [r for r in _jsonl(run / "results" / "results.jsonl") if r["run_id"] != "paper"]


def _pick(rows, **kw):
    out = [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
    assert out, kw
    return out


def _bars(data, axis="x"):
    """{(trace name, x): (y, error plus, error minus)} of the bar traces on one subplot axis."""
    out = {}
    for t in data:
        if t.get("type") == "bar" and t.get("xaxis", "x") == axis:
            for i, x in enumerate(t["x"]):
                out[(t["name"], x)] = (t["y"][i], t["error_y"]["array"][i], t["error_y"]["arrayminus"][i])
    return out


def _check(bar, row):
    y, plus, minus = bar
    assert y == pytest.approx(row["value"])
    if row["ci_low"] is None:  # no interval (n = 1): no error bar
        assert plus is None and minus is None
    else:
        assert plus == pytest.approx(row["ci_high"] - row["value"]) and minus == pytest.approx(row["value"] - row["ci_low"])


def test_sections_figures_order_and_one_plotly(page):
    positions = [page.index(f'<section id="{s}">') for s in SECTIONS]
    assert positions == sorted(positions)
    assert figure_ids(page) == list(FIGURES)
    assert page.count(plotly.offline.get_plotlyjs()[:300]) == 1
    assert "not available in this run" not in page.replace(section_html(page, "sec-samples"), "")


def test_winrate_figures_one_judge_each(page, rows):
    for fig_id, judge in (("fig-winrate", "helpful"), ("fig-winrate-harmless", "harmless")):
        data, layout = figure_json(page, fig_id)
        assert f"judge: {judge}" in layout["title"]["text"]
        assert [a["text"] for a in layout["annotations"][:2]] == ["win rate (raw)", "length-controlled win rate"]
        mine = _pick(rows, eval="winrate", judge=judge)
        for axis, metric in (("x", "win_rate"), ("x2", "lc_win_rate")):
            bars = _bars(data, axis)
            expected = [r for r in mine if r["metric"] == metric]
            assert len(bars) == len(expected) == 14  # 4 policies x 4 baselines, less a policy against itself
            for r in expected:
                _check(bars[(r["baseline"], r["policy"])], r)
    table = section_html(page, "sec-winrate")
    paper = yaml.safe_load(PAPER_YAML.read_text())["values"]
    vs_gpt3 = next(e for e in paper if e["eval"] == "winrate" and e.get("paper_baseline") == "gpt3_175b")
    assert f"{vs_gpt3['value']:.1%} [" in table and "paper:ppo_ptx_175b vs paper:gpt3_175b" in table


def test_likert_truthfulqa_toxicity_hallucination_values(page, rows):
    bars = _bars(figure_json(page, "fig-likert")[0])
    for r in _pick(rows, eval="likert", metric="likert"):
        _check(bars[("mean Likert score (1–7)", r["policy"])], r)
    flags, layout = figure_json(page, "fig-likert-flags")
    for r in [r for r in _pick(rows, eval="likert") if r["metric"] != "likert"]:
        _check(_bars(flags)[(r["policy"], f"{r['metric']} ({r['judge']})")], r)  # each flag named with its detector
    data, layout = figure_json(page, "fig-truthfulqa")
    assert "rouge1_diff>0.0" in layout["title"]["text"]
    for axis, style in (("x", "qa"), ("x2", "instruction_qa")):
        for r in _pick(rows, eval="truthfulqa", metric=f"truthful_informative_{style}"):
            _check(_bars(data, axis)[("% truthful × informative", r["policy"])], r)
    for r in _pick(rows, eval="truthfulqa", metric="mc2"):
        _check(_bars(figure_json(page, "fig-truthfulqa-mc")[0])[("MC2", r["policy"])], r)
    data, layout = figure_json(page, "fig-toxicity")
    assert "profanity_check" in layout["title"]["text"]
    assert [a["text"] for a in layout["annotations"]] == ["instruction: basic", "instruction: respectful", "instruction: biased"]
    for r in _pick(rows, eval="toxicity", metric="expected_max_toxicity_biased"):
        _check(_bars(data, "x3")[("expected maximum toxicity", r["policy"])], r)
    data, layout = figure_json(page, "fig-hallucination")
    assert "support_check>0.8" in layout["title"]["text"]
    for r in _pick(rows, eval="hallucination", metric="hallucination_rate"):
        _check(_bars(data)[("overall", r["policy"])], r)


def test_alignment_tax_table_shows_paper_values(page, rows):
    tax = section_html(page, "sec-alignment-tax")
    paper = {(e["slice"].get("task", e["eval"]), e["paper_policy"]): e["value"] for e in yaml.safe_load(PAPER_YAML.read_text())["values"]}
    hella = tax[tax.index("Alignment tax: hellaswag_local"):tax.index("Alignment tax: truthfulqa_mc2_local")]
    assert "HellaSwag" in hella
    for model in ("gpt3_175b", "ppo_175b", "ppo_ptx_175b"):
        assert f"{paper[('hellaswag', model)]:.1%} (paper:{model})" in hella
    d = paper[("hellaswag", "ppo_ptx_175b")] - paper[("hellaswag", "gpt3_175b")]
    assert f"{d * 100:+.1f} pp" in hella  # the paper's own delta vs GPT-3
    tqa = tax[tax.index("Alignment tax: truthfulqa_mc2_local"):]
    assert "TruthfulQA" in tqa and "not MC2" in tqa  # says which paper row is shown
    assert f"{paper[('truthfulqa', 'ppo_175b')]:.1%} (paper:ppo_175b)" in tqa
    delta = _pick(rows, eval="hellaswag_local", metric="acc_delta_vs_base", policy="ppo")[0]
    assert f"{delta['value'] * 100:+.1f} pp [{delta['ci_low'] * 100:+.1f}, {delta['ci_high'] * 100:+.1f}]" in hella
    data, _ = figure_json(page, "fig-alignment-tax")
    assert all(not t["name"].startswith("paper") for t in data) and all("paper:" not in x for t in data for x in t["x"])


def test_judge_validation_reference_line_and_cache(page, rows, run):
    data, layout = figure_json(page, "fig-judge-validation")
    assert 0.726 in [s["y0"] for s in layout["shapes"]]
    r = _pick(rows, eval="judge_validation", metric="human_agreement", policy="helpful")[0]
    _check(_bars(data)[("helpful", "hh-rlhf, all")], r)
    cache = json.loads((run / "results" / "evals.json").read_text())["generation_cache"]
    sec = section_html(page, "sec-judge-validation")
    rate = cache["hits"] / (cache["hits"] + cache["misses"])
    assert f'<td class="num">{cache["hits"]}</td><td class="num">{cache["misses"]}</td>' in sec and f"{rate:.1%}" in sec
    assert "72.6% [71.1%, 74.1%]" in sec


def test_overoptimisation_points_are_the_logs(page, run):
    data, _ = figure_json(page, "fig-overoptimisation")
    traces = {t["name"]: t for t in data}
    for name in ("ppo", "ppo_ptx"):
        log = _jsonl(run / "checkpoints" / name / "train_log.jsonl")
        assert traces[f"{name}: proxy"]["x"] == pytest.approx([s["kl"] for s in log])
        assert traces[f"{name}: proxy"]["y"] == pytest.approx([s["reward_mean"] for s in log])
        assert traces[f"{name}: gold"]["y"] == pytest.approx([s["gold_reward_mean"] for s in log])


def test_sample_browser_has_every_item_and_no_text_in_figures(page, run):
    browser = section_html(page, "sec-samples")
    counts = {}
    for name in ("winrate", "likert", "truthfulqa", "toxicity", "hallucination"):
        items = _jsonl(run / "results" / f"{name}_items.jsonl")
        counts[name] = len(items)
        shown = browser.count(f"<tr><td>{name}</td>")
        assert shown == min(len(items), 200), name
    assert counts["winrate"] == 224 and "winrate: 200 of 224 records shown, 24 left out (cap 200 per eval)" in browser
    assert "likert: 48 of 48 records shown" in browser
    gens = _jsonl(run / "generations" / "ppo" / "toxicity_biased_sample1.jsonl")
    assert gens[0]["output"].replace("&", "&amp;") in browser  # toxicity continuations joined from generations
    figures_json = " ".join(json.dumps(figure_json(page, f)) for f in FIGURES)
    texts = [r["output"] for r in _jsonl(run / "results" / "winrate_items.jsonl")] + [g["output"] for g in gens]
    assert not [t for t in texts if len(t) > 8 and json.dumps(t)[1:-1] in figures_json]
    script = scripts(browser)
    assert len(script) == 1
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|Function\(", script[0])

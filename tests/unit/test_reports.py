"""Tests for reports/: figure builders, HTML escaping, and the self-contained run report."""

from __future__ import annotations

import re
from pathlib import Path

import plotly.offline
import pytest

from harness.io import write_json, write_jsonl
from harness.results import read_rows
from reports import figures
from reports.html import esc, fmt_pct, fmt_pp, table
from reports.run_report import build_run_report

EVIL = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
FIG_IDS = ("fig-headline", "fig-winrate", "fig-alignment-tax", "fig-alignment-tax-delta", "fig-rm-accuracy", "fig-ppo-curves",
           "fig-overoptimisation")
SEC_IDS = ("sec-headline", "sec-run", "sec-winrate", "sec-likert", "sec-truthfulqa", "sec-toxicity", "sec-hallucination",
           "sec-alignment-tax", "sec-rm", "sec-ppo", "sec-judge-validation", "sec-samples")
N_SCRIPTS = 1 + len(FIG_IDS) + 1  # plotly.js, one per figure, the sample browser
POLICIES = ("base", "sft", "ppo", "ppo_ptx")


def _row(policy, eval_, metric, value, lo=None, hi=None, n=100, **slice_):
    return {"run_id": "r1", "policy": policy, "eval": eval_, "metric": metric, "value": value,
            "ci_low": lo, "ci_high": hi, "n": n, "slice": slice_, "config_hash": "abc"}


def _results():
    rows = []
    # deliberately shuffled policy order: the report must reorder to base, sft, ppo, ppo_ptx
    for pol, wr in (("ppo_ptx", 0.71), ("base", 0.22), ("ppo", 0.68), ("sft", 0.45)):
        rows.append(_row(pol, "winrate", "win_rate", wr, wr - 0.05, wr + 0.04, 200, baseline="text-davinci-003", judge="helpful"))
        rows.append(_row(pol, "winrate", "win_prob", wr - 0.01, None, None, 200, baseline="text-davinci-003", judge="helpful"))
    task = {"task": "hellaswag", "shots": 0}
    for pol, acc in (("base", 0.412), ("sft", 0.405), ("ppo", 0.377), ("ppo_ptx", 0.409)):
        rows.append(_row(pol, "alignment_tax", "acc", acc, acc - 0.02, acc + 0.02, 500, **task))
    rows.append(_row("sft", "alignment_tax", "acc_delta", -0.007, -0.015, 0.001, 500, **task, baseline="base"))
    rows.append(_row("ppo", "alignment_tax", "acc_delta", -0.0351, -0.045, -0.025, 500, **task, baseline="base"))
    rows.append(_row("ppo_ptx", "alignment_tax", "acc_delta", -0.003, -0.01, 0.004, 500, **task, baseline="base"))
    rows.append(_row("rm", "reward_model", "pairwise_accuracy", 0.64, 0.60, 0.68, 400))
    rows.append(_row("judge", "reward_model", "pairwise_accuracy", 0.69, 0.65, 0.73, 400))
    return rows


def _log(n, ptx):
    return [{"step": s, "reward_mean": 0.1 * s, "kl": 0.01 * s, "ptx_loss": (3.0 - 0.1 * s) if ptx else None,
             "policy_loss": 0.1, "value_loss": 0.2, "beta": 0.02} for s in range(n)]


def _items():
    items = []
    for k in range(7):
        for pol in POLICIES:
            items.append({"policy": pol, "baseline": "text-davinci-003", "prompt_id": f"p{k}",
                          "instruction": f"Instruction {k} <b>bold?</b>",
                          "output": EVIL if (k, pol) == (0, "ppo") else f"output of {pol} for p{k}",
                          "baseline_output": f"davinci says {k} & \"quotes\"",
                          "reward": 0.5, "baseline_reward": -0.25, "win": 1, "judge": "helpful"})
    return items


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    write_json(d / "run.json", {"run_id": "r1", "created": "2025-01-01T00:00:00", "git_commit": "deadbeef",
                                "config": {"ppo": {"beta": 0.02}},
                                "data_fingerprints": {"hh_rlhf": "a" * 64, "evil" + EVIL: "b" * 64}})
    write_jsonl(d / "results" / "results.jsonl", _results())
    write_jsonl(d / "results" / "winrate_items.jsonl", _items())
    write_jsonl(d / "checkpoints" / "ppo" / "train_log.jsonl", _log(10, ptx=False))
    write_jsonl(d / "checkpoints" / "ppo_ptx" / "train_log.jsonl", _log(8, ptx=True))
    return d


def _bundle_marker() -> str:
    return plotly.offline.get_plotlyjs()[:200]


def test_full_report_is_self_contained_and_escaped(run_dir: Path):
    out = build_run_report(run_dir)
    assert out == run_dir / "report.html" and out.is_file()
    page = out.read_text(encoding="utf-8")
    assert page.count(_bundle_marker()) == 1
    assert "<title>InstructGPT harness report — r1</title>" in page
    for fid in FIG_IDS:
        assert f'id="{fid}"' in page
    for sid in SEC_IDS:
        assert f'<section id="{sid}">' in page and f'href="#{sid}"' in page
    # only the bundle, one script per figure and the browser's; injected text appears escaped only
    assert page.count("<script") == N_SCRIPTS
    assert "alert(" not in re.sub(r"&lt;script&gt;alert\(1\)&lt;/script&gt;|onerror=alert\(2\)&gt;", "", page)
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<img" not in page and "<b>bold?</b>" not in page and "&lt;b&gt;bold?&lt;/b&gt;" in page
    assert "&amp; &quot;quotes&quot;" in page
    assert not re.search(r"<script[^>]*\bsrc=", page)
    # outside the inlined bundle (whose unused topojson default names a CDN) nothing is remote
    outside = page.replace(plotly.offline.get_plotlyjs(), "")
    assert "cdn" not in outside.lower() and "https://" not in outside and "http://" not in outside


def test_alignment_tax_table_values(run_dir: Path):
    page = build_run_report(run_dir).read_text(encoding="utf-8")
    tax = page[page.index('<section id="sec-alignment-tax">'):page.index('<section id="sec-rm">')]
    assert '<span class="neg">-3.5 pp [-4.5, -2.5]</span>' in tax
    assert "37.7% [35.7%, 39.7%]" in tax
    assert "— (reference)" in tax
    # our task "hellaswag" is the paper's HellaSwag (Table 14): GPT-3 79.1 %, PPO 75.9 % -> paper delta -3.2 pp
    assert "79.1% (paper:gpt3_175b)" in tax and "75.9% (paper:ppo_175b)" in tax and "-3.2 pp" in tax
    # rows in canonical policy order
    assert [tax.index(f"<td>{p}</td>") for p in POLICIES] == sorted(tax.index(f"<td>{p}</td>") for p in POLICIES)


def test_rm_table_lists_accuracy_per_k_under_its_model(run_dir: Path):
    rows = _results() + [_row("rm", "reward_model", "pairwise_accuracy", 0.7, 0.6, 0.8, 360, k=9),
                         _row("rm", "reward_model", "pairwise_accuracy", 0.5, 0.4, 0.6, 40, k=4)]
    write_jsonl(run_dir / "results" / "results.jsonl", rows)
    page = build_run_report(run_dir).read_text(encoding="utf-8")
    rm = page[page.index('<section id="sec-rm">'):page.index('<section id="sec-ppo">')]
    order = [rm.index(s) for s in ("<td>rm</td>", "<td>rm, K = 4</td>", "<td>rm, K = 9</td>", "<td>judge</td>")]
    assert order == sorted(order) and "70.0% [60.0%, 80.0%]" in rm and ">360</td>" in rm
    overall = [r for r in rows if r["eval"] == "reward_model" and "k" not in r["slice"]]
    assert list(figures.rm_accuracy_figure(overall).data[0].x) == ["rm", "judge"]  # the figure has the overall bars


def test_winrate_table_and_samples(run_dir: Path):
    page = build_run_report(run_dir, max_items_per_eval=10).read_text(encoding="utf-8")
    win = page[page.index('<section id="sec-winrate">'):page.index('<section id="sec-likert">')]
    assert "71.0% [66.0%, 75.0%]" in win and "70.0%" in win  # win_rate and win_prob of ppo_ptx
    samples = page[page.index('<section id="sec-samples">'):]
    # 28 records in file order (4 policies per prompt): the first 10 are prompts 0, 1 and half of 2
    assert "Instruction 2" in samples and "Instruction 3" not in samples
    assert "winrate: 10 of 28 records shown, 18 left out (cap 10 per eval)" in samples
    assert "win vs text-davinci-003" in samples and "reward +0.500 vs baseline -0.250" in samples


def test_missing_ppo_ptx_log_still_renders_ppo(run_dir: Path):
    (run_dir / "checkpoints" / "ppo_ptx" / "train_log.jsonl").unlink()
    page = build_run_report(run_dir).read_text(encoding="utf-8")
    assert 'id="fig-ppo-curves"' in page
    assert "training log not available in this run for: ppo_ptx" in page
    assert page.count("<script") == N_SCRIPTS


def test_missing_optional_files_omit_sections(tmp_path: Path):
    d = tmp_path / "empty_run"
    d.mkdir()
    out = build_run_report(d, tmp_path / "elsewhere" / "r.html")
    page = out.read_text(encoding="utf-8")
    assert out == tmp_path / "elsewhere" / "r.html"
    assert page.count(_bundle_marker()) == 1 and page.count("<script") == 1
    for sid in SEC_IDS:  # every section says it has nothing, none is dropped
        start = page.index(f'<section id="{sid}">')
        assert "not available in this run" in page[start:page.index("</section>", start)], sid
    assert "empty_run" in page  # run id falls back to the directory name


def test_malformed_results_line_names_file(run_dir: Path):
    path = run_dir / "results" / "results.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(ValueError, match="results.jsonl"):
        build_run_report(run_dir)
    assert not (run_dir / "report.html").exists()


def test_results_row_missing_field_or_bad_type(tmp_path: Path):
    bad = tmp_path / "results.jsonl"
    write_jsonl(bad, [{"run_id": "r", "policy": "sft", "eval": "winrate", "metric": "win_rate", "slice": {}}])
    with pytest.raises(ValueError, match=r"results\.jsonl: record 1"):
        read_rows(bad)
    write_jsonl(bad, [_row("sft", "winrate", "win_rate", "0.5")])
    with pytest.raises(ValueError, match="value"):
        read_rows(bad)


def test_malformed_train_log_names_file(run_dir: Path):
    (run_dir / "checkpoints" / "ppo" / "train_log.jsonl").write_text('{"reward_mean": 1.0}\n')
    with pytest.raises(ValueError, match=r"ppo/train_log\.jsonl"):
        build_run_report(run_dir)


def test_rm_figure_lines_and_order():
    rows = [r for r in _results() if r["eval"] == "reward_model"][::-1]
    fig = figures.rm_accuracy_figure(rows)
    assert list(fig.data[0].x) == ["rm", "judge"]
    assert list(fig.data[0].y) == pytest.approx([0.64, 0.69])
    assert sorted(s.y0 for s in fig.layout.shapes) == [0.5, figures.HUMAN_AGREEMENT]


def test_ppo_curves_skip_nulls():
    fig = figures.ppo_curves_figure({"ppo_ptx": _log(4, ptx=True), "ppo": _log(5, ptx=False)})
    # ppo: reward_mean + kl (ptx_loss all null); ppo_ptx: all three
    assert [t.name for t in fig.data] == ["ppo", "ppo", "ppo_ptx", "ppo_ptx", "ppo_ptx"]
    assert list(fig.data[0].y) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert list(fig.data[4].y) == pytest.approx([3.0, 2.9, 2.8, 2.7])
    assert [t.showlegend for t in fig.data] == [True, False, True, False, False]


def test_html_helpers():
    assert esc('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    assert esc(None) == "—"
    assert fmt_pct(0.6123, 0.55, 0.67) == "61.2% [55.0%, 67.0%]"
    assert fmt_pp(-0.031) == "-3.1 pp" and fmt_pp(0.02, 0.01, 0.03) == "+2.0 pp [+1.0, +3.0]"
    t = table(["<h>"], [["<td>"]])
    assert "<th>&lt;h&gt;</th>" in t and "<td>&lt;td&gt;</td>" in t

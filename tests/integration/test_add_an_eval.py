"""Adding an eval is one module and one YAML: tests/plugin_eval/ (answer_length, mean answer length in words
and characters) runs through harness-eval, gates through harness-regress and renders in harness-report, and no
file of the harness names it. The gate and the report run without the module: the run describes its own metrics."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.io import read_json, read_jsonl
from reports.page_reader import figure_json, section_html

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "tests" / "plugin_eval"
BIN = Path(sys.executable).parent
HANG_GUARD_S = 1800


def _run(cmd, env, cwd=REPO):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_dir, data_dir):
    root = tmp_path_factory.mktemp("plugin")
    davinci = Path(data_dir) / "alpaca_eval" / "text_davinci_001_model_outputs.json"
    shortened = root / "davinci001_first_word.json"  # every answer cut to its first word: a clearly shorter policy
    shortened.write_text(json.dumps([dict(r, output=r["output"].split()[0] if r["output"].split() else "")
                                     for r in json.loads(davinci.read_text())]))
    env = {**os.environ, "HARNESS_EVAL_MODULES": "tests.plugin_eval.answer_length",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = {}
    for name, outputs in (("A", davinci), ("B", shortened)):
        proc = _run([str(BIN / "harness-eval"), "model=tiny", f"hydra.searchpath=[file://{PLUGIN / 'conf'}]",
                     "+evals@evals.answer_length=answer_length", "eval.run=[answer_length]", "data.n_eval_prompts=6",
                     "eval.bootstrap_resamples=100", f"eval.cache_dir={root / 'cache'}", f"+policies.base={tiny_dir}",
                     f"+policies.davinci001={{outputs:{outputs}}}", f"hydra.run.dir={root / name}"], env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = root / name
    return out, env


def test_it_runs_with_its_declared_metric_and_slice(runs):
    (dirs, _) = runs
    rows = read_jsonl(dirs["A"] / "results" / "results.jsonl")
    assert {(r["policy"], r["metric"], r["slice"]["count"]) for r in rows} == {
        (p, "mean_length", c) for p in ("base", "davinci001") for c in ("words", "chars")}
    items = read_jsonl(dirs["A"] / "results" / "answer_length_items.jsonl")
    outputs = {g["prompt_id"]: g["output"] for g in read_jsonl(dirs["A"] / "generations" / "davinci001" / "alpaca_eval.jsonl")}
    words = next(r for r in rows if r["policy"] == "davinci001" and r["slice"] == {"count": "words"})
    assert words["n"] == 6 and words["value"] == pytest.approx(sum(len(o.split()) for o in outputs.values()) / 6)
    assert words["eval_version"] == "1" and len(items) == 2 * 2 * 6
    declared = read_json(dirs["A"] / "results" / "metrics.json")["answer_length"]
    assert declared["item_id"] == ["prompt_id"] and declared["metrics"]["mean_length"]["slices"] == ["count"]


def test_it_gates_without_its_module(runs, tmp_path):
    (dirs, env) = runs
    plain = {k: v for k, v in env.items() if k != "HARNESS_EVAL_MODULES"}  # the snapshot and run describe themselves
    snap = tmp_path / "baseline.json"
    assert _run([str(BIN / "harness-regress"), "snapshot=true", f"run_dir={dirs['A']}", f"baseline={snap}"], plain).returncode == 0
    same = _run([str(BIN / "harness-regress"), f"run_dir={dirs['A']}", f"baseline={snap}", "step_summary=false",
                 f"markdown={tmp_path / 'a.md'}", f"junit={tmp_path / 'a.xml'}"], plain)
    assert same.returncode == 0 and "4 metrics, 0 regressions, 0 errors" in same.stdout
    # B evaluated another outputs file: the gate names that difference and stops, unless it is allowed
    gate_b = [str(BIN / "harness-regress"), f"run_dir={dirs['B']}", f"baseline={snap}", "step_summary=false",
              f"markdown={tmp_path / 'b.md'}", f"junit={tmp_path / 'b.xml'}"]
    refused = _run(gate_b, plain)
    assert refused.returncode == 2 and "data_fingerprints: 1 only in the baseline (eval:answer_length:alpaca_eval/" \
        "text_davinci_001_model_outputs.json); 1 only in the run (eval:answer_length:file:davinci001_first_word.json)" in refused.stderr
    worse = _run([*gate_b, "allow_mismatch=[data_fingerprints]"], plain)
    assert worse.returncode == 1, worse.stderr[-2000:]
    regressed = set(re.findall(r"REGRESSION\s+(\S+)", worse.stderr))
    assert regressed == {"answer_length/davinci001/mean_length{count=chars}", "answer_length/davinci001/mean_length{count=words}"}


def test_it_renders_in_the_report_without_its_module(runs, tmp_path):
    (dirs, env) = runs
    plain = {k: v for k, v in env.items() if k != "HARNESS_EVAL_MODULES"}
    proc = _run([str(BIN / "harness-report"), f"run_dir={dirs['A']}", f"hydra.run.dir={tmp_path / 'log'}"], plain)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (dirs["A"] / "report.html").read_text()
    section = section_html(page, "sec-eval-answer-length")
    assert "Answer length" in page and "mean answer length" in section
    data, layout = figure_json(page, "fig-answer-length-mean-length")
    rows = read_jsonl(dirs["A"] / "results" / "results.jsonl")
    bars = {(t["xaxis"], x): y for t in data for x, y in zip(t["x"], t["y"])}
    facets = [a["text"] for a in layout["annotations"]]
    for r in rows:
        axis = "x" if facets.index(f"count={r['slice']['count']}") == 0 else "x2"
        assert bars[(axis, r["policy"])] == pytest.approx(r["value"])


def test_no_file_of_the_harness_names_it():
    for folder in ("harness", "reports", "trainers", "conf"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".yaml"):
                assert "answer_length" not in path.read_text(encoding="utf-8"), path

"""`harness-pipeline pipeline=smoke` end to end through its console script."""

import json
import math
import os
import re
import subprocess
from pathlib import Path

import pytest

from harness.io import read_json, read_jsonl, write_jsonl
from harness.regress.items import slice_key
from harness.results import read_results

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests" / "data" / "smoke_reference" / "results.jsonl"
BEFORE_SLICES = REPO / "tests" / "data" / "smoke_reference" / "results_before_slices.jsonl"
HANG_GUARD_S = 3600  # the smoke run takes about 1.5 min on an idle 2-core machine; this only stops a hang
FIGURES = ["fig-headline", "fig-winrate", "fig-winrate-harmless", "fig-likert", "fig-likert-flags", "fig-truthfulqa", "fig-truthfulqa-mc",
           "fig-toxicity", "fig-hallucination", "fig-alignment-tax", "fig-alignment-tax-delta", "fig-rm-accuracy",
           "fig-ppo-curves", "fig-overoptimisation", "fig-judge-validation", "fig-judge-length", "fig-detector-validation"]
N_SCRIPTS = 1 + len(FIGURES) + 1  # plotly.js once, one per figure, the sample browser


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    exe = Path(os.sys.executable).parent / "harness-pipeline"
    proc = subprocess.run([str(exe), "pipeline=smoke", "tracking.log_with=[tensorboard]", f"hydra.run.dir={run_dir}"], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "HARNESS_CACHE_DIR": str(run_dir.parent / "cache")},
                          timeout=HANG_GUARD_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == f"report: {run_dir / 'report.html'}"
    (run_dir.parent / "stdout.txt").write_text(proc.stdout, encoding="utf-8")
    return run_dir


def test_prints_every_result_in_the_summary_table_and_logs_it_to_tensorboard(smoke_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = read_jsonl(smoke_run / "results" / "results.jsonl")
    lines = (smoke_run.parent / "stdout.txt").read_text(encoding="utf-8").splitlines()
    start = lines.index(f"results: {len(rows)} rows ({smoke_run / 'results' / 'results.csv'})")
    header = [c.strip() for c in lines[start + 1].strip("|").split("|")]
    assert header == ["policy", "eval", "metric", "condition", "value [95% CI]", "n", "baseline", "judge"]
    table = [[c.strip() for c in line.strip("|").split("|")] for line in lines[start + 3:start + 3 + len(rows)]]
    assert [(t[0], t[1], t[2]) for t in table] == [(r["policy"], r["eval"], r["metric"]) for r in rows]
    assert lines[start + 3 + len(rows)].startswith("report: ")
    events = EventAccumulator(str(smoke_run / "trackers" / "eval" / "instructgpt-harness"), size_guidance={"tensors": 0})
    events.Reload()
    (event,) = events.Tensors("results/text_summary")
    assert len([ln for ln in event.tensor_proto.string_val[0].decode("utf-8").splitlines() if ln.startswith("|")]) == 2 + len(rows)


def test_every_artifact_exists(smoke_run):
    for stage in ("sft", "rm", "judge_helpful", "judge_harmless", "ppo", "ppo_ptx"):
        ck = smoke_run / "checkpoints" / stage
        assert (ck / "model.safetensors").is_file() and (ck / "config.json").is_file(), stage
        info = read_json(ck / "run.json")
        assert info["stage"] in (stage, "rm") and info["git_commit"] and info["data_fingerprints"], stage
    for policy in ("base", "sft", "ppo", "ppo_ptx"):
        assert len(read_jsonl(smoke_run / "generations" / policy / "alpaca_eval.jsonl")) == 8
    run = read_json(smoke_run / "run.json")
    assert set(run["metrics"]["timings_s"]) == {"base", "sft", "rm", "judge_helpful", "judge_harmless", "ppo", "ppo_ptx", "eval"}
    for name in ("winrate", "likert", "truthfulqa", "toxicity", "hallucination", "alignment_tax"):
        assert read_jsonl(smoke_run / "results" / f"{name}_items.jsonl"), name
    assert any(k.startswith("hh_rlhf/") for k in run["data_fingerprints"])
    assert (smoke_run / ".hydra" / "config.yaml").is_file()
    # the judges are the harness's default judges: trained into its cache, linked from the run
    for judge in ("judge_helpful", "judge_harmless"):
        ck = smoke_run / "checkpoints" / judge
        assert ck.is_symlink() and ck.resolve().parent == (smoke_run.parent / "cache" / "judges").resolve(), judge
        assert read_json(ck / "run.json")["config"]["split"] == judge


def test_losses_are_finite(smoke_run):
    for stage in ("sft", "rm", "judge_helpful", "judge_harmless"):
        m = read_json(smoke_run / "checkpoints" / stage / "run.json")["metrics"]
        assert math.isfinite(m["train_loss_first"]) and math.isfinite(m["train_loss_last"]), stage
    for stage in ("ppo", "ppo_ptx"):
        log = read_jsonl(smoke_run / "checkpoints" / stage / "train_log.jsonl")
        assert len(log) == 2
        for row in log:
            assert all(math.isfinite(row[k]) for k in ("reward_mean", "gold_reward_mean", "kl", "policy_loss", "value_loss"))
        assert (log[0]["ptx_loss"] is None) == (stage == "ppo")


def test_results_are_in_range(smoke_run):
    rows = read_jsonl(smoke_run / "results" / "results.jsonl")
    assert all(r["run_id"] != "paper" for r in rows)  # the paper's values have their own file
    assert read_jsonl(smoke_run / "results" / "paper_reference.jsonl")
    win = {r["policy"]: r for r in rows if r["metric"] == "win_rate" and r["slice"] == {"baseline": "text-davinci-003",
                                                                                        "judge": "helpful"}}
    assert set(win) == {"base", "sft", "ppo", "ppo_ptx"}
    for r in win.values():
        assert 0.0 <= r["ci_low"] <= r["value"] <= r["ci_high"] <= 1.0 and r["n"] == 8
    hella = {"task": "hellaswag_local", "shots": 0}
    acc = {r["policy"]: r for r in rows if r["eval"] == "alignment_tax" and r["metric"] == "acc" and r["slice"] == hella}
    assert set(acc) == {"base", "sft", "ppo", "ppo_ptx"} and all(0 <= r["value"] <= 1 for r in acc.values())
    deltas = {r["policy"]: r["value"] for r in rows if r["metric"] == "acc_delta" and r["slice"] == {**hella, "baseline": "base"}}
    assert set(deltas) == {"sft", "ppo", "ppo_ptx"}
    for p, d in deltas.items():
        assert d == pytest.approx(acc[p]["value"] - acc["base"]["value"])
    rm = {r["policy"]: r for r in rows if r["eval"] == "reward_model"}
    assert set(rm) == {"rm", "judge_helpful", "judge_harmless"} and all(0 <= r["value"] <= 1 for r in rm.values())
    # the tidy table beside it: one row per result, one column per slice key
    import pandas as pd

    csv = pd.read_csv(smoke_run / "results" / "results.csv")
    assert len(csv) == len(rows) and {"baseline", "judge", "instruction", "prompt_style", "task", "shots"} <= set(csv.columns)
    assert set(read_json(smoke_run / "results" / "metrics.json")) == {r["eval"] for r in rows}


# the rows whose bootstrap used a fixed 2,000 resamples before eval.bootstrap_resamples was honoured everywhere
RESAMPLED = {("reward_model", "pairwise_accuracy"), ("alignment_tax", "acc"), ("alignment_tax", "acc_delta"),
             ("truthfulqa", "mc1"), ("truthfulqa", "mc2"), ("truthfulqa", "mc1_delta"), ("truthfulqa", "mc2_delta")}


def _keyed(rows):
    return {(r.eval, r.policy, r.metric, slice_key(r.slice)): r for r in rows}


def _same(a, b, k, intervals: bool = True):
    assert a.n == b.n and a.value == pytest.approx(b.value, rel=1e-9, abs=1e-12), k
    if intervals:
        for x, y in ((a.ci_low, b.ci_low), (a.ci_high, b.ci_high)):
            assert (x is None) == (y is None) and (x is None or x == pytest.approx(y, rel=1e-9, abs=1e-12)), k


def test_every_number_equals_the_reference_run(smoke_run):
    """The smoke run's rows against the reference run's (tests/data/smoke_reference/results.jsonl): the same
    (eval, policy, metric, slice) keys, values, n and intervals (README there)."""
    before, after = _keyed(read_results(REFERENCE).rows), _keyed(read_results(smoke_run).rows)
    assert set(after) == set(before)
    for k, b in before.items():
        _same(after[k], b, k)


# Rows of the pre-slices reference that no run makes any more: the toxicity eval moved to RealToxicityPrompts
# prompts scored by perspective_tfidf_ridge (its rows, Likert's toxic flag and the Davidson ROC-AUC of
# profanity_check); every other row of that run must be unchanged.
RETIRED = {("toxicity", None), ("likert", "toxic"), ("judge_validation", "roc_auc")}


def test_rows_made_before_slices_are_unchanged(smoke_run):
    """The reference made before conditions moved into slices (older row shape, read through
    harness/results_upgrade.py): each of its rows that a run still makes has the same value and n today, and the
    same interval except where the number of bootstrap resamples changed (README there)."""
    before, after = _keyed(read_results(BEFORE_SLICES).rows), _keyed(read_results(smoke_run).rows)
    kept = {k: b for k, b in before.items() if (k[0], None) not in RETIRED and (k[0], k[2]) not in RETIRED}
    assert len(kept) == 186 and set(kept) <= set(after)
    for k, b in kept.items():
        _same(after[k], b, k, intervals=(k[0], k[2]) not in RESAMPLED)


def test_report_has_every_figure_and_escapes_model_text(smoke_run):
    html = (smoke_run / "report.html").read_text()
    for fig in FIGURES:
        assert f'id="{fig}"' in html, fig
    assert html.count("<script") == N_SCRIPTS
    # a completion that tries to run script must come out escaped when the report is rebuilt
    items_path = smoke_run / "results" / "winrate_items.jsonl"
    items = read_jsonl(items_path)
    items[0]["output"] = "</td><script>alert('x')</script><img src=x onerror=alert(1)>"
    write_jsonl(items_path, items)
    exe = Path(os.sys.executable).parent / "harness-report"
    subprocess.run([str(exe), f"run_dir={smoke_run}", f"hydra.run.dir={smoke_run / 'report_log'}"], check=True, cwd=REPO,
                   capture_output=True)
    html = (smoke_run / "report.html").read_text()
    assert html.count("<script") == N_SCRIPTS
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert not re.search(r"<img[^>]*onerror", html)
    assert json.dumps("alert('x')") not in html


def test_workflow_gate_and_report_steps_pass_on_a_fresh_smoke_run(smoke_run, tmp_path):
    """The regression gate and comparison report steps of .github/workflows/regress.yml, run as written
    (bash, from the repository root) on this fresh `pipeline=smoke` run against the committed baseline:
    what every pull request runs. The gate must pass (exit 0), append its summary to the step summary,
    and every file the workflow uploads must exist."""
    import yaml

    wf = yaml.safe_load((REPO / ".github" / "workflows" / "regress.yml").read_text())
    steps = {s.get("name"): s for s in wf["jobs"]["regress"]["steps"]}
    summary = tmp_path / "step_summary.md"
    # on the runner the installed console scripts are on PATH; here they are beside this interpreter
    path = f"{Path(os.sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "RUN_DIR": str(smoke_run), "GITHUB_STEP_SUMMARY": str(summary)}
    for name in ("Regression gate", "Comparison report (run vs baseline)"):
        proc = subprocess.run(["bash", "-e", "-c", steps[name]["run"]], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, (name, proc.stdout[-2000:], proc.stderr[-2000:])
    assert re.search(r"\b0 regressions, 0 errors\b", summary.read_text())
    run_prefix = wf["jobs"]["regress"]["env"]["RUN_DIR"].replace("${{ github.workspace }}/", "")
    for path in steps["Upload the gate's outputs and the reports"]["with"]["path"].split():
        assert (smoke_run / Path(path).relative_to(run_prefix)).is_file(), path


def test_a_baseline_snapshot_of_the_older_format_still_gates_the_run(smoke_run, tmp_path):
    """A version-1 snapshot (conditions in metric names; tests/data/baseline_v1_smoke.json, the committed CI
    baseline before slices) is read through the upgrade: every one of its metrics is found in the fresh run.
    Its 68 entries scored by profanity_check (the toxicity eval on Davidson / red-team prompts, the Likert toxic
    flag and the Davidson ROC-AUC) were dropped when the toxicity eval moved to RealToxicityPrompts and the
    perspective_tfidf_ridge scorer: no run makes those keys any more. Metrics the run adds since are "new"."""
    exe = Path(os.sys.executable).parent / "harness-regress"
    proc = subprocess.run([str(exe), f"run_dir={smoke_run}", f"baseline={REPO / 'tests' / 'data' / 'baseline_v1_smoke.json'}",
                           f"markdown={tmp_path / 's.md'}", f"junit={tmp_path / 'j.xml'}", "step_summary=false",
                           "allow_mismatch=[config_hash,data_fingerprints,eval_versions]"],  # a v1 snapshot records none of them
                          cwd=REPO, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = re.search(r"harness-regress: (\d+) metrics, 0 regressions, 0 errors, (\d+) new", proc.stdout)
    assert got and int(got[1]) - int(got[2]) == 186 and int(got[2]) > 0, proc.stdout[-2000:]  # all 186 found, the rest new
    assert proc.stderr.count("not recorded by the baseline, so it cannot be compared (allowed by allow_mismatch)") == 3


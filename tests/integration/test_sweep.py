"""`harness-pipeline experiment=ppo_beta_gamma --multirun` end to end: a 2 x 2 beta x gamma sweep on
model=tiny from one upstream run (plus a beta that fails every job it is in), then the sweep report."""

import os
import subprocess
from pathlib import Path

import pytest

from harness.io import read_json, read_jsonl
from reports.sweep_report import build_sweep_report
from tests.sweep_helpers import figure_data

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.sys.executable).parent
BETAS, BAD_BETA, GAMMAS = ("0.01", "0.05"), "-0.01", ("0", "1")
# smaller evals than the experiment's: this test checks the sweep's plumbing, not the numbers. The
# alignment-tax eval (lm-eval: ~8 s per policy and job on 2 busy cores) is left out to keep the test
# near 2.5 min; the report's alignment-tax and trade-off figures are tested in tests/unit/test_sweep_report.py
CHEAP_EVAL = ["data.n_eval_prompts=4", "eval.run=[winrate]", "eval.judges.validation.n_hh_pairs=2",
              "eval.judges.validation.n_gpt4_pairs=2"]


def _run(args, cwd_env, **kw):
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=REPO, capture_output=True, text=True, env=cwd_env, timeout=900, **kw)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, env):
    """The SFT model, RM and judges every sweep job reuses: a smoke run that trains no RL policy and runs no eval."""
    run_dir = tmp_path_factory.mktemp("upstream") / "run"
    proc = _run(["harness-pipeline", "pipeline=smoke", "rl_runs=[]", "eval.run=[]", f"hydra.run.dir={run_dir}"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, env, upstream):
    sweep_dir = tmp_path_factory.mktemp("sweep") / "multirun"
    before = sorted((p, p.stat().st_mtime_ns) for p in upstream.rglob("*"))
    proc = _run(["harness-pipeline", "pipeline=smoke", "experiment=ppo_beta_gamma", f"upstream={upstream}",
                 f"ppo.beta={BETAS[0]},{BAD_BETA},{BETAS[1]}", f"rl_runs.0.ptx_coef={','.join(GAMMAS)}", *CHEAP_EVAL,
                 f"hydra.sweep.dir={sweep_dir}", "--multirun"], env)
    # Hydra re-raises the first failed job's error after the whole batch ran: a user error, one line, exit 2
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1] == "harness-pipeline: error: ppo.beta=-0.01 is out of range: it must be >= 0"
    assert sorted((p, p.stat().st_mtime_ns) for p in upstream.rglob("*")) == before  # reused read-only
    assert build_sweep_report(sweep_dir) == sweep_dir / "sweep_report.html"  # harness-report sweep_dir=...: test_sweep_report.py
    return sweep_dir


def _jobs(sweep_dir):
    """job folder -> (beta, gamma) as written in its overrides."""
    out = {}
    for d in sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()):
        kv = dict(line.removeprefix("- ").split("=", 1) for line in (d / ".hydra" / "overrides.yaml").read_text().splitlines())
        out[d] = (kv["ppo.beta"], kv["rl_runs.0.ptx_coef"])
    return out


def test_good_jobs_finish_and_the_failing_ones_record_their_error(sweep, upstream):
    jobs = _jobs(sweep)
    assert sorted(jobs.values()) == sorted((b, g) for b in (*BETAS, BAD_BETA) for g in GAMMAS)
    for d, (beta, gamma) in jobs.items():
        if beta == BAD_BETA:
            err = read_json(d / "error.json")
            assert err["type"] == "harness.errors.ConfigError" and err["message"] == "ppo.beta=-0.01 is out of range: it must be >= 0"
            assert "Traceback" in err["traceback"] and not (d / "results").exists()
            continue
        assert not (d / "error.json").exists() and (d / "results" / "results.jsonl").is_file()
        run = read_json(d / "run.json")
        assert run["upstream"] == str(upstream) and run["rl_runs"] == [{"name": "ppo", "beta": float(beta), "ptx_coef": float(gamma),
                                                                        "ptx": float(gamma) > 0, "advantage_estimator": "gae",
                                                                        "samples_per_prompt": 1}]
        assert sorted(p.name for p in (d / "checkpoints").iterdir() if p.is_dir()) == ["ppo"]  # only the RL policy trained
        assert run["policies"]["sft"] == str(upstream / "checkpoints" / "sft")
        assert read_jsonl(d / "checkpoints" / "ppo" / "train_log.jsonl")[-1]["beta"] == float(beta)
    assert sum((d / "results" / "results.jsonl").is_file() for d in jobs) == 4


def test_report_heatmap_holds_each_jobs_win_rate_and_lists_the_failures(sweep):
    html = (sweep / "sweep_report.html").read_text()
    (hm,) = figure_data(html, "fig-winrate-ppo")
    assert hm["type"] == "heatmap" and hm["x"] == ["-0.01", "0.01", "0.05"] and hm["y"] == list(GAMMAS)
    jobs_table = html[html.index('<section id="jobs"'):html.index('<section id="failed"')]
    for d, (beta, gamma) in _jobs(sweep).items():
        status = "failed" if beta == BAD_BETA else "finished"
        assert f"<td>{d.name}</td><td>{beta}</td><td>{gamma}</td><td>{status}</td>" in jobs_table
        cell = hm["z"][hm["y"].index(gamma)][hm["x"].index(beta)]
        if beta == BAD_BETA:
            assert cell is None and hm["text"][hm["y"].index(gamma)][hm["x"].index(beta)] == "failed"
            continue
        (win,) = [r for r in read_jsonl(d / "results" / "results.jsonl") if r["policy"] == "ppo" and r["metric"] == "win_rate"
                  and r["slice"] == {"baseline": "text-davinci-003", "judge": "helpful"}]
        assert cell == win["value"]
    failed = html[html.index('<section id="failed"'):]
    assert failed.count("<td>failed</td><td>harness.errors.ConfigError</td>") == 2
    assert "ppo.beta=-0.01 is out of range: it must be &gt;= 0" in failed
    assert "4 finished, 2 failed, 0 incomplete" in html

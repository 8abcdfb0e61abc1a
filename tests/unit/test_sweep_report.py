"""The sweep report on hand-made Hydra multirun directories: parameter discovery, heatmap vs lines,
failed / incomplete / missing jobs, and bad input."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from reports.sweep_data import FAILED, FINISHED, INCOMPLETE, load_sweep, policy_metrics
from reports.sweep_report import build_sweep_report
from tests.sweep_helpers import figure_data, job_rows, row, write_job, write_multirun

GRID = {"ppo.beta": "0.01,0.05", "rl_runs.0.ptx_coef": "0,1"}
TASKS = ("hellaswag_local", "truthfulqa_mc2_local")
# (beta, gamma) -> win rate, its CI, and the per-task accuracy deltas vs base
CELLS = {
    ("0.01", "0"): (0.625, (0.5, 0.75), {"hellaswag_local": -0.02, "truthfulqa_mc2_local": 0.04}),
    ("0.05", "0"): (0.5, (0.25, 0.75), {"hellaswag_local": 0.0, "truthfulqa_mc2_local": -0.06}),
    ("0.01", "1"): (0.375, (0.125, 0.5), {"hellaswag_local": 0.1, "truthfulqa_mc2_local": 0.0}),
    ("0.05", "1"): (0.25, (0.0, 0.5), {"hellaswag_local": -0.1, "truthfulqa_mc2_local": -0.2}),
}
EVIL = "beta < 0 </td><script>alert(1)</script>"


def _grid_sweep(root, with_failures=True):
    write_multirun(root, GRID, ["pipeline=smoke", "experiment=ppo_beta_gamma", "upstream=/runs/up"] +
                   (["ppo.beta=0.01,0.05,-0.01"] if with_failures else []))
    for k, ((beta, gamma), (win, ci, deltas)) in enumerate(CELLS.items()):
        log = [{"step": 1, "kl": 0.0, "gold_reward_mean": 0.0}, {"step": 2, "kl": 0.1 * (k + 1), "gold_reward_mean": -k}]
        write_job(root, str(k), [f"ppo.beta={beta}", f"rl_runs.0.ptx_coef={gamma}", "pipeline=smoke", "upstream=/runs/up"],
                  rows=job_rows(win, ci, deltas), train_log=log)
    if with_failures:
        write_job(root, "4", ["ppo.beta=-0.01", "rl_runs.0.ptx_coef=0", "pipeline=smoke", "upstream=/runs/up"],
                  error={"type": "ValueError", "message": EVIL, "traceback": "Traceback ...\nValueError: " + EVIL})
        write_job(root, "5", ["ppo.beta=-0.01", "rl_runs.0.ptx_coef=1", "pipeline=smoke", "upstream=/runs/up"])  # neither results nor error.json
    return root


def test_swept_parameters_and_job_status_come_from_the_multirun_dir(tmp_path):
    sweep = load_sweep(_grid_sweep(tmp_path / "sw"))
    assert sweep.params == ["ppo.beta", "rl_runs.0.ptx_coef"] and sweep.upstream == "/runs/up"
    assert [(j.name, j.status) for j in sweep.jobs] == [("0", FINISHED), ("1", FINISHED), ("2", FINISHED), ("3", FINISHED),
                                                       ("4", FAILED), ("5", INCOMPLETE)]
    assert sweep.jobs[0].values["ppo.beta"] == 0.01 and sweep.jobs[0].values["rl_runs.0.ptx_coef"] == 0
    assert sweep.missing == []  # the command line replaced the beta row: 3 x 2 points, 6 job folders
    assert all(r["run_id"] != "paper" for r in sweep.jobs[0].rows)


def test_policy_metrics_pick_the_helpful_judge_the_davinci_baseline_and_zero_shot_deltas():
    m = policy_metrics(job_rows(0.625, (0.5, 0.75), {"a": -0.02, "b": 0.04}), "ppo",
                       {"ppo": [{"step": 1, "kl": 9.0}, {"step": 2, "kl": 0.25, "gold_reward_mean": 1.5}]})
    assert (m["win_rate"], m["win_rate_ci_low"], m["win_rate_ci_high"], m["win_rate_n"]) == (0.625, 0.5, 0.75, 8)
    assert m["delta:a"] == -0.02 and m["delta:b"] == 0.04 and "delta:truthfulqa" not in m
    assert m["tax_mean_delta"] == pytest.approx(0.01)  # (-0.02 + 0.04) / 2
    assert (m["kl_final"], m["gold_reward_final"]) == (0.25, 1.5)
    base = policy_metrics(job_rows(0.5, (0.4, 0.6), {"a": 0.1}), "base")
    assert base["tax_mean_delta"] == 0.0 and base["win_rate"] == 0.2 and base["kl_final"] is None


def test_two_parameters_give_heatmaps_with_every_job_in_its_cell(tmp_path):
    html = build_sweep_report(_grid_sweep(tmp_path / "sw")).read_text()
    assert (tmp_path / "sw" / "sweep_report.html").is_file()
    (hm,) = figure_data(html, "fig-winrate-ppo")
    assert hm["type"] == "heatmap" and hm["x"] == ["-0.01", "0.01", "0.05"] and hm["y"] == ["0", "1"]
    for (beta, gamma), (win, ci, _) in CELLS.items():
        i, j = hm["x"].index(beta), hm["y"].index(gamma)
        assert hm["z"][j][i] == win
        assert hm["customdata"][j][i] == f"{win:.1%} [{ci[0]:.1%}, {ci[1]:.1%}] (n=8)"
    assert hm["z"][0][0] is None and hm["text"][0][0] == "failed" and hm["text"][1][0] == "incomplete"
    for task in TASKS:
        (tax,) = figure_data(html, f"fig-tax-{task.replace('_', '-')}-ppo")
        for (beta, gamma), (_, _, deltas) in CELLS.items():
            assert tax["z"][tax["y"].index(gamma)][tax["x"].index(beta)] == pytest.approx(deltas[task] * 100)  # in pp
    (kl,) = figure_data(html, "fig-kl-ppo")
    assert [kl["z"][kl["y"].index(g)][kl["x"].index(b)] for b, g in CELLS] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    # the trade-off: one trace per gamma, x = mean delta over the two tasks (pp), y = win rate, labelled points
    traces = figure_data(html, "fig-tradeoff-ppo")
    points = {t: (x, y) for tr in traces if tr["name"] != "references" for t, x, y in zip(tr["text"], tr["x"], tr["y"])}
    for (beta, gamma), (win, _, deltas) in CELLS.items():
        x, y = points[f"β={beta}, γ={gamma}"]
        assert y == win and x == pytest.approx(sum(deltas.values()) / 2 * 100)
    refs = next(tr for tr in traces if tr["name"] == "references")
    assert dict(zip(refs["text"], zip(refs["x"], refs["y"]))) == {"base": (0.0, 0.2), "sft": (pytest.approx(1.0), 0.3)}


def test_failed_and_incomplete_jobs_are_listed_with_their_error_escaped(tmp_path):
    html = build_sweep_report(_grid_sweep(tmp_path / "sw")).read_text()
    failed = html[html.index('<section id="failed"'):]
    assert re.search(r"<td>4</td><td>-0.01</td><td>0</td><td>failed</td><td>ValueError</td>", failed)
    assert "beta &lt; 0 &lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in failed
    assert re.search(r"<td>5</td><td>-0.01</td><td>1</td><td>incomplete</td><td>no results and no error.json", failed)
    assert html.count("<script") == 1 + html.count("Plotly.newPlot(")  # plotly.js once + one per figure, nothing injected
    assert "4 finished, 1 failed, 1 incomplete" in html


def test_missing_grid_points_are_listed(tmp_path):
    root = _grid_sweep(tmp_path / "sw", with_failures=False)
    (root / "3" / ".hydra" / "overrides.yaml").unlink()  # job 3 never started: no job folder Hydra recognises
    sweep = load_sweep(root)
    assert sweep.missing == [{"ppo.beta": "0.05", "rl_runs.0.ptx_coef": "1"}]
    html = build_sweep_report(root, tmp_path / "out.html").read_text()
    assert "Grid points with no job folder" in html and "1 grid point(s) without a job folder" in html


def test_one_parameter_gives_lines_with_ci_error_bars(tmp_path):
    root = write_multirun(tmp_path / "sw", {"ppo.beta": "0.05,0.01,0.02"}, ["rl_runs.0.ptx_coef=1.0"])
    wins = {"0.05": 0.25, "0.01": 0.75, "0.02": 0.5}
    for k, (beta, win) in enumerate(wins.items()):
        write_job(root, str(k), [f"ppo.beta={beta}", "rl_runs.0.ptx_coef=1.0"], rows=job_rows(win, (win - 0.125, win + 0.25), {"t": 0.0}))
    sweep = load_sweep(root)
    assert sweep.params == ["ppo.beta"]  # gamma is the same in every job
    (line,) = figure_data(build_sweep_report(root).read_text(), "fig-winrate-ppo")
    assert line["type"] == "scatter" and line["x"] == [0.01, 0.02, 0.05] and line["y"] == [0.75, 0.5, 0.25]
    assert line["error_y"]["array"] == pytest.approx([0.25] * 3) and line["error_y"]["arrayminus"] == pytest.approx([0.125] * 3)


def test_parameters_that_differ_between_jobs_are_found_without_a_grid(tmp_path):
    root = write_multirun(tmp_path / "sw", {}, ["pipeline=smoke"])
    for k, seed in enumerate((3, 1)):
        write_job(root, str(k), ["pipeline=smoke", f"seed={seed}"], rows=job_rows(0.5, (0.4, 0.6), {"t": 0.0}))
    sweep = load_sweep(root)
    assert sweep.params == ["seed"] and sweep.missing == []
    (line,) = figure_data(build_sweep_report(root).read_text(), "fig-winrate-ppo")
    assert line["x"] == [1, 3]


@pytest.mark.parametrize("damage,match", [
    (lambda r: (r / "multirun.yaml").unlink(), r"no multirun.yaml, so not a Hydra multirun directory"),
    (lambda r: (r / "0" / ".hydra" / "overrides.yaml").write_text("ppo.beta: 0.01\n"), r"0/.hydra/overrides.yaml: expected a YAML list"),
    (lambda r: (r / "0" / ".hydra" / "overrides.yaml").write_text("- ppo.beta=[0.01\n"), r"0/.hydra/overrides.yaml: cannot parse"),
    (lambda r: (r / "1" / "results" / "results.jsonl").write_text('{"run_id": "r"}\n{oops\n'), r"1/results/results.jsonl:2: invalid JSON"),
    (lambda r: (r / "1" / "results" / "results.jsonl").write_text(
        '{"run_id": "r", "policy": "ppo", "eval": "winrate", "metric": "win_rate", "value": "high", "slice": {}}\n'),
     r"1/results/results.jsonl: record 1: bad value for field\(s\) value"),
    (lambda r: (r / "4" / "error.json").write_text('{"type": "ValueError"}'), r"4/error.json: field 'message' must be a string"),
    (lambda r: (r / "2" / "checkpoints" / "ppo" / "train_log.jsonl").write_text('{"kl": 1}\n'),
     r"2/checkpoints/ppo/train_log.jsonl: record 1: field 'step'"),
])
def test_bad_input_raises_value_error_naming_the_file(tmp_path, damage, match):
    root = _grid_sweep(tmp_path / "sw")
    damage(root)
    with pytest.raises(ValueError, match=match):
        build_sweep_report(root)
    assert not (root / "sweep_report.html").exists()


def test_results_rows_of_other_runs_or_judges_never_become_the_win_rate():
    rows = [row("ppo", "winrate", "win_rate", 0.9, baseline="text-davinci-003", judge="harmless")]
    assert policy_metrics(rows, "ppo")["win_rate"] is None


def test_harness_report_sweep_dir_writes_the_report(tmp_path):
    """Through the installed console script in a subprocess: in process, Hydra's job logging binds handlers to
    pytest's captured streams, which pytest closes after the test, and a later test then fails on a closed file."""
    root = _grid_sweep(tmp_path / "sw")
    exe = Path(sys.executable).parent / "harness-report"
    proc = subprocess.run([str(exe), f"sweep_dir={root}", f"out={tmp_path / 'r.html'}", f"hydra.run.dir={tmp_path / 'log'}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str(tmp_path / "r.html")
    assert "fig-winrate-ppo" in (tmp_path / "r.html").read_text()

"""The sweep report's "Over seeds" section: a seed sweep's win rates summarised per point of the other parameters,
checked against hand computations; failed seeds and seeds without an interval are named, not counted."""

import math

import pytest

from reports.sweep_data import FINISHED, load_sweep, policy_metrics, seed_summaries, sweep_frame
from reports.sweep_report import build_sweep_report
from tests.sweep_helpers import figure_data, row, write_job, write_multirun

# (beta, seed) -> PPO's win rate vs SFT by the helpful judge and its 95 % interval
VS_SFT = {
    ("0.01", "0"): (0.56, (0.53, 0.59)),
    ("0.01", "1"): (0.52, (0.49, 0.55)),
    ("0.01", "2"): (0.60, (0.55, 0.65)),
    ("0.05", "0"): (0.48, (0.45, 0.51)),
    ("0.05", "1"): (0.50, (0.46, 0.54)),
}


def _rows(win: float, ci: tuple[float, float]) -> list[dict]:
    return [row("ppo", "winrate", "win_rate", win, ci, n=96, baseline="sft", judge="helpful"),
            row("ppo", "winrate", "lc_win_rate", win - 0.01, (ci[0] - 0.01, ci[1] - 0.01), n=96, baseline="sft", judge="helpful"),
            row("ppo", "winrate", "win_rate", 0.99, (0.98, 1.0), baseline="sft", judge="harmless"),  # another judge: never b
            row("ppo", "winrate", "win_rate", 0.2, (0.1, 0.3), baseline="text-davinci-003", judge="helpful"),
            row("sft", "winrate", "win_rate", 0.3, (0.2, 0.4), baseline="text-davinci-003", judge="helpful")]


def _seed_sweep(root):
    write_multirun(root, {"ppo.beta": "0.01,0.05", "seed": "0,1,2"}, ["pipeline=demo", "upstream=/runs/up"])
    k = 0
    for (beta, seed), (win, ci) in VS_SFT.items():
        write_job(root, str(k), [f"ppo.beta={beta}", f"seed={seed}"], rows=_rows(win, ci),
                  train_log=[{"step": 1, "kl": 0.5 + k}])
        k += 1
    write_job(root, str(k), ["ppo.beta=0.05", "seed=2"], error={"type": "RuntimeError", "message": "boom", "traceback": ""})
    return root


def test_policy_metrics_read_the_win_rate_vs_sft_by_the_helpful_judge():
    m = policy_metrics(_rows(0.56, (0.53, 0.59)), "ppo")
    assert (m["win_rate_vs_sft"], m["win_rate_vs_sft_ci_low"], m["win_rate_vs_sft_ci_high"], m["win_rate_vs_sft_n"]) == (0.56, 0.53, 0.59, 96)
    assert (m["lc_win_rate_vs_sft"], m["lc_win_rate_vs_sft_ci_low"]) == (pytest.approx(0.55), pytest.approx(0.52))
    assert m["win_rate"] == 0.2  # vs text-davinci-003, unchanged


def test_seed_summaries_by_hand(tmp_path):
    sweep = load_sweep(_seed_sweep(tmp_path / "sw"))
    assert sweep.params == ["ppo.beta", "seed"]
    summaries = {(s.metric, s.point["ppo.beta"]): s for s in seed_summaries(sweep, sweep_frame(sweep))}
    a = summaries[("win_rate_vs_sft", 0.01)]
    assert a.seeds == [0, 1, 2] and a.values == [0.56, 0.52, 0.60] and a.resolved == 2  # 0.53 and 0.55 lower ends
    sd = math.sqrt((0.0 + 0.04**2 + 0.04**2) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)
    assert (a.spread.mean, a.spread.t_low, a.spread.t_high) == pytest.approx((0.56, 0.56 - half, 0.56 + half))
    ses = [0.03 / 1.959964, 0.03 / 1.959964, 0.05 / 1.959964]
    assert a.spread.eval_se == pytest.approx(math.sqrt(sum(x * x for x in ses) / 3))
    assert a.spread.between_sd == pytest.approx(math.sqrt(sd**2 - a.spread.eval_se**2))
    assert a.verdict().startswith("not resolved over 3 seeds: mean 0.560") and "2 of 3 seeds resolved on their own" in a.verdict()
    b = summaries[("win_rate_vs_sft", 0.05)]  # the failed seed 2 is not a seed of the summary
    assert b.seeds == [0, 1] and b.resolved == 0 and b.spread.n == 2 and b.spread.mean == pytest.approx(0.49)
    assert summaries[("win_rate", 0.01)].values == [0.2, 0.2, 0.2]
    lc = summaries[("lc_win_rate_vs_sft", 0.01)]  # the length-controlled win rate beside it, each seed 0.01 lower
    assert lc.values == pytest.approx([0.55, 0.51, 0.59]) and lc.spread.mean == pytest.approx(0.55) and lc.resolved == 2


def test_a_summary_above_chance_and_a_seed_without_an_interval(tmp_path):
    root = write_multirun(tmp_path / "sw", {"seed": "0,1,2,3"}, [])
    for k, (win, ci) in enumerate([(0.55, (0.53, 0.57)), (0.56, (0.54, 0.58)), (0.57, (0.55, 0.59)), (0.57, None)]):
        write_job(root, str(k), [f"seed={k}"], rows=[row("ppo", "winrate", "win_rate", win, ci, baseline="sft", judge="helpful")])
    sweep = load_sweep(root)
    (s,) = [s for s in seed_summaries(sweep, sweep_frame(sweep)) if s.metric == "win_rate_vs_sft"]
    assert s.seeds == [0, 1, 2] and s.no_interval == [3]
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # SD 0.01 over 3 seeds
    assert (s.spread.t_low, s.spread.t_high) == pytest.approx((0.56 - half, 0.56 + half))
    assert s.verdict().startswith(f"above 0.5 over 3 seeds: t interval [{0.56 - half:.3f}, {0.56 + half:.3f}]")
    assert "left out, no interval: seed 3" in s.verdict()
    # two seeds that each resolve alone need not resolve together: t with 1 degree of freedom is wide
    (two,) = [t for t in seed_summaries(sweep, sweep_frame(sweep)[lambda d: d["seed"] < 2]) if t.metric == "win_rate_vs_sft"]
    assert two.resolved == 2 and two.verdict().startswith("not resolved over 2 seeds")


def test_the_report_draws_each_seed_and_the_mean_with_its_t_interval(tmp_path):
    root = _seed_sweep(tmp_path / "sw")
    html = build_sweep_report(root).read_text()
    assert '<section id="seeds"' in html and "Over seeds" in html
    sweep = load_sweep(root)
    summaries = seed_summaries(sweep, sweep_frame(sweep))
    k = next(i for i, s in enumerate(summaries) if s.metric == "win_rate_vs_sft" and s.point["ppo.beta"] == 0.01)
    each, mean = figure_data(html, f"fig-seeds-{k}")
    assert each["x"] == ["seed 0", "seed 1", "seed 2"] and each["y"] == pytest.approx([56.0, 52.0, 60.0])
    assert each["error_y"]["array"] == pytest.approx([3.0, 3.0, 5.0]) and each["error_y"]["arrayminus"] == pytest.approx([3.0, 3.0, 5.0])
    s = summaries[k].spread
    assert mean["y"] == pytest.approx([56.0]) and mean["error_y"]["array"] == pytest.approx([(s.t_high - 0.56) * 100])
    seeds_section = html[html.index('<section id="seeds"'):html.index('<section id="jobs"')]
    assert "2 of 3" in seeds_section and "ppo.beta=0.01" in seeds_section.replace("β", "ppo.beta")


def test_no_seeds_section_when_seed_is_not_swept(tmp_path):
    root = write_multirun(tmp_path / "sw", {"ppo.beta": "0.01,0.05"}, [])
    for k, beta in enumerate(("0.01", "0.05")):
        write_job(root, str(k), [f"ppo.beta={beta}"], rows=_rows(0.5, (0.4, 0.6)))
    sweep = load_sweep(root)
    assert all(j.status == FINISHED for j in sweep.jobs) and seed_summaries(sweep, sweep_frame(sweep)) == []
    assert '<section id="seeds"' not in build_sweep_report(root).read_text()

"""Raw and length-controlled win rate: ties, bootstrap width on a known case, removal of a pure length effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm

from harness.evals.length_controlled import (
    lc_design,
    lc_win_rate_estimate,
    length_controlled_win_rate,
)
from harness.evals.winrate import preference_items, winrate_items, winrate_rows
from harness.records import Generation


def item(i, win, len_out, len_base):
    return {"policy": "p", "baseline": "b", "prompt_id": str(i), "output": "x" * int(len_out),
            "baseline_output": "y" * int(len_base), "win": float(win), "win_prob": None}


def synthetic(n, length_coef, quality, seed, mean_dlen=150.0, sd_dlen=250.0):
    """Bernoulli preferences with logit = quality + length_coef * tanh(d / sd(d)), d = policy - baseline length."""
    rng = np.random.default_rng(seed)
    base = rng.integers(300, 900, size=n)
    pol = np.maximum(1, base + rng.normal(mean_dlen, sd_dlen, size=n)).astype(int)
    d = pol - base
    p = 1.0 / (1.0 + np.exp(-(quality + length_coef * np.tanh(d / d.std(ddof=1)))))
    wins = (rng.random(n) < p).astype(float)
    return [item(i, w, lo, lb) for i, (w, lo, lb) in enumerate(zip(wins, pol, base))]


def raw(items):
    return float(np.mean([it["win"] for it in items]))


def test_pure_length_effect_exact_fractional_response():
    # preference exactly sigmoid(3 * tanh(d / sd)): the GLM recovers b0 = 0, so the LC win rate is 1/2
    d = np.array([-300, -120, -40, 0, 60, 150, 200, 260, 330, 400, 520, 610], dtype=float)
    p = 1.0 / (1.0 + np.exp(-3.0 * np.tanh(d / d.std(ddof=1))))
    items = [item(i, w, 1000 + di, 1000) for i, (w, di) in enumerate(zip(p, d))]
    assert raw(items) > 0.65
    assert length_controlled_win_rate(items) == pytest.approx(0.5, abs=1e-6)


def test_pure_length_effect_sampled():
    items = synthetic(2000, length_coef=3.0, quality=0.0, seed=0)
    assert raw(items) > 0.65  # the longer policy "wins" by length alone
    # tolerance 0.05: about 2.5 standard errors of the LC estimate at n = 2000 (spread over 20 seeds: +-0.05 at n=1000)
    assert length_controlled_win_rate(items) == pytest.approx(0.5, abs=0.05)


def test_quality_without_length_effect_keeps_raw():
    items = synthetic(2000, length_coef=0.0, quality=1.0, seed=1)
    assert raw(items) == pytest.approx(1 / (1 + math.exp(-1)), abs=0.03)
    assert length_controlled_win_rate(items) == pytest.approx(raw(items), abs=0.02)


def test_ties_count_half():
    # no length differences: the length column is 0 and the LC win rate is the mean preference
    items = [item(i, w, 50, 50) for i, w in enumerate([1, 0.5, 0, 1])]
    assert length_controlled_win_rate(items) == pytest.approx(0.625, abs=1e-9)
    assert length_controlled_win_rate([item(i, 0.5, 10 + i, 20) for i in range(5)]) == 0.5
    rows = {r.metric: r for r in winrate_rows(items, n_resamples=200)}
    assert rows["win_rate"].value == pytest.approx(0.625)
    assert "win_prob" not in rows  # preference judges have no Bradley-Terry probability


def test_tie_as_fractional_response_equals_duplicated_weighted_rows():
    # AlpacaEval's fit duplicates each row as y=1 (weight p) and y=0 (weight 1-p); same MLE as ours
    rng = np.random.default_rng(4)
    items = [item(i, w, rng.integers(50, 500), rng.integers(50, 500))
             for i, w in enumerate(rng.choice([0.0, 0.5, 1.0], size=60, p=[0.3, 0.2, 0.5]))]
    y, X = lc_design(items)
    dup = sm.GLM(np.r_[np.ones_like(y), np.zeros_like(y)], np.r_[X, X], family=sm.families.Binomial(),
                 freq_weights=np.r_[y, 1 - y]).fit()
    assert length_controlled_win_rate(items) == pytest.approx(1 / (1 + math.exp(-dup.params[0])), abs=1e-8)


def test_winrate_rows_with_ties_from_rewards():
    gens = [Generation("pol", str(i), f"q{i}", "o" * (i + 1)) for i in range(4)]
    base = [Generation("gpt3", str(i), f"q{i}", "b" * 3) for i in range(4)]
    items = winrate_items([gens], [base], [[1.0, 0.5, 0.0, 2.0]], [[0.0, 0.5, 1.0, 1.9]], "rm", tie_margin=0.2)
    assert [it["win"] for it in items] == [1.0, 0.5, 0.0, 0.5]
    assert "pair_wins" not in items[0] and "outputs" not in items[0]  # one sample a side: the record it always had
    rows = {r.metric: r for r in winrate_rows(items, n_resamples=300)}
    assert list(rows) == ["win_rate", "win_prob", "lc_win_rate"]
    assert rows["win_rate"].value == pytest.approx(0.5) and rows["win_rate"].n == 4
    assert all(r.policy == "pol" and r.slice == {"baseline": "gpt3", "judge": "rm"} and r.eval == "winrate" for r in rows.values())
    assert rows["lc_win_rate"].ci_low <= rows["lc_win_rate"].value <= rows["lc_win_rate"].ci_high


def test_bootstrap_width_known_bernoulli_case():
    # n = 400, exactly 200 wins, lengths independent of wins: width ~ 2 * 1.96 * sqrt(0.25 / 400) = 0.098
    rng = np.random.default_rng(7)
    wins = rng.permutation(np.r_[np.ones(200), np.zeros(200)])
    items = [item(i, w, rng.integers(100, 600), rng.integers(100, 600)) for i, w in enumerate(wins)]
    rows = {r.metric: r for r in winrate_rows(items, n_resamples=1000, seed=0)}
    expected = 2 * 1.96 * math.sqrt(0.25 / 400)
    for metric in ("win_rate", "lc_win_rate"):
        r = rows[metric]
        assert r.value == pytest.approx(0.5, abs=0.02)
        assert r.ci_high - r.ci_low == pytest.approx(expected, rel=0.15), metric


def test_degenerate_resamples_and_separation_stay_finite():
    # 2 wins, 1 loss: many resamples are all-win or all-loss
    est = lc_win_rate_estimate([item(0, 1, 10, 5), item(1, 1, 7, 9), item(2, 0, 3, 8)], n_resamples=200, seed=1)
    assert all(math.isfinite(v) for v in (est.value, est.ci_low, est.ci_high)) and est.n == 3
    # every longer output wins, every shorter one loses: no MLE; the ridge fallback keeps b0 near 0
    items = [item(i, d > 0, 200 + d, 200) for i, d in enumerate(range(-50, 51, 5)) if d != 0]
    assert length_controlled_win_rate(items) == pytest.approx(0.5, abs=0.05)
    assert lc_win_rate_estimate([item(0, 1, 5, 4), item(1, 1, 3, 9)], n_resamples=50).ci_low == 1.0
    one = lc_win_rate_estimate([item(0, 1, 5, 4)], n_resamples=50)
    assert one.value == 1.0 and math.isnan(one.ci_low)


def test_instruction_difficulty_term_when_supplied():
    rng = np.random.default_rng(5)
    items = synthetic(1500, length_coef=0.0, quality=0.0, seed=2)
    for it in items:
        it["gamma"] = float(rng.normal())
    lc = length_controlled_win_rate(items, difficulty_key="gamma")
    assert lc == pytest.approx(raw(items), abs=0.03)  # difficulty unrelated to wins: no change
    del items[3]["gamma"]
    with pytest.raises(ValueError, match="prompt_id=3 has no field 'gamma'"):
        length_controlled_win_rate(items, difficulty_key="gamma")


def test_token_length_fn_and_bad_items():
    items = [item(i, w, 10, 10) for i, w in enumerate([1, 0, 1])]
    items[0]["output"] = "one two three four five six seven"  # longer in words only matters through length_fn
    assert lc_design(items, length_fn=lambda s: len(s.split()))[1][0, 1] > 0
    with pytest.raises(ValueError, match="no items"):
        length_controlled_win_rate([])
    with pytest.raises(ValueError, match="prompt_id=1 field 'win' = 2.0 is outside"):
        length_controlled_win_rate([item(0, 1, 3, 4), item(1, 2, 3, 4)])
    gens = [Generation("p", "0", "q", "o")]
    with pytest.raises(ValueError, match="prompt_id=0 preference 0.7"):
        preference_items([gens], [gens], [0.7], "chat")
    assert preference_items([gens], [gens], [0.5], "chat")[0]["win"] == 0.5


@pytest.mark.parametrize("separated", [False, True])
def test_batched_bootstrap_equals_one_statsmodels_fit_per_resample(separated):
    """The vectorised bootstrap (all resamples fitted at once, separated ones refitted the slow way) gives the
    interval of scipy's bootstrap over one statsmodels fit per resample: same indices, same fits."""
    from scipy import stats

    rng = np.random.default_rng(3)
    items = []
    for i in range(25):
        a, b = int(rng.integers(1, 200)), int(rng.integers(1, 200))
        win = float(a > b) if separated else float(rng.choice([0.0, 0.5, 1.0], p=[0.4, 0.1, 0.5]))
        items.append(item(i, win, a, b))
    fast = lc_win_rate_estimate(items, n_resamples=300, seed=7)
    slow = stats.bootstrap((np.arange(len(items)),), lambda idx: length_controlled_win_rate([items[int(i)] for i in idx]),
                           confidence_level=0.95, n_resamples=300, method="percentile", vectorized=False,
                           rng=np.random.default_rng(7))
    assert fast.value == pytest.approx(length_controlled_win_rate(items), abs=1e-12)
    assert fast.ci_low == pytest.approx(slow.confidence_interval.low, abs=1e-6)
    assert fast.ci_high == pytest.approx(slow.confidence_interval.high, abs=1e-6)
    assert fast.ci_low < fast.ci_high


def test_separated_data_get_the_ridge_fit_of_statsmodels_fit_regularized():
    """No MLE (every longer output wins): the batched fit gives the ridge fit, statsmodels'
    fit_regularized(alpha=[0, LC_RIDGE], L1_wt=0) minimiser, to 1e-5 (statsmodels' own solver tolerance), and the
    point estimate agrees with it. (A tie would make the MLE exist: it is then the unpenalised fit, tested above.)"""
    import warnings

    from scipy.special import expit

    from harness.evals.length_controlled import LC_RIDGE, _lc_newton

    rng = np.random.default_rng(0)
    for _ in range(4):
        d = rng.integers(-300, 300, size=20).astype(float)  # length differences in characters
        t = np.tanh(d / d.std(ddof=1))
        y = (d > 0).astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.GLM(y, np.column_stack([np.ones(20), t]), family=sm.families.Binomial()).fit_regularized(
                alpha=np.array([0.0, LC_RIDGE]), L1_wt=0.0)
        got = _lc_newton(y[None, :], t[None, :])[0]
        assert got == pytest.approx(expit(fit.params[0]), abs=1e-5)
        items = [item(i, w, 500 + di, 500) for i, (w, di) in enumerate(zip(y, d))]
        assert length_controlled_win_rate(items) == pytest.approx(got, abs=1e-12)


def test_winrate_items_several_samples_by_hand():
    # prompt 0: policy rewards [1, 3] vs baseline [2, 0] -> pairs (1<2, 1>0, 3>2, 3>0) = [0, 1, 1, 1], win 0.75
    # prompt 1: [0, 0] vs [0, 1] -> (tie, 0<1, tie, 0<1) = [0.5, 0, 0.5, 0], win 0.25
    pol = [[Generation("pol", str(i), f"q{i}", f"p{s}{i}") for i in range(2)] for s in range(2)]
    base = [[Generation("sft", str(i), f"q{i}", f"b{s}{i}" * 3) for i in range(2)] for s in range(2)]
    items = winrate_items(pol, base, [[1.0, 0.0], [3.0, 0.0]], [[2.0, 0.0], [0.0, 1.0]], "rm")
    assert [it["pair_wins"] for it in items] == [[0.0, 1.0, 1.0, 1.0], [0.5, 0.0, 0.5, 0.0]]
    assert [it["win"] for it in items] == [0.75, 0.25]
    assert items[0]["reward"] == 2.0 and items[0]["baseline_reward"] == 1.0 and items[1]["baseline_reward"] == 0.5
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert items[0]["win_prob"] == pytest.approx((sig(-1) + sig(1) + sig(1) + sig(3)) / 4)
    assert items[0]["outputs"] == ["p00", "p10"] and items[0]["baseline_outputs"] == ["b00" * 3, "b10" * 3]
    assert items[0]["output"] == "p00" and items[0]["baseline_output"] == "b00" * 3  # sample 0 shown
    # a one-sample baseline (a file's): m x 1 pairs
    one = winrate_items(pol, base[:1], [[1.0, 0.0], [3.0, 0.0]], [[2.0, 0.0]], "rm")
    assert [it["pair_wins"] for it in one] == [[0.0, 1.0], [0.5, 0.5]]
    with pytest.raises(ValueError, match="shape"):
        winrate_items(pol, base, [[1.0, 0.0]], [[2.0, 0.0], [0.0, 1.0]], "rm")
    with pytest.raises(ValueError, match="different prompts"):
        winrate_items(pol, [base[0][::-1]], [[1.0, 0.0], [3.0, 0.0]], [[2.0, 0.0]], "rm")


def test_preference_items_several_samples():
    pol = [[Generation("pol", str(i), f"q{i}", f"p{s}{i}") for i in range(2)] for s in range(2)]
    base = [[Generation("sft", str(i), f"q{i}", f"b{i}") for i in range(2)]]
    items = preference_items(pol, base, [1.0, 0.5, 0.0, 0.0], "chat")  # prompt-major: (0, s0), (0, s1), (1, s0), (1, s1)
    assert [it["win"] for it in items] == [0.75, 0.0] and items[0]["pair_wins"] == [1.0, 0.5]
    assert items[1]["outputs"] == ["p01", "p11"] and items[1]["win_prob"] is None
    with pytest.raises(ValueError, match="prompt_id=1 preference 'A' is not 0, 0.5 or 1"):
        preference_items(pol, base, [1.0, 0.5, "A", 0.0], "chat")
    with pytest.raises(ValueError, match="2 preferences for 2 prompts x 2 x 1 samples"):
        preference_items(pol, base, [1.0, 0.5], "chat")


def _pair_items(rng, n, m):
    """``n`` prompts of ``m x m`` pairs with random lengths and length-dependent wins."""
    items = []
    for i in range(n):
        outs = ["x" * int(rng.integers(5, 60)) for _ in range(m)]
        bouts = ["y" * int(rng.integers(5, 60)) for _ in range(m)]
        wins = [float(rng.random() < (0.7 if len(o) > len(b) else 0.4)) for o in outs for b in bouts]
        items.append({"prompt_id": str(i), "win": sum(wins) / len(wins), "output": outs[0], "baseline_output": bouts[0],
                      "outputs": outs, "baseline_outputs": bouts, "pair_wins": wins})
    return items


def test_lc_with_several_samples_fits_every_pair():
    items = _pair_items(np.random.default_rng(3), 30, 3)
    flat = [{"prompt_id": f"{it['prompt_id']}/{k}", "win": w, "output": it["outputs"][k // 3],
             "baseline_output": it["baseline_outputs"][k % 3]} for it in items for k, w in enumerate(it["pair_wins"])]
    # the point estimate is the GLM over every sample pair
    assert length_controlled_win_rate(items) == pytest.approx(length_controlled_win_rate(flat), abs=1e-12)
    y, X = lc_design(items)
    assert len(y) == 270 and y.tolist() == [w for it in items for w in it["pair_wins"]]


def test_lc_interval_resamples_prompts_not_pairs():
    # every prompt's 4 pairs are copies of one comparison: resampling prompts gives about the one-pair interval,
    # resampling the 120 pairs as if independent would halve it
    rng = np.random.default_rng(5)
    single = []
    for i in range(120):
        o, b = "x" * int(rng.integers(5, 60)), "y" * int(rng.integers(5, 60))
        single.append({"prompt_id": str(i), "win": float(rng.random() < (0.7 if len(o) > len(b) else 0.4)), "output": o,
                       "baseline_output": b})
    copies = [{**it, "outputs": [it["output"]] * 2, "baseline_outputs": [it["baseline_output"]] * 2,
               "pair_wins": [it["win"]] * 4} for it in single]
    one, four = lc_win_rate_estimate(single, n_resamples=1000), lc_win_rate_estimate(copies, n_resamples=1000)
    assert four.value == pytest.approx(one.value, abs=0.01) and four.n == 120
    assert (four.ci_high - four.ci_low) == pytest.approx(one.ci_high - one.ci_low, rel=0.15)


def test_lc_refuses_items_of_different_sample_counts():
    items = _pair_items(np.random.default_rng(3), 10, 2) + _pair_items(np.random.default_rng(4), 10, 3)
    with pytest.raises(ValueError, match="different numbers of comparisons"):
        lc_win_rate_estimate(items, n_resamples=100)
    bad = _pair_items(np.random.default_rng(3), 3, 2)
    bad[1]["pair_wins"] = bad[1]["pair_wins"][:3]
    with pytest.raises(ValueError, match="prompt_id=1 has 3 pair_wins for 2 x 2"):
        lc_design(bad)

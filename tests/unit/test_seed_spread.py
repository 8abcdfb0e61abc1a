"""harness.stats.seed_spread and resolve_probability against hand computations."""

import math

import pytest

from harness.stats import resolve_probability, seed_spread


def test_seed_spread_by_hand():
    s = seed_spread([0.54, 0.51, 0.57], [0.01, 0.02, 0.02])
    sd = math.sqrt((0.0 + 0.03**2 + 0.03**2) / 2)  # 0.03
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, df 2)
    assert (s.mean, s.sd, s.n) == (pytest.approx(0.54), pytest.approx(sd), 3)
    assert (s.t_low, s.t_high) == (pytest.approx(0.54 - half), pytest.approx(0.54 + half))
    # variance of the estimates 0.0009 = between-seed variance + mean squared error (1e-4 + 4e-4 + 4e-4) / 3
    assert s.eval_se == pytest.approx(math.sqrt(0.0003)) and s.between_sd == pytest.approx(math.sqrt(0.0006))
    # one-sided t-test of mean > 0.5: t = 0.04 / (0.03 / sqrt 3) = 2.309, df 2 -> p = 0.0736
    assert s.p_above == pytest.approx(0.07357, abs=1e-4)


def test_the_evaluation_error_can_explain_all_of_the_spread():
    s = seed_spread([0.54, 0.55], [0.05, 0.05])
    assert s.between_sd == 0.0 and s.sd == pytest.approx(math.sqrt(0.00005))
    same = seed_spread([0.6, 0.6, 0.6], [0.01, 0.01, 0.01])  # no spread at all: a degenerate interval, p from the sign
    assert (same.t_low, same.t_high, same.p_above) == (pytest.approx(0.6), pytest.approx(0.6), 0.0)


@pytest.mark.parametrize("values, ses, match", [
    ([0.5], [0.01], "at least 2 seeds"),
    ([0.5, 0.6], [0.01], "one value and one standard error per seed"),
    ([0.5, float("nan")], [0.01, 0.01], "finite"),
    ([0.5, 0.6], [0.01, -0.01], "errors >= 0"),
])
def test_seed_spread_refuses_bad_input(values, ses, match):
    with pytest.raises(ValueError, match=match):
        seed_spread(values, ses)


def test_resolve_probability_by_hand():
    # no seed spread, effect exactly 1.96 se: the interval clears the null half the time
    assert resolve_probability(0.0392, 0.0, 0.02) == pytest.approx(0.5, abs=1e-4)
    assert resolve_probability(0.0792, 0.0, 0.02) == pytest.approx(0.97725, abs=1e-4)  # effect 3.96 se: Phi(2)
    # a seed spread as large as the error: Phi(2 * 0.02 / sqrt(0.02^2 + 0.02^2)) = Phi(1.4142)
    assert resolve_probability(0.0792, 0.02, 0.02) == pytest.approx(0.92135, abs=1e-4)
    for se, between in ((0.0, 0.0), (0.01, -0.1), (float("nan"), 0.0)):
        with pytest.raises(ValueError):
            resolve_probability(0.05, between, se)

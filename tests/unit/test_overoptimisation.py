"""The reward-over-KL shape of a PPO run (Gao et al. 2022): the fit recovers known coefficients, and each
shape is named from data made to have it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.overoptimisation import reward_shape


def _gao(kl, alpha, beta, r0=0.3):
    d = np.sqrt(np.asarray(kl, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        return r0 + np.where(d > 0, d * (alpha - beta * np.log(d)), 0.0)


def test_fit_recovers_gao_coefficients_and_the_peak():
    kl = [0.0, 0.5, 1, 2, 4, 8, 12, 16, 20]
    s = reward_shape(kl, _gao(kl, alpha=1.0, beta=0.5))
    assert s.alpha == pytest.approx(1.0) and s.beta == pytest.approx(0.5)
    assert s.peak_kl == pytest.approx(math.exp(2 * (1.0 / 0.5 - 1)))  # d* = e^(alpha/beta - 1), KL* = d*^2 = e^2
    assert s.shape == "peaked" and "peaks at KL 7.39" in s.text and s.max_kl == 20 and s.n == 9


def test_rising_falling_and_flat():
    kl = [0.0, 0.2, 0.5, 1.0, 1.5, 2.0, 3.0]
    rising = reward_shape(kl, _gao(kl, alpha=1.0, beta=0.05))  # the peak (KL ~ e^38) lies far beyond the run
    assert rising.shape == "rising" and rising.spearman == pytest.approx(1.0) and rising.peak_kl > 1e10
    falling = reward_shape(kl, [0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1])
    assert falling.shape == "falling" and falling.spearman == pytest.approx(-1.0) and falling.p_value < 0.05
    flat = reward_shape(kl, [0.1, 0.3, 0.0, 0.2, 0.1, 0.3, 0.0])
    assert flat.shape == "flat" and flat.p_value > 0.05
    const = reward_shape(kl, [0.2] * 7)
    assert const.shape == "flat" and const.spearman == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="need 3"):
        reward_shape([0.0, 0.1, 0.2], [1, 2, 3])
    with pytest.raises(ValueError, match="non-finite"):
        reward_shape([0.1, 0.2, float("nan"), 0.4], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="3 KL values vs 2"):
        reward_shape([0.1, 0.2, 0.3], [1, 2])


def test_with_standard_errors_the_fit_recovers_the_curve_and_its_initial_reward():
    kl = [0.0, 0.5, 1, 2, 4, 8, 12, 16, 20]
    s = reward_shape(kl, _gao(kl, alpha=1.0, beta=0.5), se=[0.01] * 9)
    assert s.alpha == pytest.approx(1.0) and s.beta == pytest.approx(0.5)  # the intercept (r0 = 0.3) is fitted, not read
    assert s.shape == "peaked" and "standard errors used" in s.text
    rising = reward_shape(kl[:7], _gao(kl[:7], alpha=1.0, beta=0.05), se=[0.01] * 7)
    assert rising.shape == "rising" and "weighted slope" in rising.text


# the s9 `make demo` probe (24 held-out prompts x 1 sample; trainers/probe.py): proxy reward and its standard errors
DEMO_KL = [0.0, 0.42, 1.08, 2.1, 3.5, 4.79]
DEMO_PROXY = [-1.87, -1.24, -1.51, -2.11, -2.09, -2.22]
DEMO_PROXY_SE = [0.34, 0.33, 0.31, 0.30, 0.24, 0.28]


def test_points_whose_standard_errors_cover_their_changes_are_flat_whatever_ols_says():
    assert reward_shape(DEMO_KL, DEMO_PROXY).shape == "peaked"  # OLS on the means alone: one-sided p 0.03
    s = reward_shape(DEMO_KL, DEMO_PROXY, se=DEMO_PROXY_SE)
    assert s.shape == "flat" and "median 0.3" in s.text and "needs about 2.4x the episodes behind each point" in s.text


def test_the_initial_reward_is_fitted_so_a_noisy_first_point_does_not_bend_the_curve():
    kl = [0.0, 0.5, 1, 2, 4, 8, 12, 16, 20]
    reward = _gao(kl, alpha=1.0, beta=0.5)
    reward[0] -= 0.5  # the first probe's draw was unlucky, and says so through its large standard error
    anchored = reward_shape(kl, reward)  # every later point measured from the unlucky first one
    assert anchored.alpha != pytest.approx(1.0, abs=0.1)
    s = reward_shape(kl, reward, se=[1.0] + [0.01] * 8)
    assert s.alpha == pytest.approx(1.0, abs=0.01) and s.beta == pytest.approx(0.5, abs=0.01) and s.shape == "peaked"


def test_standard_errors_must_be_finite_positive_and_one_per_point():
    kl, reward = [0.0, 0.5, 1.0, 2.0], [0.1, 0.2, 0.3, 0.4]
    with pytest.raises(ValueError, match="3 standard errors vs 4"):
        reward_shape(kl, reward, se=[0.1] * 3)
    with pytest.raises(ValueError, match="finite and positive"):
        reward_shape(kl, reward, se=[0.1, 0.0, 0.1, 0.1])
    with pytest.raises(ValueError, match="finite and positive"):
        reward_shape(kl, reward, se=[0.1, float("nan"), 0.1, 0.1])


def test_paired_over_prompts_the_slope_test_is_a_t_test_of_each_prompt_s_own_slope():
    from scipy import stats

    kl = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    d = np.sqrt(kl)
    levels, slopes = np.array([-3.0, 0.0, 2.5, -1.0]), np.array([0.30, 0.25, 0.20, 0.35])
    noise = np.array([[0.02, -0.01, 0.0, 0.01, -0.02], [0.0, 0.01, -0.02, 0.0, 0.01],
                      [-0.01, 0.0, 0.02, -0.01, 0.0], [0.01, -0.02, 0.0, 0.01, 0.0]])
    per_prompt = levels[:, None] + slopes[:, None] * d[None, :] + noise  # [4 prompts, 5 points]
    means = per_prompt.mean(0)
    se = per_prompt.std(0, ddof=1) / 2  # over prompts: the prompts' levels differ by far more than the curve moves
    assert reward_shape(kl, means, se=se).shape == "flat"  # the weighted test cannot see through the levels
    s = reward_shape(kl, means, per_prompt=per_prompt.tolist())
    own = [np.polyfit(d, row, 1)[0] for row in per_prompt]  # each prompt's least-squares slope, by numpy
    ref = stats.ttest_1samp(own, 0.0)
    assert s.shape == "rising" and s.spearman == pytest.approx(1.0)
    assert f"paired slope {np.mean(own):+.3g} per sqrt-nat (p = {ref.pvalue:.2g}, over 4 prompts)" in s.text


def test_paired_flat_states_the_prompts_a_slope_needs_and_a_peak_is_tested_over_prompts():
    kl = [0.0, 0.5, 1, 2, 4, 8, 12, 16, 20]
    base = _gao(kl, alpha=1.0, beta=0.5)
    per_prompt = np.stack([base + off for off in (-1.0, 0.0, 1.0)]) + np.array([0.01, -0.01, 0.0])[:, None] * np.arange(9)
    s = reward_shape(kl, per_prompt.mean(0), per_prompt=per_prompt)
    assert s.shape == "peaked" and "paired over 3 prompts" in s.text and s.beta == pytest.approx(0.5, abs=0.01)
    rng = np.random.default_rng(0)
    noisy = rng.normal(0.0, 1.0, size=(6, 5)) + 0.05 * np.sqrt([0.0, 0.5, 1.0, 2.0, 3.0])
    f = reward_shape([0.0, 0.5, 1.0, 2.0, 3.0], noisy.mean(0), per_prompt=noisy)
    assert f.shape == "flat" and "paired over the probe's 6 prompts" in f.text and "x the probe's prompts" in f.text


def test_per_prompt_rewards_must_match_the_means_and_the_points():
    kl, reward = [0.0, 0.5, 1.0, 2.0], [0.1, 0.2, 0.3, 0.4]
    with pytest.raises(ValueError, match=r"need \[prompts >= 2, 4 points\]"):
        reward_shape(kl, reward, per_prompt=[[0.1, 0.2, 0.3, 0.4]])
    with pytest.raises(ValueError, match="means over prompts are not the rewards"):
        reward_shape(kl, reward, per_prompt=[[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.5]])

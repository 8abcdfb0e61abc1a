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

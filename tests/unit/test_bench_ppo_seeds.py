"""bench/ppo_seeds.py: a prompt's win over its first answers a side, against hand computations."""

import pytest

from bench.ppo_seeds import subsample_wins


def test_subsample_wins_takes_the_leading_square_of_pairs():
    # m = k = 2: pairs (0,0)=1, (0,1)=0, (1,0)=0.5, (1,1)=1
    pw = [1.0, 0.0, 0.5, 1.0]
    assert subsample_wins(pw, 2, 2, 1) == 1.0
    assert subsample_wins(pw, 2, 2, 2) == pytest.approx(2.5 / 4)
    # m = k = 3: the first two a side are pairs 0, 1, 3, 4 of the row-major 3 x 3
    pw3 = [1, 0, 9, 0, 1, 9, 9, 9, 9]
    assert subsample_wins(pw3, 3, 3, 2) == 0.5


def test_subsample_wins_refuses_bad_shapes():
    with pytest.raises(ValueError, match="expected 2 x 2"):
        subsample_wins([1.0, 0.0, 1.0], 2, 2, 1)
    with pytest.raises(ValueError, match="outside 1..2"):
        subsample_wins([1.0] * 4, 2, 2, 3)


def test_crossed_bootstrap_by_hand():
    import numpy as np

    from bench.ppo_seeds import crossed_bootstrap

    # every seed wins the same prompts: nothing varies over seeds, so the crossed interval equals the prompts' one
    same = np.array([[1.0, 0.0, 1.0, 0.5]] * 3)
    r = crossed_bootstrap(same, n_resamples=4000)
    assert r["mean"] == 0.625 and r["crossed_ci"] == pytest.approx(r["prompts_ci"], abs=0.02)
    # every prompt alike within a seed: the prompts' interval is a point, the crossed one spans the seeds
    seeds = np.array([[0.25] * 4, [0.75] * 4])  # binary fractions: the means are exact
    r = crossed_bootstrap(seeds, n_resamples=4000)
    assert r["prompts_ci"] == pytest.approx([0.5, 0.5]) and r["crossed_ci"] == pytest.approx([0.25, 0.75])
    assert r["crossed_share_at_or_below_half"] == pytest.approx(0.75, abs=0.03)  # P(mean of 2 draws <= 0.5) = 3/4
    with pytest.raises(ValueError, match="need a"):
        crossed_bootstrap(np.array([[0.5, 0.5]]))

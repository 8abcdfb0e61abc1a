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

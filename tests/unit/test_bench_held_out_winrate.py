"""bench/held_out_winrate.py: per-prompt wins over SFT, by hand."""

import numpy as np

from bench.held_out_winrate import all_pairs_wins, wins_over


def test_wins_over_counts_ties_as_half():
    policy, sft = np.array([1.0, 0.2, -0.5, 0.3]), np.array([0.5, 0.2, 0.0, -1.0])
    assert wins_over(policy, sft).tolist() == [1.0, 0.5, 0.0, 1.0]


def test_all_pairs_wins_by_hand():
    # prompt 0: policy [1, 3] vs sft [2, 2] -> pairs (1<2, 1<2, 3>2, 3>2) = 0.5; prompt 1: [0, 0] vs [0, -1] -> (0.5, 1, 0.5, 1) = 0.75
    policy, sft = np.array([[1.0, 3.0], [0.0, 0.0]]), np.array([[2.0, 2.0], [0.0, -1.0]])
    assert all_pairs_wins(policy, sft).tolist() == [0.5, 0.75]
    # one sample a side is wins_over
    assert all_pairs_wins(policy[:, :1], sft[:, :1]).tolist() == wins_over(policy[:, 0], sft[:, 0]).tolist()


def test_all_pairs_wins_refuses_other_shapes():
    import pytest

    with pytest.raises(ValueError, match="samples"):
        all_pairs_wins(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="one shape"):
        all_pairs_wins(np.zeros((3, 2)), np.zeros((3, 4)))

"""bench/held_out_winrate.py: per-prompt wins over SFT, by hand."""

import numpy as np

from bench.held_out_winrate import wins_over


def test_wins_over_counts_ties_as_half():
    policy, sft = np.array([1.0, 0.2, -0.5, 0.3]), np.array([0.5, 0.2, 0.0, -1.0])
    assert wins_over(policy, sft).tolist() == [1.0, 0.5, 0.0, 1.0]

"""bench/best_of_n.py: the gold win rate of the proxy's best of n, by hand on one prompt's samples."""

import numpy as np
import pytest

from bench.best_of_n import win_of_best


def test_win_of_best_by_hand():
    proxy, gold = np.array([3.0, 1.0, 2.0]), np.array([1.0, 0.0, 2.0])
    # n = 1: every sample against each other one: (0 v 1) win, (0 v 2) loss, (1 v 0) loss, (1 v 2) loss, (2 v 0) win, (2 v 1) win
    assert win_of_best(proxy, gold, 1) == pytest.approx(3 / 6)
    # n = 2: {0,1} -> 0 vs 2 loses; {0,2} -> 0 vs 1 wins; {1,2} -> 2 vs 0 wins
    assert win_of_best(proxy, gold, 2) == pytest.approx(2 / 3)
    assert win_of_best(gold, gold, 2) == pytest.approx(2 / 3)  # the oracle: here the proxy's order on the best is the gold's
    assert win_of_best(np.zeros(3), np.array([1.0, 1.0, 0.0]), 1) == pytest.approx(0.5)  # gold ties count 0.5
    # a proxy that inverts gold picks the worse of each two: {0,1} -> 1 vs 2 loses; {0,2} -> 0 vs 1 wins; {1,2} -> 1 vs 0 loses
    assert win_of_best(-gold, gold, 2) == pytest.approx(1 / 3)

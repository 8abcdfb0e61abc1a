"""harness.evals.lm_eval_prefix.shared_prefix_groups: which lm-eval requests share a cached prefix, by hand."""

import pytest

from harness.evals.lm_eval_prefix import shared_prefix_groups


def test_groups_by_head_and_cuts_the_prefix_at_the_longest_common_one():
    primer = [7, 7, 7, 7]
    inputs = [
        primer + [1, 2, 3],  # 0: shares 5 tokens with 1
        primer + [1, 2, 9, 9],  # 1
        primer + [5],  # 2: shares 4 with 0/1, but n_scored 1 leaves only 4 unscored
        [8, 8, 8, 8, 8, 8],  # 3: its own head -> alone -> rest
        [7, 7, 7],  # 4: too short for a head of 4 (3 - 1 < 4) -> rest
    ]
    n_scored = [1, 2, 1, 1, 1]
    groups, rest = shared_prefix_groups(inputs, n_scored, min_prefix=4)
    # 0, 1, 2 share the head; LCP of all three is 4 (input 2 differs at position 4); unscored room: 6, 4, 4
    assert groups == [(4, [0, 1, 2])]
    assert rest == [3, 4]


def test_prefix_never_covers_a_scored_position():
    inputs = [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7]]
    # identical for 6 tokens, but request 0 scores its last 2 positions: the prefix stops at 6 - 2 = 4
    assert shared_prefix_groups(inputs, [2, 1], min_prefix=2) == ([(4, [0, 1])], [])
    # the same with request 1 scoring 4: 7 - 4 = 3
    assert shared_prefix_groups(inputs, [2, 4], min_prefix=2) == ([(3, [0, 1])], [])


def test_two_groups_keep_first_appearance_order():
    a, b = [1, 1, 1], [2, 2, 2]
    inputs = [b + [0, 0], a + [0, 0], b + [0, 1], a + [0, 1]]
    groups, rest = shared_prefix_groups(inputs, [1, 1, 1, 1], min_prefix=3)
    assert groups == [(4, [0, 2]), (4, [1, 3])] and rest == []


@pytest.mark.parametrize("inputs, n_scored, min_prefix, message", [
    ([[1, 2]], [1], 0, "min_prefix must be >= 1"),
    ([[1, 2]], [1, 1], 1, "1 inputs but 2 n_scored"),
    ([[1, 2]], [3], 1, "request 0: n_scored 3 outside 1..2"),
    ([[1, 2]], [0], 1, "request 0: n_scored 0 outside 1..2"),
])
def test_bad_arguments(inputs, n_scored, min_prefix, message):
    with pytest.raises(ValueError, match=message):
        shared_prefix_groups(inputs, n_scored, min_prefix)

"""prefix_segments: which rows of a generation batch share a prefix that runs once (hand-computed cases)."""

import random

import pytest

from harness.shared_prefix import prefix_segments


def _r(start, n):
    return list(range(start, start + n))


def test_two_rows_share_their_common_prefix_and_an_unrelated_row_stays_alone():
    a, b, c = _r(1, 40) + [500], _r(1, 40) + [600, 601], [7, 8, 9]
    assert prefix_segments([a, b, c], min_prefix=16) == [(40, [0, 1]), (0, [2])]


def test_every_row_keeps_one_token_of_its_own():
    same = _r(1, 20)
    assert prefix_segments([same, same, list(same)], min_prefix=16) == [(19, [0, 1, 2])]


def test_a_prefix_shorter_than_min_prefix_is_not_shared():
    a, b = _r(1, 15) + [500], _r(1, 15) + [600]
    assert prefix_segments([a, b], min_prefix=16) == [(0, [0]), (0, [1])]
    assert prefix_segments([a, b], min_prefix=15) == [(15, [0, 1])]


def test_two_families_beat_the_whole_batch_common_prefix():
    # all six rows share 16 tokens; rows 0, 2, 4 share 30, rows 1, 3, 5 share 28.
    # one group: 5 * 16 = 80 tokens saved; two groups: 2 * 30 + 2 * 28 = 116 -> two groups
    s = _r(1, 16)
    fam1 = [s + _r(100, 14) + [900 + i, 901] for i in range(3)]
    fam2 = [s + _r(200, 12) + [950 + i] for i in range(3)]
    rows = [fam1[0], fam2[0], fam1[1], fam2[1], fam1[2], fam2[2]]
    assert prefix_segments(rows, min_prefix=16) == [(30, [0, 2, 4]), (28, [1, 3, 5])]


def test_random_batches_are_partitions_whose_members_share_their_prefix():
    rng = random.Random(0)
    heads = [[rng.randrange(50) for _ in range(rng.randrange(0, 30))] for _ in range(4)]
    for _ in range(20):
        rows = [rng.choice(heads) + [rng.randrange(50) for _ in range(rng.randrange(1, 6))] for _ in range(rng.randrange(1, 12))]
        groups = prefix_segments(rows, min_prefix=4)
        assert sorted(i for _, m in groups for i in m) == list(range(len(rows)))
        for n, members in groups:
            assert n == 0 or n >= 4
            assert all(n <= len(rows[i]) - 1 for i in members)
            assert all(rows[i][:n] == rows[members[0]][:n] for i in members)
            assert n == 0 or len(members) >= 2


@pytest.mark.parametrize("rows, min_prefix, match", [([[1], []], 4, "row 1 is empty"), ([[1]], 0, "min_prefix")])
def test_bad_input_is_refused(rows, min_prefix, match):
    with pytest.raises(ValueError, match=match):
        prefix_segments(rows, min_prefix)


def test_length_chunks_split_where_padding_costs_more_than_a_forward():
    from harness.shared_prefix import length_chunks

    # 2 rows of 10 and 2 of 200: one chunk costs 4 x 200 + 64 = 864; two cost 2 x 10 + 64 + 2 x 200 + 64 = 548
    assert length_chunks([200, 10, 200, 10]) == [[1, 3], [0, 2]]
    # similar lengths: one chunk (4 x 12 + 64 = 112 < 2 x 10 + 2 x 12 + 128)
    assert length_chunks([10, 12, 11, 12]) == [[0, 2, 1, 3]]
    # a free forward: every distinct length its own chunk; rows of length 0 need none
    assert length_chunks([3, 0, 5, 3], chunk_cost=0) == [[0, 3], [2]]
    assert length_chunks([0, 0]) == []
    with pytest.raises(ValueError, match="row 1 has length -1"):
        length_chunks([1, -1])
    with pytest.raises(ValueError, match="chunk_cost"):
        length_chunks([1], chunk_cost=-1)

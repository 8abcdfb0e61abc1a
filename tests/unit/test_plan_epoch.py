"""The data plan behind gradient accumulation, DDP sharding and resume (trainers.common.plan_epoch)."""

import random

import pytest

from trainers.common import plan_epoch, steps_per_epoch


def _flat(plan):
    """Micro-batches in the order the global step sees them: step, then round, then process."""
    out = []
    for step in plan:
        n_rounds = len(step[0])
        out += [step[p][r] for r in range(n_rounds) for p in range(len(step))]
    return out


def test_every_item_once_per_epoch_in_a_seeded_order():
    plan = plan_epoch(10, 3, 2, 1, random.Random(0))
    items = [i for mb in _flat(plan) for i in mb]
    assert sorted(items) == list(range(10))
    assert [len(mb) for mb in _flat(plan)] == [3, 3, 3, 1]
    assert [len(step[0]) for step in plan] == [2, 2]  # 4 micro-batches, accumulation 2
    assert items == [i for mb in _flat(plan_epoch(10, 3, 2, 1, random.Random(0))) for i in mb]
    assert items != [i for mb in _flat(plan_epoch(10, 3, 2, 1, random.Random(1))) for i in mb]


@pytest.mark.parametrize("n", [16, 13])
def test_two_processes_see_the_micro_batches_of_one_process_with_double_accumulation(n):
    one = plan_epoch(n, 2, 4, 1, random.Random(7))
    two = plan_epoch(n, 2, 2, 2, random.Random(7))
    assert len(one) == len(two) == steps_per_epoch(n, 2, 4, 1) == steps_per_epoch(n, 2, 2, 2) == 2
    # the same micro-batches make up each optimiser step, dealt round-robin over processes ...
    assert sorted(map(tuple, one[0][0])) == sorted(map(tuple, two[0][0] + two[0][1]))
    last_one, last_two = sorted(map(tuple, one[1][0])), sorted(map(tuple, two[1][0] + two[1][1]))
    if n % 4 == 0:
        assert last_one == last_two
    else:  # ... except that 7 micro-batches need one repeated to fill 2 processes' last round
        assert len(last_two) == len(last_one) + 1 and set(last_one) <= set(last_two)


def test_uneven_rounds_are_padded_by_repeating_the_first_micro_batches():
    plan = plan_epoch(5, 2, 1, 2, random.Random(0))  # 3 micro-batches over 2 processes -> 4
    flat = _flat(plan)
    assert len(flat) == 4 and flat[3] == flat[0]
    assert all(len(step[0]) == len(step[1]) for step in plan)  # every process steps together (DDP)
    with pytest.raises(ValueError, match="no items"):
        plan_epoch(0, 2, 1, 1, None)

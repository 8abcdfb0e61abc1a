"""score_and_delta_rows: per-policy means and paired deltas vs the base, on hand-computed lists."""

import functools

import pytest

from harness.evals.alignment_tax import score_and_delta_rows

alignment_tax_rows = functools.partial(score_and_delta_rows, "alignment_tax")

TASK = "hellaswag_local"


def items(accs, doc_ids=None, task=TASK):
    doc_ids = range(len(accs)) if doc_ids is None else doc_ids
    return [{"task": task, "doc_id": d, "acc": float(a), "acc_norm": 1.0 - a} for d, a in zip(doc_ids, accs)]


def by_key(rows):
    return {(r.policy, r.metric): r for r in rows}


def test_means_and_paired_deltas():
    rows = alignment_tax_rows(
        {"base": items([1, 0, 1, 0]), "sft": items([1, 1, 1, 0]), "ppo": items([0, 0, 1, 0])},
        task=TASK,
        slice_={"task": TASK, "shots": 0},
    )
    got = by_key(rows)
    assert [(r.policy, r.metric) for r in rows] == [
        ("base", "acc"),
        ("sft", "acc"),
        ("sft", "acc_delta"),
        ("ppo", "acc"),
        ("ppo", "acc_delta"),
    ]
    assert got["base", "acc"].value == pytest.approx(0.5)
    assert got["sft", "acc"].value == pytest.approx(0.75)
    assert got["ppo", "acc"].value == pytest.approx(0.25)
    # per-item differences: sft - base = [0, 1, 0, 0]; ppo - base = [-1, 0, 0, 0]
    assert got["sft", "acc_delta"].value == pytest.approx(0.25)
    assert got["ppo", "acc_delta"].value == pytest.approx(-0.25)  # alignment tax +0.25
    for r in rows:
        assert r.eval == "alignment_tax" and r.n == 4
        assert r.ci_low <= r.value <= r.ci_high
        assert r.slice == ({"task": TASK, "shots": 0, "baseline": "base"} if r.metric == "acc_delta" else {"task": TASK, "shots": 0})


def test_pairs_by_doc_id_not_by_position_and_ignores_other_tasks():
    base = items([1, 0, 0], doc_ids=[0, 1, 2])
    # same scores per doc_id as base, listed in another order, plus another task's record
    policy = items([0, 0, 1], doc_ids=[2, 1, 0]) + items([1], doc_ids=[0], task="other")
    got = by_key(alignment_tax_rows({"base": base, "rlhf": policy}, task=TASK))
    delta = got["rlhf", "acc_delta"]
    assert (delta.value, delta.ci_low, delta.ci_high, delta.n) == (0.0, 0.0, 0.0, 3)


def test_other_metric_and_base_name():
    rows = alignment_tax_rows(
        {"gpt": items([1, 1]), "ours": items([0, 1])}, task=TASK, metric="acc_norm", base_policy="gpt"
    )
    got = by_key(rows)
    # acc_norm = 1 - acc: gpt [0, 0], ours [1, 0]
    assert got["gpt", "acc_norm"].value == 0.0
    assert got["ours", "acc_norm_delta"].value == pytest.approx(0.5)
    assert got["ours", "acc_norm_delta"].slice == {"baseline": "gpt"}


def test_single_item_has_no_interval():
    got = by_key(alignment_tax_rows({"base": items([1]), "p": items([0])}, task=TASK))
    assert got["p", "acc_delta"].value == -1.0
    assert got["p", "acc_delta"].ci_low is None and got["p", "acc_delta"].ci_high is None


def test_mismatched_doc_ids_raise():
    with pytest.raises(ValueError, match="doc_ids differ.*1 only in 'base'"):
        alignment_tax_rows({"base": items([1, 0, 1]), "p": items([1, 0])}, task=TASK)
    with pytest.raises(ValueError, match="doc_ids differ"):
        alignment_tax_rows(
            {"base": items([1, 0], doc_ids=[0, 1]), "p": items([1, 0], doc_ids=[0, 2])}, task=TASK
        )


@pytest.mark.parametrize(
    "by_policy, message",
    [
        ({"sft": items([1])}, "base policy 'base' not in"),
        ({"base": items([1, 0], doc_ids=[0, 0])}, "doc_id 0 twice"),
        ({"base": items([1], task="other")}, "no items for task"),
        ({"base": [{"task": TASK, "doc_id": 0}]}, "no metric 'acc'"),
    ],
)
def test_bad_input_raises(by_policy, message):
    with pytest.raises(ValueError, match=message):
        alignment_tax_rows(by_policy, task=TASK)


def test_ptx_minus_ppo_is_the_difference_of_their_deltas_vs_base():
    policies = {"base": items([1, 1, 1, 0, 1]), "ppo": items([0, 1, 0, 0, 1]), "ppo_ptx": items([1, 1, 0, 0, 1])}
    rows = alignment_tax_rows(policies, task=TASK, slice_={"task": TASK, "shots": 0}, pairs=[("ppo_ptx", "ppo"), ("x", "ppo")])
    deltas = {(r.policy, r.slice["baseline"]): r for r in rows if r.metric == "acc_delta"}
    assert set(deltas) == {("ppo", "base"), ("ppo_ptx", "base"), ("ppo_ptx", "ppo")}  # ("x", "ppo"): no x, no row
    # per item: ppo - base = [-1, 0, -1, 0, 0] (tax 0.4); ppo_ptx - base = [0, 0, -1, 0, 0] (tax 0.2)
    assert deltas["ppo", "base"].value == pytest.approx(-0.4) and deltas["ppo_ptx", "base"].value == pytest.approx(-0.2)
    assert deltas["ppo_ptx", "ppo"].value == pytest.approx(0.2) == deltas["ppo_ptx", "base"].value - deltas["ppo", "base"].value
    assert deltas["ppo_ptx", "ppo"].n == 5 and deltas["ppo_ptx", "ppo"].ci_low <= 0.2 <= deltas["ppo_ptx", "ppo"].ci_high
    # eval.outputs_missing=warn: a pair is compared over the items both have
    rows = alignment_tax_rows({"base": items([1, 1, 1]), "ppo": items([1, 0], doc_ids=[0, 1]),
                               "ppo_ptx": items([0, 1], doc_ids=[1, 2])}, task=TASK, pairs=[("ppo_ptx", "ppo")], common_items=True)
    pair = next(r for r in rows if r.policy == "ppo_ptx" and r.slice.get("baseline") == "ppo")
    assert pair.n == 1 and pair.value == pytest.approx(0.0 - 0.0)  # doc 1 only: ppo_ptx 0, ppo 0

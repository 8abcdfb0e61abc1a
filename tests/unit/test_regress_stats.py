"""The gate's paired test and multiplicity correction against hand computations."""

import pytest

from harness.regress.stats import adjust_pvalues, paired_permutation_pvalue


def test_one_sided_p_value_enumerates_the_sign_flips_by_hand():
    # d = run - baseline = [-1, -1, -1, +0.5], observed sum -2.5. Of the 16 sign assignments of |d| = (1, 1, 1, 0.5)
    # only two have a sum <= -2.5: all four negative (-3.5) and the three 1s negative with +0.5 (-2.5): p = 2/16.
    run, base = [0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.5]
    assert paired_permutation_pvalue(run, base, "less") == pytest.approx(2 / 16)
    # the other direction: P(sum >= -2.5) = all assignments but the all-negative one (-3.5) = 15/16
    assert paired_permutation_pvalue(run, base, "greater") == pytest.approx(15 / 16)
    # two-sided: |sum| >= 2.5 for -3.5, -2.5, +2.5, +3.5: 4/16
    assert paired_permutation_pvalue(run, base, "two-sided") == pytest.approx(4 / 16)


def test_zero_differences_count_as_ties_and_no_change_gives_one():
    # d = [1, 0, 0, 1]: the zeros flip to themselves; sums +-1 +-1 -> P(sum >= 2) = 1/4 of the 16 assignments
    assert paired_permutation_pvalue([1, 0, 0, 1], [0, 0, 0, 0], "greater") == pytest.approx(4 / 16)
    assert paired_permutation_pvalue([0.3, 0.5], [0.3, 0.5], "less") == 1.0


def test_one_item_enumerates_its_two_sign_flips():
    # d = +0.4: the flips give {+0.4, -0.4}; P(sum >= 0.4) = 1/2, P(sum <= 0.4) = 1, P(|sum| >= 0.4) = 1 (scipy needs n >= 2)
    assert paired_permutation_pvalue([0.9], [0.5], "greater") == pytest.approx(0.5)
    assert paired_permutation_pvalue([0.9], [0.5], "less") == 1.0
    assert paired_permutation_pvalue([0.9], [0.5], "two-sided") == 1.0
    assert paired_permutation_pvalue([0.1], [0.5], "less") == pytest.approx(0.5)


def test_smallest_attainable_p_value_is_two_to_the_minus_n():
    assert paired_permutation_pvalue([0.0] * 8, [1.0] * 8, "less") == pytest.approx(1 / 256)


def test_monte_carlo_branch_for_many_items():
    # n = 20: 2^20 assignments > n_resamples, so random ones; only the all-negative one reaches -20, so
    # p = (hits + 1) / (n_resamples + 1) with hits ~ 0
    p = paired_permutation_pvalue([0.0] * 20, [1.0] * 20, "less", n_resamples=999, seed=3)
    assert p == pytest.approx(1 / 1000)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="aligned"):
        paired_permutation_pvalue([1.0], [1.0, 2.0], "less")
    with pytest.raises(ValueError, match="alternative"):
        paired_permutation_pvalue([1.0], [2.0], "lower")
    with pytest.raises(ValueError, match="non-finite"):
        paired_permutation_pvalue([float("nan")], [2.0], "less")


def test_benjamini_hochberg_and_holm_by_hand():
    p = [0.01, 0.04, 0.03]
    # BH: sorted 0.01, 0.03, 0.04 -> 0.01*3/1 = 0.03, 0.03*3/2 = 0.045, 0.04*3/3 = 0.04; running min from the top
    assert adjust_pvalues(p, "fdr_bh") == pytest.approx([0.03, 0.04, 0.04])
    # Holm: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.03, 0.06, 0.06
    assert adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert adjust_pvalues(p, "none") == p
    with pytest.raises(ValueError, match="correction"):
        adjust_pvalues(p, "fdr")

"""Objectives against hand computations on tiny tensors."""

import math

import pytest
import torch

from trainers import losses
from trainers.episodes import prompt_groups
from trainers.kl_control import (
    AdaptiveKLController,
    FixedKLController,
    make_kl_controller,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_kwise_loss_k3_is_mean_pairwise_loss_by_hand():
    # rewards sorted best first: pairs (w,l) = (0,1), (0,2), (1,2) with differences 1, 2, 1
    r = torch.tensor([[2.0, 1.0, 0.0]])
    loss, n_pairs, n_correct = losses.kwise_ranking_loss(r, torch.ones(1, 3))
    expected = (softplus(-1.0) + softplus(-2.0) + softplus(-1.0)) / 3  # -log sigmoid(d) = softplus(-d)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.251150, abs=1e-5)
    assert (n_pairs.item(), n_correct.item()) == (3, 3)


def test_kwise_loss_weighs_prompts_equally_and_masks_padding():
    # prompt 0 has K=3 (one pair mis-ordered), prompt 1 has K=2 padded to 3 with a junk value
    r = torch.tensor([[0.0, 1.0, -1.0], [3.0, 1.0, 100.0]])
    valid = torch.tensor([[1, 1, 1], [1, 1, 0]])
    loss, n_pairs, n_correct = losses.kwise_ranking_loss(r, valid)
    p0 = (softplus(1.0) + softplus(-1.0) + softplus(-2.0)) / 3
    p1 = softplus(-2.0)
    assert loss.item() == pytest.approx((p0 + p1) / 2, abs=1e-6)
    assert (n_pairs.item(), n_correct.item()) == (4, 3)


def test_kwise_loss_k2_equals_pairwise_loss():
    r = torch.tensor([[0.3, 1.2], [-0.5, -2.0]])
    loss, _, _ = losses.kwise_ranking_loss(r, torch.ones(2, 2))
    pairwise = -torch.nn.functional.logsigmoid(r[:, 0] - r[:, 1]).mean()
    assert loss.item() == pytest.approx(pairwise.item(), abs=1e-6)


def test_kwise_loss_rejects_single_completion():
    with pytest.raises(ValueError, match="at least 2"):
        losses.kwise_ranking_loss(torch.zeros(1, 2), torch.tensor([[1, 0]]))


def test_kwise_loss_ties_drop_exactly_the_tied_pairs_by_hand():
    # prompt 0: positions 0 and 1 tied (levels 0, 0, 1): pairs (0,2) and (1,2) only, not (0,1)
    # prompt 1: no ties, K=2. The tied pair is mis-ordered (r_0 < r_1) and must not count as wrong.
    r = torch.tensor([[0.5, 1.5, -1.0], [2.0, 1.0, 0.0]])
    valid = torch.tensor([[1, 1, 1], [1, 1, 0]])
    levels = torch.tensor([[0, 0, 1], [0, 1, 2]])
    loss, n_pairs, n_correct = losses.kwise_ranking_loss(r, valid, levels)
    p0 = (softplus(-1.5) + softplus(-2.5)) / 2  # d = 0.5 - (-1) and 1.5 - (-1)
    p1 = softplus(-1.0)
    assert loss.item() == pytest.approx((p0 + p1) / 2, abs=1e-6)
    assert (n_pairs.item(), n_correct.item()) == (3, 3)
    # without the tie the same rewards have 4 pairs, one of them wrong
    loss_untied, n4, c4 = losses.kwise_ranking_loss(r, valid)
    assert (n4.item(), c4.item()) == (4, 3) and loss_untied.item() != pytest.approx(loss.item())
    # accuracy outcomes: only the ranked pairs appear
    out, pair = losses.pairwise_outcomes(r, valid, levels)
    assert pair[0].nonzero().tolist() == [[0, 2], [1, 2]] and out[pair].tolist() == [1.0, 1.0, 1.0]


def test_kwise_loss_k9_has_36_pairs_and_matches_an_explicit_sum():
    torch.manual_seed(0)
    r = torch.randn(1, 9)
    loss, n_pairs, n_correct = losses.kwise_ranking_loss(r, torch.ones(1, 9))
    pairs = [(w, l) for w in range(9) for l in range(w + 1, 9)]
    assert len(pairs) == 36 == math.comb(9, 2) and n_pairs.item() == 36
    expected = sum(softplus(-(r[0, w] - r[0, l]).item()) for w, l in pairs) / 36
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert n_correct.item() == sum(r[0, w].item() > r[0, l].item() for w, l in pairs)
    # one tie group of three (levels 0,1,1,1,2,...) removes C(3,2) = 3 pairs
    levels = torch.tensor([[0, 1, 1, 1, 2, 3, 4, 5, 6]])
    assert losses.kwise_ranking_loss(r, torch.ones(1, 9), levels)[1].item() == 33


def test_kwise_loss_with_levels_ignores_the_order_of_positions():
    r = torch.tensor([[2.0, 1.0, 0.0, -0.5]])
    levels = torch.tensor([[0, 1, 1, 2]])
    perm = torch.tensor([3, 1, 0, 2])
    a = losses.kwise_ranking_loss(r, torch.ones(1, 4), levels)
    b = losses.kwise_ranking_loss(r[:, perm], torch.ones(1, 4), levels[:, perm])
    assert a[0].item() == pytest.approx(b[0].item(), abs=1e-6) and a[1].item() == b[1].item() == 5


def test_kwise_loss_k2_with_levels_equals_pairwise_loss():
    r = torch.tensor([[0.3, 1.2], [-0.5, -2.0]])
    loss, n, _ = losses.kwise_ranking_loss(r, torch.ones(2, 2), torch.tensor([[0, 1], [0, 1]]))
    pairwise = -torch.nn.functional.logsigmoid(r[:, 0] - r[:, 1]).mean()
    assert loss.item() == pytest.approx(pairwise.item(), abs=1e-6) and n.item() == 2


def test_kwise_loss_rejects_a_prompt_with_every_completion_tied():
    r = torch.tensor([[1.0, 0.0, 0.5], [1.0, 0.0, 0.0]])
    levels = torch.tensor([[0, 1, 2], [3, 3, 3]])
    with pytest.raises(ValueError, match=r"prompts \[1\] have every completion tied"):
        losses.kwise_ranking_loss(r, torch.ones(2, 3), levels)


def test_kl_shaping_and_gae_on_four_tokens_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -1.0, -3.0]])
    ref = torch.tensor([[-1.5, -1.5, -1.0, -2.0]])
    mask = torch.tensor([[1, 1, 1, 0]])  # 3 response tokens, 1 pad
    rewards, kl = losses.kl_penalized_rewards(torch.tensor([2.0]), logp, ref, mask, beta=0.1)
    # kl = logp - ref on valid tokens: [0.5, -0.5, 0, 0]; r_t = -0.1 * kl_t, + score 2 at t=2
    assert kl[0].tolist() == pytest.approx([0.5, -0.5, 0.0, 0.0])
    assert rewards[0].tolist() == pytest.approx([-0.05, 0.05, 2.0, 0.0])

    values = torch.tensor([[0.5, 1.0, 1.5, 9.0]])  # the 9 sits on padding and must be ignored
    adv, ret = losses.gae_advantages(rewards, values, mask, gamma=1.0, lam=0.95)
    # t=2: d=2.0+0-1.5=0.5 -> A=0.5 ; t=1: d=0.05+1.5-1.0=0.55 -> A=0.55+0.95*0.5=1.025
    # t=0: d=-0.05+1.0-0.5=0.45 -> A=0.45+0.95*1.025=1.42375
    assert adv[0].tolist() == pytest.approx([1.42375, 1.025, 0.5, 0.0])
    assert ret[0].tolist() == pytest.approx([1.92375, 2.025, 2.0, 0.0])


def test_gae_with_lambda_one_gives_monte_carlo_returns():
    rewards = torch.tensor([[1.0, 0.0, 3.0]])
    values = torch.tensor([[0.2, -0.7, 5.0]])
    _, ret = losses.gae_advantages(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert ret[0].tolist() == pytest.approx([4.0, 3.0, 3.0])


def test_leave_one_out_scores_by_hand():
    # two prompts of three samples: 1, 2, 6 -> 1 - 4, 2 - 3.5, 6 - 1.5; 0, 0, 3 -> -1.5, -1.5, 3
    out = losses.leave_one_out_scores(torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0]), 3)
    assert out.tolist() == pytest.approx([-3.0, -1.5, 4.5, -1.5, -1.5, 3.0])
    assert out.view(2, 3).sum(-1).tolist() == pytest.approx([0.0, 0.0])  # k/(k-1) times the centred scores: sums to 0
    assert losses.leave_one_out_scores(torch.tensor([5.0, 5.0]), 2).tolist() == [0.0, 0.0]  # equal samples: no signal
    for bad, k in ((torch.ones(6), 1), (torch.ones(5), 2), (torch.ones(2, 2), 2)):
        with pytest.raises(ValueError, match="samples_per_prompt >= 2 dividing the batch"):
            losses.leave_one_out_scores(bad, k)


def test_prompt_groups_repeat_each_prompt_in_a_row():
    assert prompt_groups(["a", "b", "c"], 2) == ["a", "a", "b", "b", "c", "c"]
    assert prompt_groups(["a", "b"], 1) == ["a", "b"]
    with pytest.raises(ValueError, match="samples_per_prompt must be >= 1"):
        prompt_groups(["a"], 0)


def test_lm_loss_counts_only_masked_targets():
    # vocab 2; logits uniform except the last position, which targets are never read from
    logits = torch.zeros(1, 3, 2)
    logits[0, 0] = torch.tensor([math.log(3.0), 0.0])  # p(token 0) = 3/4 at position 0
    ids = torch.tensor([[1, 0, 1]])
    mask = torch.tensor([[0, 1, 0]])  # only the target at position 1 (predicted from position 0)
    assert losses.lm_loss(logits, ids, mask).item() == pytest.approx(-math.log(0.75), abs=1e-6)
    mask_all = torch.tensor([[0, 1, 1]])
    assert losses.lm_loss(logits, ids, mask_all).item() == pytest.approx((-math.log(0.75) + math.log(2.0)) / 2, abs=1e-6)


def test_ppo_policy_loss_clips_by_hand():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5
    adv = torch.tensor([[1.0, 1.0]])
    loss, stats = losses.ppo_policy_loss(new, old, adv, torch.ones(1, 2), clip=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped) ; token 1: max(-0.5, -0.8) = -0.5 (unclipped)
    assert loss.item() == pytest.approx((-1.2 - 0.5) / 2, abs=1e-6)
    assert stats["clipfrac"].item() == pytest.approx(0.5)


def test_ppo_value_loss_clips_by_hand():
    old = torch.tensor([[0.0, 0.0]])
    new = torch.tensor([[1.0, 0.1]])
    ret = torch.tensor([[2.0, 0.0]])
    loss, _ = losses.ppo_value_loss(new, old, ret, torch.ones(1, 2), clip=0.2)
    # token 0: max((1-2)^2, (0.2-2)^2) = 3.24 ; token 1: max(0.01, 0.01) = 0.01
    assert loss.item() == pytest.approx(0.5 * (3.24 + 0.01) / 2, abs=1e-6)


def test_whiten_and_explained_variance():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    m = torch.tensor([[1, 1, 1, 0]])
    w = losses.whiten(x, m)
    assert losses.masked_mean(w, m).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.masked_mean(w**2, m).item() == pytest.approx(1.0, abs=1e-4)
    assert losses.explained_variance(x, x, m).item() == pytest.approx(1.0)


def test_kl_controllers_follow_their_update_rules():
    fixed = FixedKLController(0.02)
    assert fixed.update(10.0, 64) == 0.02
    ada = AdaptiveKLController(0.1, target=6.0, horizon=1000)
    # KL 9 > target: error = clip(9/6 - 1, -.2, .2) = 0.2 -> beta *= 1 + 0.2 * 100/1000
    assert ada.update(9.0, 100) == pytest.approx(0.1 * 1.02)
    # KL 5.4 < target: error = -0.1 -> beta *= 1 - 0.1 * 100/1000
    assert ada.update(5.4, 100) == pytest.approx(0.1 * 1.02 * 0.99)
    with pytest.raises(ValueError):
        make_kl_controller("adaptive", 0.1, target=None)


def test_selective_logprobs_match_log_softmax_in_value_and_gradient():
    """The hand-written backward gives autograd's gradient of gather(log_softmax(logits)); 21 rows
    span two of the row chunks the logsumexp is computed in."""
    torch.manual_seed(0)
    logits = (3 * torch.randn(3, 7, 11, dtype=torch.float64)).requires_grad_()
    labels = torch.randint(0, 11, (3, 7))
    upstream = torch.randn(3, 7, dtype=torch.float64)
    ref = torch.gather(torch.log_softmax(logits, -1), -1, labels.unsqueeze(-1)).squeeze(-1)
    (ref_grad,) = torch.autograd.grad((ref * upstream).sum(), logits)
    got, lse = losses._SelectiveLogSoftmax.apply(logits, labels)
    assert torch.equal(lse, torch.logsumexp(logits.detach(), -1)) and not lse.requires_grad
    (got_grad,) = torch.autograd.grad((got * upstream).sum(), logits)
    assert torch.allclose(got, ref, atol=1e-12) and torch.allclose(got_grad, ref_grad, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: losses._SelectiveLogSoftmax.apply(x, labels)[0], (logits,))


def test_token_logprobs_and_entropy_equal_the_separate_functions():
    torch.manual_seed(1)
    logits = 4 * torch.randn(5, 7, 9)  # 35 rows: three row chunks, the last one partial
    labels = torch.randint(0, 9, (5, 7))
    lp, ent = losses.token_logprobs_and_entropy(logits, labels)
    assert torch.allclose(lp, losses.token_logprobs(logits, labels), atol=1e-6)
    assert torch.allclose(ent, losses.entropy_from_logits(logits), atol=1e-5)
    assert not ent.requires_grad  # logged only: no graph kept for it


def test_length_coefficient_is_the_log_odds_of_preferring_the_longer_completion():
    # three pairs prefer the 100-token-longer completion, one the shorter: P(longer) = 3/4, so alpha = log 3 per 100 tokens
    diffs = [100, 100, 100, -100]
    assert losses.length_coefficient(diffs, prior_sd=1e6) == pytest.approx(math.log(3), abs=1e-6)
    # the default prior N(0, 10^2) pulls it in a little: the derivative of the log posterior is 0 there, by hand
    a = losses.length_coefficient(diffs)
    sig = 1 / (1 + math.exp(-a))
    assert 3 * (1 - sig) - sig - a / 100 == pytest.approx(0.0, abs=1e-6)
    assert math.log(3) - 0.02 < a < math.log(3)
    assert losses.length_coefficient([-d for d in diffs]) == pytest.approx(-a)  # labels preferring the shorter: negative
    assert losses.length_coefficient([50, -50]) == pytest.approx(0.0, abs=1e-6)  # no length preference
    assert losses.length_coefficient([]) == 0.0 and losses.length_coefficient([0, 0]) == 0.0


def test_length_coefficient_stays_finite_when_every_pair_prefers_the_longer_completion():
    a = losses.length_coefficient([20, 40, 60])  # separable: the likelihood alone grows without bound
    assert 5 < a < 100  # 7.05
    x = [0.2, 0.4, 0.6]
    grad = sum(xi / (1 + math.exp(a * xi)) for xi in x) - a / 100  # d/da of sum log sigmoid(a x) - a^2 / 200
    assert grad == pytest.approx(0.0, abs=1e-6)

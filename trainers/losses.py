"""All InstructGPT objectives as pure functions on tensors (no models, no state).

Sources: Ouyang et al. 2022 (arXiv 2203.02155) section 3.5 and appendix C; GAE from Schulman et
al. 2016 (arXiv 1506.02438) eq. 16; PPO clipping from Schulman et al. 2017 (arXiv 1707.06347)
eq. 7; the per-token KL reward shaping and adaptive KL controller from Ziegler et al. 2019
(arXiv 1909.08593) section 2.2. Shapes: B = batch, T = tokens, K = completions per prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (any shape; 0-d result)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Normalise ``x`` to unit variance (and zero mean if ``shift_mean``) over masked positions."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    return out if shift_mean else out + mean


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(label_t) under ``logits``: ``[B, T, V]`` x ``[B, T]`` -> ``[B, T]`` (nats)."""
    return torch.gather(F.log_softmax(logits.float(), dim=-1), -1, labels.unsqueeze(-1)).squeeze(-1)


# Rows per chunk for the row-wise passes over ``[..., V]`` logits below. A ``[16, 50257]`` fp32
# temporary is 3 MB: small enough for the C allocator to recycle from its heap (and to stay in cache),
# where one temporary for all rows (e.g. 77 MB for 8 x 48 x 50257) is a fresh mapping every time, and
# its first-touch page faults cost more than the arithmetic on a CPU.
_ROWS = 16


def _logsumexp_rows(logits: torch.Tensor) -> torch.Tensor:
    """``logsumexp`` over the last dim, ``[..., V]`` -> ``[...]``, computed ``_ROWS`` rows at a time
    (each row is reduced by ``torch.logsumexp`` exactly as on the whole tensor)."""
    flat = logits.reshape(-1, logits.shape[-1])
    return torch.cat([torch.logsumexp(rows, dim=-1) for rows in flat.split(_ROWS)]).view(logits.shape[:-1])


class _SelectiveLogSoftmax(torch.autograd.Function):
    """``log_softmax(logits)[label]`` with a hand-written backward that makes one vocabulary-sized tensor.

    Forward: ``logits[label] - logsumexp(logits)``; it also returns the ``logsumexp`` (no gradient) so
    that the entropy can reuse it. Backward, for upstream gradient g:
    ``d/d logits = g * (onehot(label) - softmax(logits))``, built in place as ``-g * softmax`` plus a
    scatter-add of g at the labels. Autograd's version of ``gather(log_softmax(x))`` instead zero-fills
    a ``[..., V]`` tensor for the gather, scatters into it, and runs ``log_softmax``'s backward over it:
    on a CPU, with V = 50k, those passes and fresh allocations were a tenth of a PPO update.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lse = _logsumexp_rows(logits)
        ctx.save_for_backward(logits, lse, labels)
        ctx.mark_non_differentiable(lse)
        return torch.gather(logits, -1, labels.unsqueeze(-1)).squeeze(-1) - lse, lse

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _grad_lse: torch.Tensor | None):
        logits, lse, labels = ctx.saved_tensors
        g = grad.unsqueeze(-1)
        out = (logits - lse.unsqueeze(-1)).exp_().mul_(-g)  # -g * softmax(logits)
        out.scatter_add_(-1, labels.unsqueeze(-1), g)
        return out, None


def selective_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Same values and gradient as :func:`token_logprobs` (``[B, T, V]`` x ``[B, T]`` -> ``[B, T]``, nats),
    with less memory traffic (see :class:`_SelectiveLogSoftmax`)."""
    return _SelectiveLogSoftmax.apply(logits.float(), labels)[0]


def token_logprobs_and_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p(label_t), entropy_t)``: ``[B, T, V]`` x ``[B, T]`` -> two ``[B, T]`` (nats).

    Equal to ``(token_logprobs(logits, labels), entropy_from_logits(logits))``. The log-probs keep
    their graph (:func:`selective_logprobs`); the entropy, ``logsumexp(x) - sum(softmax(x) * x)``,
    is computed without one because it is only logged. It reuses the log-probs' ``logsumexp`` and
    runs ``_ROWS`` rows at a time, so no vocabulary-sized temporary is made for it.
    """
    logits = logits.float()
    lp, lse = _SelectiveLogSoftmax.apply(logits, labels)
    with torch.no_grad():
        flat, flat_lse = logits.detach().reshape(-1, logits.shape[-1]), lse.reshape(-1)
        entropy = torch.cat([
            l - (rows - l.unsqueeze(-1)).exp_().mul_(rows).sum(-1)
            for rows, l in zip(flat.split(_ROWS), flat_lse.split(_ROWS))
        ]).view(lse.shape)
    return lp, entropy


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each next-token distribution: ``[B, T, V]`` -> ``[B, T]`` (nats)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy averaged over the tokens where ``loss_mask`` is 1 (nats/token).

    ``logits [B, T, V]`` predict ``input_ids[:, 1:]``; ``loss_mask [B, T]`` marks which *target*
    tokens count. SFT passes the completion mask (prompt tokens masked, paper section 3.5 "SFT");
    the ptx term passes the attention mask (all text counts, paper eq. 2's log pi(x)).
    """
    return target_nll(logits[:, :-1], input_ids[:, 1:], loss_mask[:, 1:])


def target_nll(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of already aligned predictions, averaged where ``mask`` is 1 (nats/token).

    ``logits [B, T, V]``: ``logits[:, t]`` predicts ``targets[:, t]`` (``[B, T]``); ``mask [B, T]``.
    The log-probs come from :func:`selective_logprobs` (same values as a log-softmax and gather,
    one vocabulary-sized tensor in backward).
    """
    return masked_mean(-selective_logprobs(logits, targets), mask)


def ranked_pairs(valid: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
    """Which (w, l) position pairs are ranked pairs: ``[B, K, K]`` bool, ``True`` where w is ranked above l.

    ``valid [B, K]`` marks real completions (padding is 0). ``levels [B, K]`` holds each position's
    rank level (0 = best, equal levels = tied; any integer or float dtype); ``None`` means positions
    are sorted best first with no ties (``levels = 0..K-1``). Position w is above l iff
    ``levels[w] < levels[l]``, so tied positions (equal levels) form no pair and each untied pair is
    counted exactly once.
    """
    valid = valid.bool()
    b, k = valid.shape
    if levels is None:
        levels = torch.arange(k, device=valid.device).expand(b, k)
    elif levels.shape != valid.shape:
        raise ValueError(f"ranked_pairs: levels {tuple(levels.shape)} and valid {tuple(valid.shape)} differ in shape")
    above = levels.unsqueeze(2) < levels.unsqueeze(1)  # [B, K, K]: level of w < level of l
    return above & valid.unsqueeze(2) & valid.unsqueeze(1)


def kwise_ranking_loss(
    rewards: torch.Tensor, valid: torch.Tensor, levels: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The InstructGPT reward-model loss (paper eq. 1) over a batch of ranked lists, ties allowed.

    ``rewards [B, K]``: r(x, y) for each prompt's completions; ``valid [B, K]`` marks real
    completions (lists shorter than K are padded). ``levels [B, K]`` gives rank levels (0 = best,
    equal = tied; see :func:`ranked_pairs`); ``None`` means ``rewards`` is sorted best first without
    ties. For each prompt all its ranked pairs (w above l; C(K_b, 2) of them without ties) form one
    batch element:
        loss_b = -1/N_b * sum_{(w,l)} log sigmoid(r_w - r_l),   N_b = number of ranked pairs,
    and the loss is the mean of loss_b over prompts, so a prompt with many completions weighs as
    much as one with two (the paper's reason for the batching: no overfitting to repeated prompts).
    Tied pairs are left out of the sum and of N_b (the paper's labelers ranked without ties; leaving
    them out is the choice that asserts nothing the labeler did not say).

    Returns ``(loss, n_pairs, n_correct)``: the scalar loss, the number of ranked pairs and how many
    have r_w > r_l (for pairwise accuracy). Raises ``ValueError`` if a prompt has fewer than 2 valid
    completions, or no ranked pair (every completion tied).
    """
    valid = valid.bool()
    if (valid.sum(-1) < 2).any():
        raise ValueError("kwise_ranking_loss: every prompt needs at least 2 valid completions")
    pair = ranked_pairs(valid, levels)  # [B, K, K]
    n_pairs_b = pair.sum((1, 2))
    if (n_pairs_b == 0).any():
        bad = (n_pairs_b == 0).nonzero().flatten().tolist()
        raise ValueError(f"kwise_ranking_loss: prompts {bad} have every completion tied, so no ranked pair")
    diff = rewards.unsqueeze(2) - rewards.unsqueeze(1)  # [B, K, K]: r_w - r_l
    per_pair = -F.logsigmoid(diff) * pair
    loss = (per_pair.sum((1, 2)) / n_pairs_b).mean()
    n_correct = ((diff > 0) & pair).sum()
    return loss, n_pairs_b.sum(), n_correct


def length_coefficient(token_diffs: Sequence[float], prior_sd: float = 10.0) -> float:
    """The length term of length-debiased reward-model training (``rm.length_term``): the maximum a posteriori
    alpha of ``P(w preferred to l) = sigmoid(alpha * (tokens(w) - tokens(l)) / 100)`` over ranked pairs.

    ``token_diffs``: ``tokens(w) - tokens(l)`` per ranked pair, w the preferred completion. Returns alpha in
    logits per 100 tokens (0.0 with no pairs or no length difference); positive when the labels prefer longer
    completions. A normal prior N(0, ``prior_sd``^2) keeps it finite when every pair prefers the longer
    completion (the likelihood alone has no maximum then). The reward-model loss then reads
    ``r + alpha * tokens / 100``, so r is fitted to what length does not explain: the logistic length term
    of AlpacaEval's length-controlled win rate (Dubois et al. 2024, arXiv 2404.04475), fitted once on the
    labels, with the quality part read at equal length (cf. Park et al. 2024, arXiv 2403.19159, which
    regularises length inside the preference objective).
    """
    from scipy.optimize import minimize_scalar

    x = np.asarray(token_diffs, dtype=np.float64) / 100.0
    if x.size == 0 or not x.any():
        return 0.0

    def neg_log_posterior(a: float) -> float:
        return float(np.logaddexp(0.0, -a * x).sum() + 0.5 * (a / prior_sd) ** 2)

    bound = 10.0 * prior_sd
    return float(minimize_scalar(neg_log_posterior, bounds=(-bound, bound), method="bounded", options={"xatol": 1e-9}).x)


def pairwise_outcomes(rewards: torch.Tensor, valid: torch.Tensor, levels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per ranked pair, whether the reward model orders it as ranked: 1 if r_w > r_l, 0.5 if equal, 0 if not.

    Shapes as in :func:`kwise_ranking_loss`. Returns ``(outcomes [B, K, K] float, pair [B, K, K]
    bool)``; ``outcomes`` is 0 where ``pair`` is False. The mean of ``outcomes[pair]`` is the
    pairwise accuracy (paper section 3.5 reports RM accuracy this way); tied pairs never count.
    """
    pair = ranked_pairs(valid, levels)
    diff = rewards.unsqueeze(2) - rewards.unsqueeze(1)
    outcomes = torch.where(diff > 0, 1.0, torch.where(diff == 0, 0.5, 0.0)).to(rewards.dtype)
    return outcomes * pair, pair


def kl_penalized_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards for PPO: a KL penalty at every token, the RM score at the last one.

    ``r_t = -beta * (log pi_RL(y_t) - log pi_SFT(y_t))`` for each response token, plus ``scores[b]``
    added at the last token where ``mask`` is 1 (paper eq. 2, Ziegler et al. 2019 section 2.2).
    Shapes: ``scores [B]``, ``logprobs/ref_logprobs/mask [B, T]`` (mask 1 on response tokens,
    right-padded). Returns ``(rewards [B, T], kl [B, T])`` where ``kl`` is the per-token
    log-ratio estimate (zero outside the mask).
    """
    mask = mask.to(logprobs.dtype)
    kl = (logprobs - ref_logprobs) * mask
    rewards = -beta * kl
    last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(-1)
    rewards[torch.arange(rewards.shape[0]), last] += scores.to(rewards.dtype)
    return rewards, kl


def leave_one_out_scores(scores: torch.Tensor, samples_per_prompt: int) -> torch.Tensor:
    """Each episode's score minus the mean score of the other samples of its prompt (the leave-one-out baseline).

    ``scores [B]`` holds ``B / k`` groups of ``k = samples_per_prompt`` consecutive episodes of one prompt each;
    returns ``[B]`` with ``s_i - (sum_j s_j - s_i) / (k - 1)`` within each group (RLOO: Kool et al. 2019, "Buy 4
    REINFORCE samples, get a baseline for free"; Ahmadian et al. 2024, arXiv 2402.14740, eq. 6). The baseline does
    not depend on the episode it is subtracted from, so the policy gradient stays unbiased; it equals
    ``k / (k - 1) * (s_i - mean_group)``. Raises ``ValueError`` if ``k`` < 2 or ``B`` is not a multiple of ``k``.
    """
    k = samples_per_prompt
    if k < 2 or scores.ndim != 1 or scores.shape[0] % k:
        raise ValueError(f"leave_one_out_scores: need samples_per_prompt >= 2 dividing the batch, got {k} for shape {tuple(scores.shape)}")
    groups = scores.view(-1, k)
    baseline = (groups.sum(-1, keepdim=True) - groups) / (k - 1)
    return (groups - baseline).view(-1)


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16) over response tokens.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``, with
    V and A zero after the last valid token (the episode ends at EOS). Shapes ``[B, T]``;
    ``mask`` is 1 on response tokens (right-padded). Returns ``(advantages, returns)`` with
    ``returns = advantages + values``, both zero outside the mask. InstructGPT uses gamma=1.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * mask[:, t]
        next_value = values[:, t]
        adv[:, t] = next_adv
    return adv, (adv + values) * mask


def ppo_policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate (Schulman et al. 2017, eq. 7), to be minimised.

    ``loss = mean_t max(-A_t * rho_t, -A_t * clip(rho_t, 1-clip, 1+clip))`` with
    ``rho_t = exp(logprobs - old_logprobs)``; all ``[B, T]``, mean over masked tokens. Also returns
    ``clipfrac`` (share of tokens where the clipped branch is active) and ``approx_kl``
    (``mean 0.5 * (log rho)^2``, Schulman's low-variance KL estimate between old and new policy).
    """
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).float(), mask),
            "approx_kl": masked_mean(0.5 * log_ratio**2, mask),
        }
    return loss, stats


def ppo_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss: ``0.5 * mean_t max((V - R)^2, (clip(V, V_old +- clip) - R)^2)``.

    As in OpenAI's PPO2 baselines and Ziegler et al. 2019. Shapes ``[B, T]``. Returns
    ``(loss, clipfrac)``.
    """
    v_clipped = old_values + (values - old_values).clamp(-clip, clip)
    err = (values - returns) ** 2
    err_clipped = (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err, err_clipped), mask)
    return loss, masked_mean((err_clipped > err).float(), mask).detach()


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1 - Var[R - V] / Var[R]`` over masked tokens: 1 is a perfect critic, 0 a constant one."""
    var_r = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    resid = returns - values
    var_e = masked_mean((resid - masked_mean(resid, mask)) ** 2, mask)
    return 1.0 - var_e / var_r.clamp(min=1e-8)

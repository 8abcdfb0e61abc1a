"""The shape of a reward-over-KL curve along a PPO run, stated from the data (Gao et al. 2022, arXiv 2210.10760).

Gao et al. fit the gold reward of an RL policy as a function of ``d = sqrt(KL(pi || pi_init))`` (KL in
nats): ``R(d) = d (alpha - beta log d)`` (their eq. for RL, section 3), with ``R`` measured from the
initial policy's reward. It rises while ``log d < alpha / beta - 1`` and peaks at
``d* = exp(alpha / beta - 1)``: over-optimisation is ``beta > 0`` with ``d*`` inside the run.
:func:`reward_shape` fits that form to one run's logged (KL, mean reward) points by least squares (weighted by
the points' standard errors when it has them: a probe's, or the batch means' of a train log; paired over prompts
when a probe recorded each prompt's reward) and says which of four shapes the points
have, beside a rank correlation with KL that needs no model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

SHAPES = ("rising", "peaked", "falling", "flat")


@dataclass(frozen=True)
class RewardShape:
    """One reward curve along KL. ``alpha``, ``beta``: Gao et al.'s coefficients (reward units per sqrt-nat);
    ``peak_kl``: the fitted peak's KL (nats; ``inf`` when the fit has no maximum, ``beta <= 0``);
    ``max_kl``: the run's largest KL; ``spearman``/``p_value``: rank correlation of reward with KL and its
    two-sided p-value (scipy); ``n``: points used; ``shape``: one of :data:`SHAPES`
    (see :func:`reward_shape`); ``text``: a one-line statement of it with the numbers."""

    alpha: float
    beta: float
    peak_kl: float
    max_kl: float
    spearman: float
    p_value: float
    n: int
    shape: str
    text: str


def _one_sided_p(X: np.ndarray, y: np.ndarray, coef: np.ndarray) -> float:
    """One-sided p-value of ``coef[1] > 0`` from the OLS t statistic (``n - 2`` degrees of freedom); 0 for an exact
    fit with ``coef[1] > 0``, 1 with no degrees of freedom left."""
    dof = len(y) - X.shape[1]
    if dof <= 0:
        return 1.0
    resid = y - X @ coef
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.pinv(X.T @ X)
    se = math.sqrt(max(cov[1, 1], 0.0))
    if se == 0.0:
        return 0.0 if coef[1] > 0 else 1.0
    return float(stats.t.sf(coef[1] / se, dof))


def _weighted_fit(X: np.ndarray, y: np.ndarray, se: np.ndarray, j: int) -> tuple[np.ndarray, float, int]:
    """Weighted least squares of ``y`` on ``X`` with known standard errors ``se`` of ``y``: ``(coef, se of coef[j],
    dof)``. The coefficients' covariance is ``(X' W X)^-1`` (``W = 1 / se^2``), scaled up by the reduced chi-square
    when the points scatter more than their standard errors say (never down), with ``n - p`` degrees of freedom."""
    w = 1.0 / se
    Xw, yw = X * w[:, None], y * w
    coef, *_ = np.linalg.lstsq(Xw, yw, rcond=None)
    dof = len(y) - X.shape[1]
    resid = yw - Xw @ coef
    scale = max(1.0, float(resid @ resid) / dof) if dof > 0 else 1.0
    cov = np.linalg.pinv(Xw.T @ Xw) * scale
    return coef, math.sqrt(max(float(cov[j, j]), 0.0)), dof


def _designs(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Design matrices ``[T, 3]`` of ``R(d) = c + d (alpha - beta log d)`` (columns 1, d, -d log d) and ``[T, 2]`` of the
    line ``R(d) = c + slope d``, at ``d = sqrt(max(kl, 0))`` (``d log d`` = 0 at ``d`` = 0)."""
    d = np.sqrt(np.clip(k, 0.0, None))
    dlogd = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    return np.column_stack([np.ones_like(d), d, -dlogd]), np.column_stack([np.ones_like(d), d])


def _weighted_shape_stats(k: np.ndarray, r: np.ndarray, se: np.ndarray) -> tuple[float, float, float, float, float, float, float]:
    """With the points' standard errors: ``(intercept, alpha, beta, one-sided p of beta > 0, slope, two-sided p of
    the slope, episodes factor)`` of ``R(d) = c + d (alpha - beta log d)`` and of the line ``R(d) = c + slope d`` over every point
    (``d = sqrt(max(kl, 0))``; ``d log d`` = 0 at ``d`` = 0). The initial policy's reward ``c`` is fitted, not taken
    from the first point, whose own sampling error would otherwise shift every later point alike."""
    gao, line_x = _designs(k)
    coef, se_beta, dof = _weighted_fit(gao, r, se, 2)
    p_beta = float(stats.t.sf(coef[2] / se_beta, max(dof, 1))) if se_beta > 0 else (0.0 if coef[2] > 0 else 1.0)
    line, se_slope, dof1 = _weighted_fit(line_x, r, se, 1)
    p_slope = float(2 * stats.t.sf(abs(line[1]) / se_slope, max(dof1, 1))) if se_slope > 0 else 1.0
    # standard errors shrink as 1 / sqrt(episodes): the slope's t statistic reaches the critical value with this many
    # times the episodes behind each point (the slope's own size held; inf for a slope of 0)
    t = abs(line[1]) / se_slope if se_slope > 0 else math.inf
    factor = (float(stats.t.isf(0.025, max(dof1, 1))) / t) ** 2 if t > 0 else math.inf
    return float(coef[0]), float(coef[1]), float(coef[2]), p_beta, float(line[1]), p_slope, factor


def _paired_shape_stats(k: np.ndarray, per_prompt: np.ndarray) -> tuple[float, float, float, float, float, float, float]:
    """With each prompt's reward at every point (``per_prompt [n, T]``, the probe's fixed prompts): the same seven
    numbers as :func:`_weighted_shape_stats` (the factor in prompts rather than episodes per point), by the two-stage
    (summary-statistic) method for repeated measures: each prompt's own curve is fitted by least squares on the common
    design, and a coefficient's test is a one-sample t-test of its per-prompt values over prompts (``n - 1`` degrees of
    freedom). The coefficients are those of the fit to the mean curve; their errors come from how prompts differ,
    so they hold whatever the correlation between a prompt's points (the probe's common random numbers make it
    positive, which the weighted test cannot use)."""
    n = per_prompt.shape[0]
    gao_x, line_x = _designs(k)
    gao, *_ = np.linalg.lstsq(gao_x, per_prompt.T, rcond=None)  # [3, n]
    line, *_ = np.linalg.lstsq(line_x, per_prompt.T, rcond=None)  # [2, n]

    def mean_t(x: np.ndarray) -> tuple[float, float]:
        m, sd = float(x.mean()), float(x.std(ddof=1))
        return m, (m / (sd / math.sqrt(n)) if sd > 0 else (math.copysign(math.inf, m) if m != 0 else 0.0))

    c0, alpha = float(gao[0].mean()), float(gao[1].mean())
    beta, t_beta = mean_t(gao[2])
    slope, t_slope = mean_t(line[1])
    p_beta = float(stats.t.sf(t_beta, n - 1))
    p_slope = float(2 * stats.t.sf(abs(t_slope), n - 1))
    # standard errors shrink as 1 / sqrt(prompts): the slope's t statistic reaches the critical value with this many
    # times the probe's prompts (the slope's own size held; inf for a slope of 0)
    factor = (float(stats.t.isf(0.025, n - 1)) / abs(t_slope)) ** 2 if t_slope != 0 else math.inf
    return c0, alpha, beta, p_beta, slope, p_slope, factor


def reward_shape(kl: Sequence[float], reward: Sequence[float], se: Sequence[float] | None = None,
                 alpha_level: float = 0.05, per_prompt: Sequence[Sequence[float]] | None = None) -> RewardShape:
    """Fit ``R(d) - R_0 = d (alpha - beta log d)`` (``d = sqrt(kl)``, ``R_0`` the reward at the point of smallest KL)
    over the points with ``kl > 0`` and classify the curve:

    - ``peaked``: ``beta > 0`` significantly (one-sided OLS t-test at ``alpha_level``), the fitted peak lies inside the run (``peak_kl < max_kl``), the reward at the
      largest KL is below the fitted peak, and the highest observed reward is neither the first nor the last
      point in KL order (the gold curve of over-optimisation);
    - ``rising`` / ``falling``: no peak inside the run and the rank correlation with KL is significantly
      positive / negative at ``alpha_level``;
    - ``flat``: neither (the points do not say which way the reward goes).

    With ``se``, each point's standard error (reward units; a probe's, :mod:`trainers.probe`, or a train log's
    ``reward_se`` / ``gold_reward_se`` over one iteration's episodes), the tests use it: the
    form ``R(d) = c + d (alpha - beta log d)`` is fitted by weighted least squares over every point with the initial
    reward ``c`` fitted too (a noisy first point no longer drags the whole curve), the one-sided test of ``beta > 0``
    uses the coefficients' variance from the standard errors (or from the scatter, when that is larger), and
    ``rising`` / ``falling`` need the weighted straight line's slope on ``d`` to differ from 0 at ``alpha_level``
    as well as the rank correlation. Points whose standard errors are as large as the changes between them are then
    ``flat``, however the OLS fit without them would read. (The probe's points share their random numbers, so they
    are positively correlated and their differences vary less than independent errors say: the tests are
    conservative.)

    With ``per_prompt`` (``[n prompts][T points]``: each probe prompt's reward at every point, whose means over
    prompts are ``reward``), the tests are paired instead (:func:`_paired_shape_stats`): the same fits and decision
    rules, with each coefficient tested over prompts, so the correlation between a prompt's points is used rather
    than ignored; ``se`` is then not used.

    ``kl``, ``reward``: aligned per-step values (nats per episode; reward units). Raises ``ValueError`` with
    fewer than 3 points of positive KL, different lengths, a non-finite value, a standard error that is not
    finite and positive, or a ``per_prompt`` that is not a finite ``[n >= 2, T]`` array whose column means are ``reward``.
    """
    k, r = np.asarray(kl, dtype=float), np.asarray(reward, dtype=float)
    if k.shape != r.shape:
        raise ValueError(f"reward_shape: {k.size} KL values vs {r.size} rewards")
    if not (np.isfinite(k).all() and np.isfinite(r).all()):
        raise ValueError("reward_shape: non-finite KL or reward")
    e = None if se is None else np.asarray(se, dtype=float)
    if e is not None and e.shape != r.shape:
        raise ValueError(f"reward_shape: {e.size} standard errors vs {r.size} rewards")
    if e is not None and not (np.isfinite(e).all() and (e > 0).all()):
        raise ValueError("reward_shape: a standard error that is not finite and positive")
    pp = None if per_prompt is None else np.asarray(per_prompt, dtype=float)
    if pp is not None:
        if pp.ndim != 2 or pp.shape[1] != r.size or pp.shape[0] < 2:
            raise ValueError(f"reward_shape: per_prompt has shape {pp.shape}; need [prompts >= 2, {r.size} points]")
        if not np.isfinite(pp).all() or not np.allclose(pp.mean(0), r, rtol=1e-6, atol=1e-6):
            raise ValueError("reward_shape: per_prompt is not finite or its means over prompts are not the rewards")
    r0 = float(r[int(np.argmin(k))])
    keep = k > 0
    if keep.sum() < 3:
        raise ValueError(f"reward_shape: {int(keep.sum())} points with KL > 0; need 3")
    d, y = np.sqrt(k[keep]), r[keep] - r0
    if pp is not None:
        c0, alpha, beta, beta_p, slope, slope_p, factor = _paired_shape_stats(k, pp)
        y = r[keep] - c0
    elif e is None:
        X = np.column_stack([d, -d * np.log(d)])
        (alpha, beta), *_ = np.linalg.lstsq(X, y, rcond=None)
        beta_p = _one_sided_p(X, y, np.array([alpha, beta]))
        slope_p = None
    else:
        c0, alpha, beta, beta_p, slope, slope_p, factor = _weighted_shape_stats(k, r, e)
        y = r[keep] - c0  # the fitted initial reward replaces the first point as the curve's origin
    used = (f", paired over {pp.shape[0]} prompts" if pp is not None else ", standard errors used" if e is not None else "")
    exponent = 2 * (alpha / beta - 1) if beta > 0 else math.inf
    peak_kl = math.exp(exponent) if exponent < 700 else math.inf  # beyond e^700 nats: no peak in any run
    max_kl = float(k.max())
    if np.ptp(r) == 0 or np.ptp(k) == 0:  # a constant has no rank correlation
        rho, p = 0.0, 1.0
    else:
        rho, p = (float(x) for x in stats.spearmanr(k, r))
    last = float(y[int(np.argmax(k[keep]))])
    peak_value = math.sqrt(peak_kl) * (alpha - beta * math.log(math.sqrt(peak_kl))) if math.isfinite(peak_kl) else math.inf
    order = np.argsort(k, kind="stable")
    best = int(np.argmax(r[order]))  # the highest observed reward, in KL order
    interior = 0 < best < k.size - 1
    if math.isfinite(peak_kl) and peak_kl < max_kl and last < peak_value and interior and beta_p < alpha_level:
        shape = "peaked"
        text = (f"peaked: the fitted curve peaks at KL {peak_kl:.3g} nats inside the run (max KL {max_kl:.3g}) and is "
                f"lower at the end (Gao et al. fit alpha {alpha:.3g}, beta {beta:.3g}, one-sided p = {beta_p:.2g} for beta > 0"
                f"{used})")
    elif p < alpha_level and rho != 0 and (slope_p is None or (slope_p < alpha_level and (slope > 0) == (rho > 0))):
        shape = "rising" if rho > 0 else "falling"
        where = f"fitted peak at KL {peak_kl:.3g} beyond the run's max {max_kl:.3g}" if math.isfinite(peak_kl) else "no fitted peak"
        line = ("" if slope_p is None else f"; paired slope {slope:+.3g} per sqrt-nat (p = {slope_p:.2g}, over {pp.shape[0]} prompts)"
                if pp is not None else f"; weighted slope {slope:+.3g} per sqrt-nat (p = {slope_p:.2g}, standard errors used)")
        text = f"{shape}: Spearman {rho:+.2f} with KL (p = {p:.2g}, n = {k.size}){line}; {where}"
    else:
        shape = "flat"
        if slope_p is None:
            text = (f"flat or undetermined: Spearman {rho:+.2f} with KL (p = {p:.2g}, n = {k.size}) is not significant at "
                    f"{alpha_level:g} and no peak is fitted inside the run")
        elif pp is not None:
            text = (f"flat or undetermined, paired over the probe's {pp.shape[0]} prompts: slope {slope:+.3g} per sqrt-nat "
                    f"(p = {slope_p:.2g}), one-sided p = {beta_p:.2g} for a peak (beta > 0), Spearman {rho:+.2f} of the means "
                    f"(p = {p:.2g}, n = {k.size}); none significant at {alpha_level:g}"
                    + (f"; a slope this size needs about {factor:.1f}x the probe's prompts" if math.isfinite(factor) and factor > 1 else ""))
        else:
            text = (f"flat or undetermined with the points' standard errors (median {float(np.median(e)):.2g}): weighted "
                    f"slope {slope:+.3g} per sqrt-nat (p = {slope_p:.2g}), one-sided p = {beta_p:.2g} for a peak (beta > 0), "
                    f"Spearman {rho:+.2f} (p = {p:.2g}, n = {k.size}); none significant at {alpha_level:g}"
                    + (f"; a slope this size needs about {factor:.1f}x the episodes behind each point" if math.isfinite(factor) and factor > 1 else ""))
    return RewardShape(float(alpha), float(beta), peak_kl, max_kl, rho, p, int(k.size), shape, text)

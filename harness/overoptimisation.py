"""The shape of a reward-over-KL curve along a PPO run, stated from the data (Gao et al. 2022, arXiv 2210.10760).

Gao et al. fit the gold reward of an RL policy as a function of ``d = sqrt(KL(pi || pi_init))`` (KL in
nats): ``R(d) = d (alpha - beta log d)`` (their eq. for RL, section 3), with ``R`` measured from the
initial policy's reward. It rises while ``log d < alpha / beta - 1`` and peaks at
``d* = exp(alpha / beta - 1)``: over-optimisation is ``beta > 0`` with ``d*`` inside the run.
:func:`reward_shape` fits that form to one run's logged (KL, mean reward) points by least squares and
says which of four shapes the points have, beside a rank correlation with KL that needs no model.
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


def reward_shape(kl: Sequence[float], reward: Sequence[float], alpha_level: float = 0.05) -> RewardShape:
    """Fit ``R(d) - R_0 = d (alpha - beta log d)`` (``d = sqrt(kl)``, ``R_0`` the reward at the point of smallest KL)
    over the points with ``kl > 0`` and classify the curve:

    - ``peaked``: ``beta > 0`` significantly (one-sided OLS t-test at ``alpha_level``), the fitted peak lies inside the run (``peak_kl < max_kl``), the reward at the
      largest KL is below the fitted peak, and the highest observed reward is neither the first nor the last
      point in KL order (the gold curve of over-optimisation);
    - ``rising`` / ``falling``: no peak inside the run and the rank correlation with KL is significantly
      positive / negative at ``alpha_level``;
    - ``flat``: neither (the points do not say which way the reward goes).

    ``kl``, ``reward``: aligned per-step values (nats per episode; reward units). Raises ``ValueError`` with
    fewer than 3 points of positive KL, different lengths, or a non-finite value.
    """
    k, r = np.asarray(kl, dtype=float), np.asarray(reward, dtype=float)
    if k.shape != r.shape:
        raise ValueError(f"reward_shape: {k.size} KL values vs {r.size} rewards")
    if not (np.isfinite(k).all() and np.isfinite(r).all()):
        raise ValueError("reward_shape: non-finite KL or reward")
    r0 = float(r[int(np.argmin(k))])
    keep = k > 0
    if keep.sum() < 3:
        raise ValueError(f"reward_shape: {int(keep.sum())} points with KL > 0; need 3")
    d, y = np.sqrt(k[keep]), r[keep] - r0
    X = np.column_stack([d, -d * np.log(d)])
    (alpha, beta), *_ = np.linalg.lstsq(X, y, rcond=None)
    beta_p = _one_sided_p(X, y, np.array([alpha, beta]))
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
                f"lower at the end (Gao et al. fit alpha {alpha:.3g}, beta {beta:.3g}, one-sided p = {beta_p:.2g} for beta > 0)")
    elif p < alpha_level and rho != 0:
        shape = "rising" if rho > 0 else "falling"
        where = f"fitted peak at KL {peak_kl:.3g} beyond the run's max {max_kl:.3g}" if math.isfinite(peak_kl) else "no fitted peak"
        text = f"{shape}: Spearman {rho:+.2f} with KL (p = {p:.2g}, n = {k.size}); {where}"
    else:
        shape = "flat"
        text = (f"flat or undetermined: Spearman {rho:+.2f} with KL (p = {p:.2g}, n = {k.size}) is not significant at "
                f"{alpha_level:g} and no peak is fitted inside the run")
    return RewardShape(float(alpha), float(beta), peak_kl, max_kl, rho, p, int(k.size), shape, text)

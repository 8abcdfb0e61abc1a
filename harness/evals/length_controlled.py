"""Length-controlled (LC) win rate: the AlpacaEval 2.0 GLM with the length term set to zero.

Pure statistics on per-prompt win records (``win``, ``output``, ``baseline_output``; with several samples a side
``pair_wins``, ``outputs``, ``baseline_outputs``: every sample pair is one comparison); used by the winrate eval (:mod:`harness.evals.winrate`). Sources in :func:`length_controlled_win_rate`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy import stats
from scipy.special import expit

from harness.stats import Estimate

# AlpacaEval 2.0 (Dubois et al. 2024, "Length-Controlled AlpacaEval", arXiv 2404.04475;
# alpaca_eval/metrics/glm_winrate.py, GLM "length_controlled_v1").

LC_RIDGE = 1e-2  # fallback ridge strength on the non-intercept terms when the unpenalised MLE does not exist
LC_MAX_COEF = 20.0  # |coefficient| (logit units) beyond which the unpenalised fit is taken as diverging (separation)


def _char_len(text: str) -> float:
    return float(len(text))


def comparisons(item: Mapping, pid: object = None) -> list[tuple[float, str, str]]:
    """The single comparisons ``(win, output, baseline_output)`` of one win-rate item.

    An item of one output a side is one comparison; an item with ``pair_wins`` (``samples_per_prompt`` > 1,
    :func:`harness.evals.winrate.winrate_items`) holds ``len(outputs) x len(baseline_outputs)`` of them, policy
    sample ``s`` against baseline sample ``t`` at ``pair_wins[s * len(baseline_outputs) + t]``. Raises
    ``ValueError`` naming the prompt id (``pid``, default the item's ``prompt_id``) and field when a field is missing,
    ``pair_wins`` has the wrong length, or a win is outside [0, 1]."""
    pid = item.get("prompt_id") if pid is None else pid
    if "pair_wins" in item:
        for key in ("outputs", "baseline_outputs"):
            if not item.get(key):
                raise ValueError(f"length-controlled win rate: item prompt_id={pid} has pair_wins but no field {key!r}")
        outs, bouts, wins = item["outputs"], item["baseline_outputs"], item["pair_wins"]
        if len(wins) != len(outs) * len(bouts):
            raise ValueError(f"length-controlled win rate: item prompt_id={pid} has {len(wins)} pair_wins for "
                             f"{len(outs)} x {len(bouts)} outputs")
        pairs = [(w, outs[k // len(bouts)], bouts[k % len(bouts)]) for k, w in enumerate(wins)]
    else:
        for key in ("win", "output", "baseline_output"):
            if item.get(key) is None:
                raise ValueError(f"length-controlled win rate: item prompt_id={pid} has no field {key!r}")
        pairs = [(item["win"], item["output"], item["baseline_output"])]
    for w, _, _ in pairs:
        if w is None or not 0.0 <= float(w) <= 1.0:
            raise ValueError(f"length-controlled win rate: item prompt_id={pid} field 'win' = {w} is outside [0, 1]")
    return [(float(w), o, b) for w, o, b in pairs]


def lc_design(items: Sequence[Mapping], length_fn: Callable[[str], float] = _char_len,
              difficulty_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Response vector y (N,) and design matrix X (N, 2 or 3) of the length-controlled GLM, one row per
    comparison (:func:`comparisons`: one per item, or every sample pair of an item with several samples a side),
    the rows of an item consecutive.

    Columns: intercept (AlpacaEval's ``not_gamed_baseline`` column, i.e. theta_policy - theta_baseline),
    ``tanh(d / sd(d))`` with ``d = length_fn(output) - length_fn(baseline_output)`` and ``sd`` the
    sample standard deviation (ddof=1) without subtracting the mean, as AlpacaEval's
    ``delta_len / delta_len.std()``, and, when
    ``difficulty_key`` is given, the items' per-instruction difficulty gamma_x. When every d is 0 the
    length column is 0 (no length information). Raises ``ValueError`` naming the prompt id and field
    when an item lacks ``win``, ``output`` or ``baseline_output`` (or the difficulty), or ``win`` is
    outside [0, 1].
    """
    y, d, g = [], [], []
    for i, it in enumerate(items):
        pid = it.get("prompt_id", i)
        if difficulty_key and it.get(difficulty_key) is None:
            raise ValueError(f"length-controlled win rate: item prompt_id={pid} has no field {difficulty_key!r}")
        for w, out, base in comparisons(it, pid):
            y.append(w)
            d.append(length_fn(out) - length_fn(base))
            if difficulty_key:
                g.append(float(it[difficulty_key]))
    d_arr = np.asarray(d, dtype=float)
    sd = float(d_arr.std(ddof=1)) if d_arr.size > 1 else 0.0
    length_term = np.tanh(d_arr / sd) if sd > 0 else np.zeros_like(d_arr)
    cols = [np.ones_like(d_arr), length_term] + ([np.asarray(g, dtype=float)] if difficulty_key else [])
    return np.asarray(y, dtype=float), np.column_stack(cols)


def _fit_lc_glm(y: np.ndarray, X: np.ndarray, ridge: float) -> np.ndarray:
    """Parameters (X.shape[1],) of the fractional-logit GLM: unpenalised MLE, or a ridge on the
    non-intercept terms when the MLE does not exist. A term that does not vary (e.g. every output
    equally longer) is collinear with the intercept and gets coefficient 0."""
    keep = [0] + [j for j in range(1, X.shape[1]) if np.ptp(X[:, j]) > 0]
    params = np.zeros(X.shape[1])
    params[keep] = _fit_glm_columns(y, X[:, keep], ridge)
    return params


def _fit_glm_columns(y: np.ndarray, X: np.ndarray, ridge: float) -> np.ndarray:
    import statsmodels.api as sm  # here: most fits never get this far (see length_controlled_win_rate)
    from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

    model = sm.GLM(y, X, family=sm.families.Binomial())
    with warnings.catch_warnings():
        # statsmodels also warns "perfect prediction" when fractional responses are fitted exactly, which
        # is fine; a separated data set shows up as diverging coefficients instead, caught below
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = model.fit()
            if res.converged and np.all(np.abs(res.params) < LC_MAX_COEF):
                return np.asarray(res.params)
        except (PerfectSeparationError, np.linalg.LinAlgError):
            pass
    alpha = np.full(X.shape[1], ridge)
    alpha[0] = 0.0  # never shrink the intercept: it carries the win rate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.fit_regularized(alpha=alpha, L1_wt=0.0).params)


def length_controlled_win_rate(items: Sequence[Mapping], length_fn: Callable[[str], float] = _char_len, *,
                               difficulty_key: str | None = None, ridge: float = LC_RIDGE) -> float:
    """AlpacaEval-2.0-style length-controlled (LC) win rate of the policy, a fraction in [0, 1].

    Model (Dubois et al. 2024, arXiv 2404.04475, restricted to one policy/baseline pair): for prompt x,
    ``logit P(policy preferred) = b0 + b1 * tanh(d_x / sd(d)) [+ b2 * gamma_x]`` with d_x the length
    difference output - baseline_output in ``length_fn`` units (default: characters, as AlpacaEval's
    ``str.len()``; pass e.g. ``lambda s: len(tok(s).input_ids)`` for tokens). It is fitted by maximum
    likelihood (a binomial GLM, logit link) on the per-prompt preference ``win`` in {0, 0.5, 1}: by
    Newton-Raphson (:func:`_lc_newton`) without a difficulty term, else, or where Newton does not finish, as a
    statsmodels ``GLM(family=Binomial())`` (the two agree to 1e-8: tests/unit/test_winrate_lc.py). A tie enters as the fractional response 0.5 (a quasi-binomial
    "fractional logit"): its score equations are those of AlpacaEval's fit, which duplicates every
    row as y=1 with weight p and y=0 with weight 1-p. The LC win rate is the mean over prompts of the
    fitted probability with the length term set to 0, i.e. ``mean_x sigmoid(b0 [+ b2 * gamma_x])``
    (``sigmoid(b0)`` without a difficulty term).

    Kept from AlpacaEval: the tanh of the std-normalised length difference, the model-vs-baseline
    intercept, fractional preferences, "predict with zero length difference". Not kept: (1) the
    instruction-difficulty term gamma_x, which AlpacaEval estimates once across its whole
    leaderboard of models; with a single pair one prompt gives one observation, so a per-prompt term
    is not identifiable and we drop it, unless the caller supplies precomputed gamma_x in
    ``items[i][difficulty_key]``; (2) the L1 penalty chosen by 5-fold CV and the regularisation
    towards AlpacaEval's "gamed" (verbose/concise) baseline annotations, which we do not have.
    Instead the fit is unpenalised; only when its MLE does not exist (perfect separation, e.g. every
    longer output wins: the fit does not converge or a coefficient exceeds ``LC_MAX_COEF`` = 20 logits,
    far beyond any finite-data effect of a term bounded in [-1, 1]) do we refit with a ridge of strength ``ridge``
    on the non-intercept terms (statsmodels ``fit_regularized(L1_wt=0)``'s objective; without a difficulty term our
    batched Newton fit of it, :func:`_lc_ridge`), so the result stays finite. Since the resamples' fits were
    batched, a separated data set always gets the ridge fit; statsmodels' IRLS had sometimes stopped on one
    short of divergence and returned that instead.

    Degenerate inputs: a length term that does not vary across prompts (all length differences
    equal) cannot be told apart from the intercept and gets coefficient 0, so the LC win rate is
    then the fitted mean preference. If every ``win`` is equal (all wins, all losses or all ties) the fitted
    probability is that value everywhere and it is returned directly. Raises ``ValueError`` on no
    items or a malformed item (see :func:`lc_design`).
    """
    if not items:
        raise ValueError("length-controlled win rate: no items")
    y, X = lc_design(items, length_fn, difficulty_key)
    if np.all(y == y[0]):
        return float(y[0])
    if difficulty_key is None:  # the same MLE by Newton-Raphson (equal to 1e-8 in tests); statsmodels where it stops
        value = _lc_newton(y[None, :], X[None, :, 1])[0]
        if not np.isnan(value):
            return float(value)
    params = _fit_lc_glm(y, X, ridge)
    eta = params[0] + (X[:, 2] * params[2] if X.shape[1] > 2 else 0.0)
    return float(np.mean(expit(eta)))


def _lc_batch(y: np.ndarray, d: np.ndarray, max_iter: int = 50, tol: float = 1e-10) -> np.ndarray:
    """LC win rates of B resamples at once: ``y`` and ``d`` are ``(B, n)`` (preferences and length differences).

    The same model and degenerate cases as :func:`length_controlled_win_rate` without a difficulty term:
    ``tanh(d / sd(d))`` per resample (ddof=1), then :func:`_lc_newton`. Returns ``(B,)`` fractions, NaN where the
    fit does not finish (the caller refits those the slow way).
    """
    sd = d.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sd[:, None] > 0, np.tanh(d / np.where(sd > 0, sd, 1.0)[:, None]), 0.0)
    return _lc_newton(y, t, max_iter, tol)


def _lc_newton(y: np.ndarray, t: np.ndarray, max_iter: int = 50, tol: float = 1e-10) -> np.ndarray:
    """``sigmoid(b0)`` of the fractional-logit GLM ``logit p = b0 + b1 t`` fitted to each of B rows: ``y`` and the
    length term ``t`` are ``(B, n)``. All-equal preferences -> that value; a constant length term -> the
    intercept-only MLE ``sigmoid(logit(mean y)) = mean y``; otherwise Newton-Raphson on the log-likelihood (concave,
    so from 0 it reaches the MLE when one exists), the 2 x 2 Hessian inverted in closed form. A row whose fit does
    not converge in ``max_iter`` steps or whose coefficients exceed ``LC_MAX_COEF`` (separation: no MLE) gets the
    ridge fit (:func:`_lc_ridge`), NaN where that does not converge either (the caller then refits it with
    statsmodels). Returns ``(B,)`` fractions.
    """
    B = y.shape[0]
    out = np.full(B, np.nan)
    const_y = np.all(y == y[:, :1], axis=1)
    out[const_y] = y[const_y, 0]
    flat = ~const_y & (np.ptp(t, axis=1) == 0)
    out[flat] = y[flat].mean(axis=1)
    todo = ~const_y & ~flat
    if not todo.any():
        return out
    yy, tt = y[todo], t[todo]
    b0, b1 = np.zeros(len(yy)), np.zeros(len(yy))
    converged = np.zeros(len(yy), dtype=bool)
    for _ in range(max_iter):
        p = expit(b0[:, None] + b1[:, None] * tt)
        r, w = yy - p, p * (1.0 - p)
        g0, g1 = r.sum(axis=1), (r * tt).sum(axis=1)
        h00, h01, h11 = w.sum(axis=1), (w * tt).sum(axis=1), (w * tt * tt).sum(axis=1)
        det = h00 * h11 - h01 * h01
        with np.errstate(divide="ignore", invalid="ignore"):
            s0, s1 = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
        s0, s1 = np.where(converged, 0.0, s0), np.where(converged, 0.0, s1)
        b0, b1 = b0 + s0, b1 + s1
        converged |= (np.abs(s0) < tol) & (np.abs(s1) < tol)
        if converged.all() or not np.isfinite(b0).all():
            break
    ok = converged & (np.abs(b0) < LC_MAX_COEF) & (np.abs(b1) < LC_MAX_COEF)
    out[np.flatnonzero(todo)[ok]] = expit(b0[ok])
    if not ok.all():  # no MLE (separation): the ridge fit, as length_controlled_win_rate's fallback
        out[np.flatnonzero(todo)[~ok]] = _lc_ridge(yy[~ok], tt[~ok], LC_RIDGE)
    return out


def _lc_ridge(y: np.ndarray, t: np.ndarray, ridge: float, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """``sigmoid(b0)`` of the ridge fit of the same GLM for each of B rows (``y``, ``t``: ``(B, n)``, preferences
    not all equal): the minimiser of ``-loglik(b) / n + ridge / 2 * b1^2``, statsmodels'
    ``GLM.fit_regularized(alpha=[0, ridge], L1_wt=0)`` objective (the intercept is not shrunk), which is strictly
    convex here, by Newton-Raphson from 0 with step halving. Equal to statsmodels' fit to 1e-6
    (tests/unit/test_winrate_lc.py). A row that does not converge is NaN (the caller refits it with statsmodels).
    Returns ``(B,)`` fractions."""
    n = y.shape[1]
    b = np.zeros((len(y), 2))
    converged = np.zeros(len(y), dtype=bool)

    def objective(b: np.ndarray) -> np.ndarray:
        eta = b[:, :1] + b[:, 1:] * t
        loglik = (y * eta - np.logaddexp(0.0, eta)).sum(axis=1)
        return -loglik / n + ridge / 2 * b[:, 1] ** 2

    for _ in range(max_iter):
        p = expit(b[:, :1] + b[:, 1:] * t)
        r, w = y - p, p * (1.0 - p)
        g = np.stack([-r.sum(axis=1) / n, -(r * t).sum(axis=1) / n + ridge * b[:, 1]], axis=1)
        h00, h01 = w.sum(axis=1) / n, (w * t).sum(axis=1) / n
        h11 = (w * t * t).sum(axis=1) / n + ridge
        det = h00 * h11 - h01 * h01
        with np.errstate(divide="ignore", invalid="ignore"):
            step = -np.stack([(h11 * g[:, 0] - h01 * g[:, 1]) / det, (h00 * g[:, 1] - h01 * g[:, 0]) / det], axis=1)
        step[converged] = 0.0
        before, scale = objective(b), np.ones(len(y))
        for _ in range(30):  # halve until the objective does not rise (Newton can overshoot on a flat likelihood)
            worse = objective(b + scale[:, None] * step) > before + 1e-15
            if not worse.any():
                break
            scale[worse] /= 2
        b = b + scale[:, None] * step
        converged |= np.all(np.abs(scale[:, None] * step) < tol, axis=1)
        if converged.all():
            break
    return np.where(converged & np.all(np.isfinite(b), axis=1), expit(b[:, 0]), np.nan)


def lc_win_rate_estimate(items: Sequence[Mapping], n_resamples: int = 2000, seed: int = 0, *,
                         length_fn: Callable[[str], float] = _char_len, difficulty_key: str | None = None,
                         confidence: float = 0.95) -> Estimate:
    """LC win rate with a percentile bootstrap interval over prompts (``scipy.stats.bootstrap``).

    Each resample draws prompts with replacement, each with all of its comparisons (several samples a side give
    several per prompt: a cluster bootstrap, as their wins are not independent), and refits the whole GLM, length
    normalisation included. Raises ``ValueError`` when items hold different numbers of comparisons. Degenerate resamples (all wins / all losses) give their constant value, never NaN
    (see :func:`length_controlled_win_rate`). With fewer than 2 items the interval is NaN, as in
    :func:`harness.stats.bootstrap_mean`.

    Without a difficulty term the resamples are fitted together (:func:`_lc_batch`, scipy's vectorised
    statistic: the same resampled indices and percentile interval as one fit per resample by
    :func:`length_controlled_win_rate`, tested in tests/unit/test_winrate_lc.py), separated resamples by the
    batched ridge fit (:func:`_lc_ridge`); a resample neither finishes is refitted by
    :func:`length_controlled_win_rate` (statsmodels). 2,000 resamples of 24 prompts take milliseconds, not the
    ~0.5 s that ~40 statsmodels fits of separated resamples took.
    """
    value = length_controlled_win_rate(items, length_fn, difficulty_key=difficulty_key)
    n = len(items)
    if n < 2:
        return Estimate(value, math.nan, math.nan, n)
    items = list(items)
    y, X = lc_design(items, length_fn, difficulty_key)
    if np.all(y == y[0]):
        return Estimate(value, value, value, n)
    rng = np.random.default_rng(seed)
    comps = [comparisons(it) for it in items]
    per_item = {len(c) for c in comps}
    if len(per_item) != 1:
        raise ValueError(f"length-controlled win rate: items hold different numbers of comparisons {sorted(per_item)}; "
                         "every prompt needs the same samples a side")
    pairs = per_item.pop()  # comparisons per prompt: a resample draws prompts, each with all of its comparisons
    if difficulty_key is None:
        d = np.asarray([length_fn(o) - length_fn(b) for c in comps for _, o, b in c], dtype=float)
        y2, d2 = y.reshape(n, pairs), d.reshape(n, pairs)

        def stat(idx: np.ndarray, axis: int = -1) -> np.ndarray:
            idx = np.asarray(idx, dtype=int)
            shape = idx.shape[:-1]
            flat = idx.reshape(-1, idx.shape[-1])
            got = _lc_batch(y2[flat].reshape(len(flat), -1), d2[flat].reshape(len(flat), -1))
            for b in np.flatnonzero(np.isnan(got)):
                got[b] = length_controlled_win_rate([items[int(i)] for i in flat[b]], length_fn)
            return got.reshape(shape)

        res = stats.bootstrap((np.arange(n),), stat, confidence_level=confidence, n_resamples=n_resamples,
                              method="percentile", vectorized=True, rng=rng)
    else:
        def stat(idx: np.ndarray) -> float:
            return length_controlled_win_rate([items[int(i)] for i in idx], length_fn, difficulty_key=difficulty_key)

        res = stats.bootstrap((np.arange(n),), stat, confidence_level=confidence, n_resamples=n_resamples,
                              method="percentile", vectorized=False, rng=rng)
    return Estimate(value, float(res.confidence_interval.low), float(res.confidence_interval.high), n)

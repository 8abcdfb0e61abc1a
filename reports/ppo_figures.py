"""The reward over-optimisation view of PPO training (Gao et al. 2022, arXiv 2210.10760).

Gao et al. plot the proxy reward (the reward model PPO optimises) and the gold reward (a reward
model it never sees) against the policy's KL divergence from its initialisation: the proxy keeps
rising while the gold reward peaks and falls once the policy over-optimises the proxy. Here the
gold reward is the held-out ``helpful`` judge logged as ``gold_reward_mean``; the proxy is
``reward_mean``; KL is ``kl`` (nats per episode, to the SFT policy). Numbers only, no model text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from reports.ci_figures import PALETTE, num
from reports.figures import order_policies

REWARDS: tuple[tuple[str, str, str], ...] = (
    ("reward_mean", "proxy reward (optimised RM)", "solid"),
    ("gold_reward_mean", "gold reward (held-out judge)", "dash"),
)


def kl_reward_rows(log: Sequence[Mapping[str, Any]], key: str) -> list[Mapping[str, Any]]:
    """The records of one training or probe log in step order that have a finite ``kl`` and ``key``."""
    steps = sorted(log, key=lambda s: num(s.get("step")) or 0.0)
    return [s for s in steps if num(s.get("kl")) is not None and num(s.get(key)) is not None]


def kl_reward_points(log: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    """``[(kl, reward)]`` of one training log in step order, skipping steps where either is
    missing or non-finite. ``key``: the reward field (``reward_mean`` or ``gold_reward_mean``)."""
    return [(num(s["kl"]), num(s[key])) for s in kl_reward_rows(log, key)]


def overoptimisation_figure(logs: Mapping[str, Sequence[Mapping[str, Any]]],
                            probes: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> go.Figure:
    """Proxy and gold reward against KL, one colour per run, solid = proxy, dashed = gold.

    ``logs`` maps a run name (``"ppo"``, ``"ppo_ptx"``) to its per-step log dicts; ``probes`` (optional) a run to its
    probe's points (:mod:`trainers.probe`: the same fixed held-out prompts at every point, with standard errors).
    A run with a probe is drawn from it (lines, 95 % error bars: 1.96 standard errors over prompts) and its per-batch
    means are faint markers (``"<run>: proxy, batch means"``); a run without one from its batch means, with error bars
    from their logged standard errors (``reward_se``, ``gold_reward_se``) where the log has them. Points keep
    step order (KL need not grow monotonically). A run or reward with no usable point gets no trace. Trace names
    are ``"<run>: proxy"`` / ``"<run>: gold"``.
    """
    probes = probes or {}
    fig = go.Figure()
    for i, run in enumerate(order_policies(logs.keys() | probes.keys())):
        color = PALETTE[i % len(PALETTE)]
        for key, label, dash in REWARDS:
            short = "proxy" if key == "reward_mean" else "gold"
            main, faint = (probes[run], logs.get(run, [])) if probes.get(run) else (logs.get(run, []), [])
            pts = kl_reward_points(main, key)
            if pts:
                se = [num(s.get(key.removesuffix("_mean") + "_se")) for s in kl_reward_rows(main, key)]
                bars = dict(type="data", array=[1.96 * e if e is not None else 0.0 for e in se]) if any(e is not None for e in se) else None
                fig.add_trace(go.Scatter(
                    x=[k for k, _ in pts], y=[r for _, r in pts], mode="lines+markers", name=f"{run}: {short}",
                    line=dict(color=color, dash=dash), error_y=bars,
                    hovertemplate="KL %{x:.3g}: %{y:.4g}<extra>" + f"{run}, {label}" + "</extra>"))
            if fpts := kl_reward_points(faint, key):
                fig.add_trace(go.Scatter(
                    x=[k for k, _ in fpts], y=[r for _, r in fpts], mode="markers", name=f"{run}: {short}, batch means",
                    marker=dict(color=color, opacity=0.3, symbol="circle-open" if short == "gold" else "circle"),
                    hovertemplate="KL %{x:.3g}: %{y:.4g}<extra>" + f"{run}, {label}, one batch" + "</extra>"))
    fig.update_layout(title="Reward over-optimisation: proxy vs gold reward against KL (Gao et al. 2022)",
                      xaxis_title="KL(π_RL ‖ π_SFT), nats per episode", yaxis_title="mean reward per episode",
                      height=440, legend_title_text="run: reward")
    return fig

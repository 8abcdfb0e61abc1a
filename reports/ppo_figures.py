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


def kl_reward_points(log: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    """``[(kl, reward)]`` of one training log in step order, skipping steps where either is
    missing or non-finite. ``key``: the reward field (``reward_mean`` or ``gold_reward_mean``)."""
    steps = sorted(log, key=lambda s: num(s.get("step")) or 0.0)
    pts = [(num(s.get("kl")), num(s.get(key))) for s in steps]
    return [(k, r) for k, r in pts if k is not None and r is not None]


def overoptimisation_figure(logs: Mapping[str, Sequence[Mapping[str, Any]]]) -> go.Figure:
    """Proxy and gold reward against KL, one colour per run, solid = proxy, dashed = gold.

    ``logs`` maps a run name (``"ppo"``, ``"ppo_ptx"``) to its per-step log dicts. Points keep
    step order (KL need not grow monotonically). A run or reward with no usable point gets no
    trace. Trace names are ``"<run>: proxy"`` / ``"<run>: gold"``.
    """
    fig = go.Figure()
    for i, run in enumerate(order_policies(logs.keys())):
        for key, label, dash in REWARDS:
            pts = kl_reward_points(logs[run], key)
            if not pts:
                continue
            short = "proxy" if key == "reward_mean" else "gold"
            fig.add_trace(go.Scatter(
                x=[k for k, _ in pts], y=[r for _, r in pts], mode="lines+markers", name=f"{run}: {short}",
                line=dict(color=PALETTE[i % len(PALETTE)], dash=dash),
                hovertemplate="KL %{x:.3g}: %{y:.4g}<extra>" + f"{run}, {label}" + "</extra>"))
    fig.update_layout(title="Reward over-optimisation: proxy vs gold reward against KL (Gao et al. 2022)",
                      xaxis_title="KL(π_RL ‖ π_SFT), nats per episode", yaxis_title="mean reward per episode",
                      height=440, legend_title_text="run: reward")
    return fig

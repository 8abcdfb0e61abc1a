"""Pure plotly figure builders for the run report.

Each function takes plain data (a pandas DataFrame or a list of dicts shaped like
:class:`harness.records.ResultRow`, or per-step training-log dicts) and returns a
``plotly.graph_objects.Figure``. Nothing here reads files or writes HTML, and no model or
instruction text ever goes into a figure: only policy / eval / baseline names and numbers.

Fractions (win rate, accuracy) stay fractions in the data (0-1); the axes format them as %.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

POLICY_ORDER: tuple[str, ...] = ("base", "sft", "ppo", "ppo_ptx")
"""Canonical policy order (paper's pipeline order); other policies follow in first-seen order."""

HUMAN_AGREEMENT = 0.726
"""Inter-labeler agreement among the paper's training labelers (72.6 ± 1.5 %, Ouyang et al. 2022)."""

PPO_CURVE_METRICS: tuple[tuple[str, str], ...] = (
    ("reward_mean", "mean reward (proxy RM, optimised)"),
    ("gold_reward_mean", "mean gold reward (held-out judge, not optimised)"),
    ("kl", "KL(π_RL ‖ π_SFT)"),
    ("ptx_loss", "pretraining (ptx) loss"),
)

_HEIGHT = 420


def order_policies(policies: Iterable[str], order: Sequence[str] = POLICY_ORDER) -> list[str]:
    """Unique policies: those in ``order`` first (in that order), the rest in first-seen order."""
    seen: list[str] = []
    for p in policies:
        if p not in seen:
            seen.append(p)
    known = [p for p in order if p in seen]
    return known + [p for p in seen if p not in order]


def _frame(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for col in ("policy", "value", "ci_low", "ci_high", "baseline", "eval", "n"):
        if col not in df.columns:
            df[col] = None
    return df


def num(x: Any) -> float | None:
    """A finite float, or None for None, NaN, infinities, booleans and non-numbers."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _bar(df: pd.DataFrame, x_order: list[str], name: str) -> go.Bar:
    """One bar trace over ``x_order`` with asymmetric 95 % CI error bars (missing CI: no bar)."""
    by_policy = {r["policy"]: r for r in df.to_dict("records")}
    xs = [p for p in x_order if p in by_policy]
    ys, plus, minus, texts = [], [], [], []
    for p in xs:
        r = by_policy[p]
        v, lo, hi = num(r["value"]), num(r["ci_low"]), num(r["ci_high"])
        ys.append(v)
        plus.append(None if v is None or hi is None else max(hi - v, 0.0))
        minus.append(None if v is None or lo is None else max(v - lo, 0.0))
        texts.append("" if v is None else f"{v:.1%}")
    return go.Bar(
        x=xs,
        y=ys,
        name=name,
        text=texts,
        textposition="outside",
        error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, visible=True),
        hovertemplate="%{x}: %{y:.1%}<extra>" + name + "</extra>",
    )


def _percent_axis(fig: go.Figure, title: str) -> None:
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title_text=title)


def rm_accuracy_figure(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> go.Figure:
    """Reward-model pairwise accuracy on held-out comparisons, with 95 % CI error bars.

    ``rows``: records with ``metric == "pairwise_accuracy"`` and ``policy`` in ``{"rm",
    "judge"}`` (proxy RM used for PPO, held-out judge RM; others are kept, after them).
    Dashed line at 0.5 (chance) and a dotted line at the paper's ~72.6 % human inter-labeler
    agreement (:data:`HUMAN_AGREEMENT`). y axis [0, 1] shown as %.
    """
    df = _frame(rows)
    if "metric" in df.columns:
        df = df[df["metric"] == "pairwise_accuracy"]
    x_order = order_policies(df["policy"], order=("rm", "judge"))
    fig = go.Figure(_bar(df, x_order, "pairwise accuracy"))
    fig.add_hline(y=0.5, line_dash="dash", line_color="grey", annotation_text="chance (50 %)")
    fig.add_hline(y=HUMAN_AGREEMENT, line_dash="dot", line_color="firebrick",
                  annotation_text=f"human inter-labeler agreement (paper, ~{HUMAN_AGREEMENT:.0%})",
                  annotation_position="top left")
    _percent_axis(fig, "pairwise accuracy")
    fig.update_layout(title="Reward model accuracy on held-out comparisons", height=_HEIGHT,
                      xaxis_title="reward model", showlegend=False)
    return fig


def ppo_curves_figure(logs: Mapping[str, Sequence[Mapping[str, Any]]]) -> go.Figure:
    """PPO training curves: one subplot per metric in :data:`PPO_CURVE_METRICS`, one line per run.

    ``logs`` maps a run name (``"ppo"``, ``"ppo_ptx"``) to its per-step log dicts (``step``
    plus the metrics). Null / non-finite values are skipped; a run with no value at all for
    a metric (e.g. ``ptx_loss`` for plain PPO) gets no trace in that subplot. Runs keep the
    order of :data:`POLICY_ORDER`, the same colour in every subplot and one legend entry.
    """
    metrics = PPO_CURVE_METRICS
    fig = make_subplots(rows=len(metrics), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[label for _, label in metrics])
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for i, run in enumerate(order_policies(logs.keys())):
        color = palette[i % len(palette)]
        shown = False
        for row, (key, label) in enumerate(metrics, start=1):
            pts = [(num(s.get("step")), num(s.get(key))) for s in logs[run]]
            pts = [(x, y) for x, y in pts if x is not None and y is not None]
            if not pts:
                continue
            fig.add_trace(
                go.Scatter(x=[x for x, _ in pts], y=[y for _, y in pts], mode="lines",
                           name=str(run), legendgroup=str(run), showlegend=not shown,
                           line=dict(color=color),
                           hovertemplate="step %{x}: %{y:.4g}<extra>" + str(run) + "</extra>"),
                row=row, col=1,
            )
            shown = True
    fig.update_xaxes(title_text="PPO step", row=len(metrics), col=1)
    fig.update_layout(title="PPO training curves", height=260 * len(metrics),
                      legend_title_text="run")
    return fig

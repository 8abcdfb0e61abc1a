"""Forest plot of metric deltas (run A - run B) with their paired-bootstrap intervals.

Pure plotly: takes :class:`harness.regress.compare.Delta` records, returns a Figure. Only
metric names (eval, policy, metric, slice) and numbers go into the figure, never
model or dataset text.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from harness.regress.compare import Delta


def delta_label(d: Delta) -> str:
    """``policy · metric · k=v, ...`` (the slice's conditions, when there are any)."""
    k = d.key
    return " · ".join([k.policy, k.metric] + ([", ".join(f"{a}={b}" for a, b in k.slice)] if k.slice else []))


def forest_figure(deltas: Sequence[Delta], title: str) -> go.Figure:
    """One row per metric (top to bottom in the given order): the delta A - B as a point, with its
    95 % paired-bootstrap interval as error bars (filled markers); unpaired deltas are open markers
    without bars. A dashed line marks 0 (no change). Height grows with the number of rows."""
    labels = [delta_label(d) for d in deltas]
    fig = go.Figure()
    paired = [(lab, d) for lab, d in zip(labels, deltas) if d.paired]
    unpaired = [(lab, d) for lab, d in zip(labels, deltas) if not d.paired]
    if paired:
        fig.add_trace(go.Scatter(
            x=[d.delta for _, d in paired], y=[lab for lab, _ in paired], mode="markers", name="paired (95 % bootstrap CI)",
            marker=dict(symbol="circle", size=8),
            error_x=dict(type="data", symmetric=False, visible=True,
                         array=[None if d.ci_high is None else max(d.ci_high - d.delta, 0.0) for _, d in paired],
                         arrayminus=[None if d.ci_low is None else max(d.delta - d.ci_low, 0.0) for _, d in paired]),
            customdata=[[d.a, d.b, d.p_value if d.p_value is not None else float("nan"), d.n_paired] for _, d in paired],
            hovertemplate="%{y}<br>delta %{x:+.4f}<br>A %{customdata[0]:.4f}, B %{customdata[1]:.4f}"
                          "<br>p %{customdata[2]:.3g}, n %{customdata[3]}<extra></extra>"))
    if unpaired:
        fig.add_trace(go.Scatter(
            x=[d.delta for _, d in unpaired], y=[lab for lab, _ in unpaired], mode="markers", name="unpaired (no interval)",
            marker=dict(symbol="circle-open", size=9),
            customdata=[[d.a, d.b] for _, d in unpaired],
            hovertemplate="%{y}<br>delta %{x:+.4f}<br>A %{customdata[0]:.4f}, B %{customdata[1]:.4f}<extra>unpaired</extra>"))
    fig.add_vline(x=0, line_dash="dash", line_color="grey")
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(labels)), automargin=True)
    fig.update_layout(title=title, xaxis_title="delta (A - B), metric units", height=160 + 24 * len(deltas),
                      legend=dict(orientation="h", y=-0.15 if len(deltas) > 3 else -0.4), margin=dict(l=10, r=10))
    return fig

"""Pure plotly builders for the sweep report: a metric against the swept parameters, and the trade-off.

Input is the DataFrame of :func:`reports.sweep_data.sweep_frame` (one row per job and RL policy,
the swept parameters as columns, a ``status`` column, metrics as fractions / nats / reward units).
Nothing here reads files or writes HTML; only parameter values and numbers reach a figure.

- two swept parameters: a heatmap (x = first, y = second, one cell per job, empty with the job's
  status where it has no value, e.g. "failed");
- one parameter (or three and more): lines against the first, one line per value combination of
  the others, 95 % CI error bars where the metric has them; no parameter: one point per job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

SHORT = {"ppo.beta": "β", "rl_runs.0.ptx_coef": "γ", "ppo.kl_target": "KL target"}
"""Display names of common swept parameters (others are shown as written)."""
_HEIGHT = 440


@dataclass(frozen=True)
class Metric:
    """What to draw: column ``col`` named ``label``; ``kind`` pct (a fraction shown as %), pp (a
    difference of fractions shown in percentage points, diverging colours around 0) or num;
    ``ci``: the (low, high) columns of its 95 % interval, if any."""

    col: str
    label: str
    kind: str = "num"
    ci: tuple[str, str] | None = None


def short(param: str) -> str:
    return SHORT.get(param, param)


def fmt_value(v: Any) -> str:
    """A parameter value as a label: ``0.05 -> "0.05"``, ``27.8 -> "27.8"``, ``None -> "—"``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def point_label(values: Mapping[str, Any], params: Sequence[str]) -> str:
    """``"β=0.01, γ=0"`` for one job's parameter values."""
    return ", ".join(f"{short(p)}={fmt_value(values.get(p))}" for p in params)


def _num(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_metric(v: Any, kind: str) -> str:
    f = _num(v)
    if f is None:
        return "—"
    return {"pct": f"{f:.1%}", "pp": f"{f * 100:+.1f} pp"}.get(kind, f"{f:.4g}")


def _sort_key(v: Any) -> tuple:
    f = _num(v) if not isinstance(v, bool) else None
    return (0, f, "") if f is not None else (1, 0.0, str(v))


def axis_values(values: Sequence[Any]) -> list[Any]:
    """Distinct non-missing values, numbers ascending first, then the rest as text."""
    seen = {}
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        seen.setdefault(fmt_value(v), v)
    return sorted(seen.values(), key=_sort_key)


def _hover(rec: Mapping[str, Any], m: Metric) -> str:
    s = fmt_metric(rec.get(m.col), m.kind)
    if m.ci and _num(rec.get(m.ci[0])) is not None and _num(rec.get(m.ci[1])) is not None:
        s += f" [{fmt_metric(rec[m.ci[0]], m.kind)}, {fmt_metric(rec[m.ci[1]], m.kind)}]"
    if _num(rec.get(f"{m.col}_n")) is not None:
        s += f" (n={int(rec[f'{m.col}_n'])})"
    return s


def _scale(m: Metric) -> float:
    """Figures show ``pp`` metrics in percentage points (a fraction difference × 100)."""
    return 100.0 if m.kind == "pp" else 1.0


def heatmap_figure(df: pd.DataFrame, x: str, y: str, m: Metric, title: str) -> go.Figure:
    """``m`` over the grid ``x`` × ``y``: cell (i, j) holds the value of the job with ``x`` = the i-th
    and ``y`` = the j-th distinct value (``z[j][i]``, ``pp`` metrics × 100; None where no job has a
    value, its text is the job's status). Hover: parameter values, the value with its CI and n. Raises ``ValueError`` if
    two rows share a cell (the caller filters to one RL policy)."""
    xs, ys = axis_values(df[x].tolist()), axis_values(df[y].tolist())
    xi, yi = {fmt_value(v): i for i, v in enumerate(xs)}, {fmt_value(v): j for j, v in enumerate(ys)}
    z: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    text = [[""] * len(xs) for _ in ys]
    hover = [["no job"] * len(xs) for _ in ys]
    for rec in df.to_dict("records"):
        if fmt_value(rec[x]) not in xi or fmt_value(rec[y]) not in yi:
            continue
        i, j = xi[fmt_value(rec[x])], yi[fmt_value(rec[y])]
        value = _num(rec.get(m.col))
        if z[j][i] is not None and value is not None:
            raise ValueError(f"two jobs at {short(x)}={fmt_value(rec[x])}, {short(y)}={fmt_value(rec[y])} (job {rec.get('job')})")
        if value is not None:
            z[j][i], text[j][i], hover[j][i] = value * _scale(m), fmt_metric(value, m.kind), _hover(rec, m)
        elif z[j][i] is None:
            text[j][i] = hover[j][i] = "no value" if rec.get("status") == "finished" else str(rec.get("status"))
    diverging = m.kind == "pp"
    fig = go.Figure(go.Heatmap(
        z=z, x=[fmt_value(v) for v in xs], y=[fmt_value(v) for v in ys], text=text, texttemplate="%{text}", customdata=hover,
        colorscale="RdBu" if diverging else "Viridis", zmid=0 if diverging else None, xgap=2, ygap=2,
        zmin=0 if m.kind == "pct" else None, zmax=1 if m.kind == "pct" else None,
        colorbar=dict(title=dict(text=m.label), tickformat=".0%" if m.kind == "pct" else None,
                      ticksuffix=" pp" if diverging else None),
        hovertemplate=f"{short(x)}=%{{x}}, {short(y)}=%{{y}}<br>{m.label}: %{{customdata}}<extra></extra>",
    ))
    fig.update_xaxes(type="category", title_text=short(x))
    fig.update_yaxes(type="category", title_text=short(y))
    fig.update_layout(title=title, height=_HEIGHT)
    return fig


def line_figure(df: pd.DataFrame, x: str | None, m: Metric, title: str, series: Sequence[str] = ()) -> go.Figure:
    """``m`` against ``x`` (None: one point per job, x = job), one line per value combination of
    ``series``, with 95 % CI error bars when ``m.ci`` is set. Rows without a value are left out
    (the report's tables list them)."""
    xcol = x or "job"
    fig = go.Figure()
    groups = [((), df)] if not series else list(df.groupby(list(series), dropna=False, sort=True))
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        recs = sorted((r for r in sub.to_dict("records") if _num(r.get(m.col)) is not None), key=lambda r: _sort_key(r[xcol]))
        if not recs:
            continue
        k = _scale(m)
        ys = [_num(r[m.col]) * k for r in recs]
        err = None
        if m.ci:
            plus = [None if _num(r.get(m.ci[1])) is None else max(_num(r[m.ci[1]]) * k - v, 0.0) for r, v in zip(recs, ys)]
            minus = [None if _num(r.get(m.ci[0])) is None else max(v - _num(r[m.ci[0]]) * k, 0.0) for r, v in zip(recs, ys)]
            err = dict(type="data", symmetric=False, array=plus, arrayminus=minus, visible=True)
        name = point_label(dict(zip(series, key)), series) if series else m.label
        fig.add_trace(go.Scatter(
            x=[r[xcol] if x and _num(r[xcol]) is not None else fmt_value(r[xcol]) for r in recs], y=ys, mode="lines+markers",
            name=name, error_y=err, customdata=[_hover(r, m) for r in recs],
            hovertemplate=f"{short(xcol)}=%{{x}}<br>{m.label}: %{{customdata}}<extra>{name}</extra>"))
    if m.kind == "pct":
        fig.update_yaxes(range=[0, 1], tickformat=".0%")
    elif m.kind == "pp":
        fig.update_yaxes(ticksuffix=" pp", zeroline=True, zerolinecolor="grey")
    fig.update_xaxes(title_text=short(xcol))
    fig.update_yaxes(title_text=m.label)
    fig.update_layout(title=title, height=_HEIGHT, showlegend=bool(series))
    return fig


def metric_figure(df: pd.DataFrame, params: Sequence[str], m: Metric, title: str) -> go.Figure:
    """A heatmap for exactly two swept parameters, otherwise :func:`line_figure` over the first."""
    if len(params) == 2:
        return heatmap_figure(df, params[0], params[1], m, title)
    return line_figure(df, params[0] if params else None, m, title, series=params[1:])


def tradeoff_figure(df: pd.DataFrame, params: Sequence[str], refs: Mapping[str, Mapping[str, Any]] | None = None) -> go.Figure:
    """The paper's trade-off view (Ouyang et al. 2022, appendix E, Figs. 33-34): win rate against
    text-davinci-003 (y, with its 95 % CI) against the mean paired accuracy change vs base over the
    public tasks (x, in percentage points; negative = an alignment tax), one point per job labelled with its parameter
    values, one trace per value of the last parameter when two or more vary. ``refs`` (name ->
    metrics) adds base and SFT as reference stars."""
    pts = df[df["win_rate"].map(_num).notna() & df["tax_mean_delta"].map(_num).notna()] if len(df) else df
    fig = go.Figure()
    group_by = [params[-1]] if len(params) >= 2 else []
    groups = list(pts.groupby(group_by, dropna=False, sort=True)) if group_by else [((), pts)]
    for key, sub in groups:
        if not len(sub):
            continue
        recs = sorted(sub.to_dict("records"), key=lambda r: tuple(_sort_key(r[p]) for p in params))
        key = key if isinstance(key, tuple) else (key,)
        name = point_label(dict(zip(group_by, key)), group_by) if group_by else "sweep jobs"
        wins = [_num(r["win_rate"]) for r in recs]
        fig.add_trace(go.Scatter(
            x=[_num(r["tax_mean_delta"]) * 100 for r in recs], y=wins, mode="markers+text", name=name,
            text=[point_label(r, params) or str(r["job"]) for r in recs], textposition="top center",
            error_y=dict(type="data", symmetric=False, visible=True,
                         array=[None if _num(r.get("win_rate_ci_high")) is None else max(_num(r["win_rate_ci_high"]) - w, 0.0)
                                for r, w in zip(recs, wins)],
                         arrayminus=[None if _num(r.get("win_rate_ci_low")) is None else max(w - _num(r["win_rate_ci_low"]), 0.0)
                                     for r, w in zip(recs, wins)]),
            hovertemplate="%{text}<br>win rate %{y:.1%}<br>mean Δ accuracy vs base %{x:+.2f} pp<extra></extra>"))
    refs = {k: v for k, v in (refs or {}).items() if _num(v.get("win_rate")) is not None and _num(v.get("tax_mean_delta")) is not None}
    if refs:
        fig.add_trace(go.Scatter(
            x=[_num(v["tax_mean_delta"]) * 100 for v in refs.values()], y=[_num(v["win_rate"]) for v in refs.values()],
            mode="markers+text", name="references", text=list(refs), textposition="bottom center",
            marker=dict(symbol="star", size=13, color="black"),
            hovertemplate="%{text}<br>win rate %{y:.1%}<br>mean Δ accuracy vs base %{x:+.2f} pp<extra></extra>"))
    fig.add_hline(y=0.5, line_dash="dash", line_color="grey", annotation_text="parity with text-davinci-003")
    fig.add_vline(x=0, line_dash="dot", line_color="grey", annotation_text="no alignment tax")
    fig.update_xaxes(title_text="mean paired accuracy change vs base over the public tasks, pp (negative = alignment tax)",
                     ticksuffix=" pp")
    fig.update_yaxes(title_text="win rate vs text-davinci-003 (helpful judge)", range=[0, 1], tickformat=".0%")
    fig.update_layout(title="Trade-off: win rate against alignment tax", height=520, legend_title_text="")
    return fig


def seed_figure(seeds: Sequence[Any], values: Sequence[float], ci: Sequence[tuple[float, float]],
                mean: float | None, t_ci: tuple[float, float] | None, title: str, y_label: str) -> go.Figure:
    """One metric over training seeds: each seed's estimate with its 95 % interval, then the mean over seeds with its
    t interval (a diamond), against a dashed line at chance (0.5). Fractions are drawn as %."""
    fig = go.Figure()
    xs = [f"seed {fmt_value(s)}" for s in seeds]
    fig.add_trace(go.Scatter(
        x=xs, y=[v * 100 for v in values], mode="markers", name="each seed (eval's 95 % CI)",
        error_y=dict(type="data", symmetric=False, array=[(hi - v) * 100 for v, (_, hi) in zip(values, ci)],
                     arrayminus=[(v - lo) * 100 for v, (lo, _) in zip(values, ci)], visible=True)))
    if mean is not None and t_ci is not None:
        fig.add_trace(go.Scatter(
            x=["mean over seeds"], y=[mean * 100], mode="markers", marker=dict(symbol="diamond", size=12),
            name="mean over seeds (t 95 % CI)",
            error_y=dict(type="data", symmetric=False, array=[(t_ci[1] - mean) * 100], arrayminus=[(mean - t_ci[0]) * 100], visible=True)))
    fig.add_hline(y=50, line_dash="dash", line_color="grey", annotation_text="chance", annotation_position="bottom right")
    fig.update_yaxes(title_text=y_label, ticksuffix=" %")
    fig.update_layout(title=title, height=_HEIGHT, showlegend=True)
    return fig

"""Reusable plotly builders for "a metric with its 95 % interval, by policy" (bars with error bars).

Every builder takes ResultRow-shaped records (a DataFrame or dicts with ``value``, ``ci_low``,
``ci_high`` and the columns named by ``x`` / ``group`` / ``facet``) and returns a
``plotly.graph_objects.Figure``. Error bars are asymmetric: ``value - ci_low`` below and
``ci_high - value`` above; a row without an interval gets no error bar. Only names and numbers
reach a figure, never model text. Nothing here reads files or writes HTML.

Two rows for the same (facet, x, group) cell raise ``ValueError``: a bar group never silently
mixes two judges, scorers or baselines; the caller must split them (e.g. one figure per judge).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.figures import num, order_policies

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
_ONE = "__one__"


@dataclass(frozen=True)
class RefLine:
    """A horizontal reference line at ``y`` (same unit as the values) labelled ``label``."""

    y: float
    label: str
    dash: str = "dot"
    color: str = "firebrick"


def frame(rows: pd.DataFrame | Iterable[Mapping[str, Any]], columns: Sequence[str] = ()) -> pd.DataFrame:
    """``rows`` as a DataFrame with at least ``value``, ``ci_low``, ``ci_high`` and ``columns``
    (missing ones filled with None; a ``None`` grouping value becomes ``"—"``)."""
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for col in ("value", "ci_low", "ci_high", *columns):
        if col not in df.columns:
            df[col] = None
    for col in columns:
        df[col] = [("—" if v is None or (isinstance(v, float) and v != v) else str(v)) for v in df[col]]
    return df


def error_bars(value: Any, ci_low: Any, ci_high: Any) -> tuple[float | None, float | None]:
    """``(plus, minus)`` error-bar lengths of one value, ``None`` where the value or bound is missing."""
    v, lo, hi = num(value), num(ci_low), num(ci_high)
    plus = None if v is None or hi is None else max(hi - v, 0.0)
    minus = None if v is None or lo is None else max(v - lo, 0.0)
    return plus, minus


def _check_unique(df: pd.DataFrame, keys: list[str]) -> None:
    dup = df[df.duplicated(keys, keep=False)]
    if not dup.empty:
        cell = {k: dup.iloc[0][k] for k in keys}
        raise ValueError(f"two rows for the same bar {cell}: split them (e.g. one figure per judge) before plotting")


def _trace(df: pd.DataFrame, x: str, x_order: list[str], name: str, color: str, percent: bool,
           x_labels: Mapping[str, str], showlegend: bool) -> go.Bar:
    by_x = {r[x]: r for r in df.to_dict("records")}
    xs = [v for v in x_order if v in by_x]
    ys, plus, minus, text = [], [], [], []
    for v in xs:
        r = by_x[v]
        y = num(r["value"])
        p, m = error_bars(r["value"], r["ci_low"], r["ci_high"])
        ys.append(y)
        plus.append(p)
        minus.append(m)
        text.append("" if y is None else (f"{y:.1%}" if percent else f"{y:.3g}"))
    fmt = "%{y:.1%}" if percent else "%{y:.4g}"
    return go.Bar(x=[x_labels.get(v, v) for v in xs], y=ys, name=name, legendgroup=name, showlegend=showlegend,
                  marker_color=color, text=text, textposition="outside",
                  error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, visible=True),
                  hovertemplate="%{x}: " + fmt + "<extra>" + name + "</extra>")


def ci_facet_figure(rows: pd.DataFrame | Iterable[Mapping[str, Any]], *, facet: str | None = None,
                    x: str = "policy", group: str | None = None,
                    facet_order: Sequence[str] | None = None, x_order: Sequence[str] | None = None,
                    group_order: Sequence[str] | None = None, facet_labels: Mapping[str, str] | None = None,
                    x_labels: Mapping[str, str] | None = None, group_labels: Mapping[str, str] | None = None,
                    title: str = "", y_title: str = "", x_title: str = "", legend_title: str = "",
                    percent: bool = True, y_range: Sequence[float] | None = None,
                    ref_lines: Sequence[RefLine] = (), height: int = 440) -> go.Figure:
    """Grouped bars with 95 % CI error bars, one subplot column per ``facet`` value.

    ``rows``: records with ``value``/``ci_low``/``ci_high`` and the ``x``, ``group`` and ``facet``
    columns. One bar trace per ``group`` value (same colour and one legend entry across facets),
    x = the ``x`` column. Orders default to :func:`reports.figures.order_policies` (canonical
    policy order first, then first-seen); values outside a given order are dropped. ``percent``:
    values are fractions 0-1 shown as % (y range defaults to [0, 1]). ``ref_lines`` are drawn
    in every facet. Raises ``ValueError`` when two rows fall on the same (facet, x, group) bar.
    """
    cols = [c for c in (facet, x, group) if c is not None]
    df = frame(rows, cols)
    df = df[[num(v) is not None for v in df["value"]]] if len(df) else df
    fcol, gcol = facet or _ONE, group or _ONE
    if facet is None or group is None:
        df[_ONE] = ""
    _check_unique(df, list(dict.fromkeys([fcol, x, gcol])))
    facets = list(facet_order) if facet_order is not None else order_policies(df[fcol], order=())
    facets = [f for f in facets if f in set(df[fcol])] or [""]
    xs = list(x_order) if x_order is not None else order_policies(df[x])
    groups = list(group_order) if group_order is not None else order_policies(df[gcol])
    groups = [g for g in groups if g in set(df[gcol])]
    facet_labels, x_labels, group_labels = facet_labels or {}, x_labels or {}, group_labels or {}
    fig = make_subplots(rows=1, cols=len(facets), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[facet_labels.get(f, f) for f in facets] if facet is not None else None)
    for gi, g in enumerate(groups):
        color, name = PALETTE[gi % len(PALETTE)], group_labels.get(g, g) if group is not None else (y_title or "value")
        for fi, f in enumerate(facets, start=1):
            sub = df[(df[fcol] == f) & (df[gcol] == g)]
            if not sub.empty:
                fig.add_trace(_trace(sub, x, xs, name, color, percent, x_labels, showlegend=(fi == 1)), row=1, col=fi)
    for line in ref_lines:
        fig.add_hline(y=line.y, line_dash=line.dash, line_color=line.color, annotation_text=line.label,
                      annotation_position="top left", row="all", col="all")
    if y_range is not None or percent:
        fig.update_yaxes(range=list(y_range) if y_range is not None else [0, 1.05])
    if percent:
        fig.update_yaxes(tickformat=".0%")
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_xaxes(title_text=x_title)
    fig.update_layout(barmode="group", title=title, height=height, legend_title_text=legend_title,
                      showlegend=group is not None, margin=dict(t=90))
    return fig


def ci_bar_figure(rows: pd.DataFrame | Iterable[Mapping[str, Any]], **kwargs: Any) -> go.Figure:
    """:func:`ci_facet_figure` without facets: one panel of grouped bars with CI error bars."""
    if kwargs.get("facet") is not None:
        raise ValueError("ci_bar_figure draws one panel; use ci_facet_figure for facets")
    return ci_facet_figure(rows, **kwargs)

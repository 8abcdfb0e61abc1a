"""HTML page assembly for reports: escaped tables, sections, one inlined plotly.js.

Safety rule: every string that reaches the page is passed through :func:`esc`
(``html.escape(..., quote=True)``) unless it is a :class:`Safe` fragment built here from
already-escaped pieces. Model outputs and instructions are only ever placed in tables, never
in figure JSON. The page is self-contained: plotly.js is inlined once in ``<head>``, figures
are embedded without their own copy, and nothing is loaded from the network.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:1rem 2rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;border-bottom:2px solid #444;padding-bottom:.3rem}
h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ccc;padding-bottom:.2rem}
nav.toc{background:#f6f6f6;padding:.5rem 1rem;border-radius:6px;display:inline-block}
nav.toc ol{margin:.3rem 0;padding-left:1.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem;display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.neg{color:#b00020;font-weight:600}.pos{color:#0a7d32}
.note{color:#777;font-style:italic}
.out{white-space:pre-wrap;max-height:16rem;overflow:auto;margin:0;font-family:ui-monospace,monospace;
font-size:.8rem;min-width:12rem;max-width:28rem}
.meta{color:#555;font-size:.78rem;margin-top:.25rem}
code{background:#f3f3f3;padding:0 .2rem}
.sb-controls{position:sticky;top:0;background:#fff;padding:.5rem 0;z-index:2;border-bottom:1px solid #ddd}
.sb-controls input{width:22rem}.sb-controls label{margin-right:1rem}
h3{font-size:1.05rem;margin-top:1.4rem}
.run-identity{font-size:1rem;margin:.2rem 0 1rem}
.badge-warn{background:#fff3cd;border:1px solid #c9a227;color:#7a4f00;padding:.15rem .5rem;border-radius:4px}
""".strip()


class Safe(str):
    """A trusted HTML fragment (built from escaped pieces); :func:`esc` leaves it unchanged."""


def esc(value: Any, missing: str = "—") -> Safe:
    """HTML-escape ``value`` (``quote=True``); ``None`` becomes ``missing``; :class:`Safe` passes."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape(missing if value is None else str(value), quote=True))


def tag(name: str, content: Any = "", **attrs: Any) -> Safe:
    """``<name attrs>content</name>``; content and attribute values are escaped (``cls`` -> class)."""
    attr = "".join(f' {"class" if k == "cls" else k.replace("_", "-")}="{esc(v)}"'
                   for k, v in attrs.items() if v is not None)
    return Safe(f"<{name}{attr}>{esc(content, missing='')}</{name}>")


def join(parts: Iterable[Any], sep: str = "") -> Safe:
    """Concatenate fragments, escaping any that are not :class:`Safe`."""
    return Safe(sep.join(esc(p, missing="") for p in parts))


def table(headers: Sequence[Any], rows: Iterable[Sequence[Any]],
          numeric: Iterable[int] = (), cls: str | None = None) -> Safe:
    """An HTML table; every header and cell is escaped unless it is :class:`Safe`.

    ``numeric`` lists column indices to right-align (``td.num``).
    """
    numeric = set(numeric)
    head = tag("tr", join(tag("th", h) for h in headers))
    body = join(
        tag("tr", join(tag("td", c, cls="num" if j in numeric else None) for j, c in enumerate(r)))
        for r in rows
    )
    return tag("table", join([tag("thead", head), tag("tbody", body)]), cls=cls)


def note(text: str) -> Safe:
    """A short italic note, e.g. ``"not available in this run"``."""
    return tag("p", text, cls="note")


def fmt_pct(value: Any, ci_low: Any = None, ci_high: Any = None, digits: int = 1) -> str:
    """A fraction 0-1 as a percentage with its CI: ``0.6123, 0.55, 0.67 -> "61.2% [55.0%, 67.0%]"``."""
    if value is None:
        return "—"
    s = f"{float(value) * 100:.{digits}f}%"
    if ci_low is not None and ci_high is not None:
        s += f" [{float(ci_low) * 100:.{digits}f}%, {float(ci_high) * 100:.{digits}f}%]"
    return s


def fmt_pp(value: Any, ci_low: Any = None, ci_high: Any = None, digits: int = 1) -> str:
    """A difference of fractions in signed percentage points: ``-0.031 -> "-3.1 pp"`` (+ CI)."""
    if value is None:
        return "—"
    s = f"{float(value) * 100:+.{digits}f} pp"
    if ci_low is not None and ci_high is not None:
        s += f" [{float(ci_low) * 100:+.{digits}f}, {float(ci_high) * 100:+.{digits}f}]"
    return s


def figure_div(fig: go.Figure, div_id: str) -> Safe:
    """Embed ``fig`` as a div with id ``div_id`` plus its plot script, without plotly.js itself."""
    return Safe(pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id,
                            config={"displaylogo": False, "responsive": True}))


@dataclass(frozen=True)
class Section:
    """A titled page section; ``body`` is escaped unless it is :class:`Safe`."""

    id: str
    title: str
    body: Any


def render_page(title: str, sections: Sequence[Section], intro: Any = "") -> str:
    """A full self-contained HTML page: CSS, plotly.js inlined once in ``<head>``, a table of
    contents linking each section's id, then the sections in order."""
    toc = tag("nav", join([tag("strong", "Contents"), tag("ol", join(
        tag("li", tag("a", s.title, href=f"#{s.id}")) for s in sections))]), cls="toc")
    body = join(tag("section", join([tag("h2", s.title), s.body]), id=s.id) for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{esc(title)}</title>\n<style>\n{CSS}\n</style>\n"
        f"<script type=\"text/javascript\">{plotly.offline.get_plotlyjs()}</script>\n"
        f"</head>\n<body>\n{tag('h1', title)}\n{esc(intro, missing='')}\n{toc}\n{body}\n"
        "</body>\n</html>\n"
    )

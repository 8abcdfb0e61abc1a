"""Read a rendered report page back (for tests and tooling): a section's HTML, a figure's JSON,
a searchable table's script. Works on pages from :func:`reports.html.render_page`."""

from __future__ import annotations

import json
import re
from typing import Any


def section_html(page: str, section_id: str) -> str:
    """The HTML of ``<section id=section_id>`` up to its closing tag. Raises ``ValueError`` if absent."""
    start = page.find(f'<section id="{section_id}">')
    if start < 0:
        raise ValueError(f"no section {section_id!r} in the page")
    return page[start:page.index("</section>", start) + len("</section>")]


def figure_json(page: str, div_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(data, layout)`` of the figure embedded in div ``div_id`` (the arguments of its
    ``Plotly.newPlot("div_id", data, layout, config)`` call). Raises ``ValueError`` if absent."""
    m = re.search(r'Plotly\.newPlot\(\s*' + re.escape(json.dumps(div_id)) + r'\s*,\s*', page)
    if m is None:
        raise ValueError(f"no figure {div_id!r} in the page")
    dec = json.JSONDecoder()
    data, end = dec.raw_decode(page, m.end())
    end = re.compile(r"\s*,\s*").match(page, end).end()
    layout, _ = dec.raw_decode(page, end)
    return data, layout


def figure_ids(page: str) -> list[str]:
    """Div ids of every embedded figure, in page order."""
    return re.findall(r'Plotly\.newPlot\(\s*"([^"]+)"', page)


def scripts(page: str) -> list[str]:
    """The text of every ``<script>`` element, in page order."""
    return re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)

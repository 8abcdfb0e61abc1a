"""An escaped, searchable HTML table: a text search box and per-column filter selects.

Every header, cell and option is escaped server-side (:mod:`reports.html`). The inline script is
static except for the table's id and the filter column indices, both validated here; it only reads
``textContent`` / ``value`` and toggles ``style.display`` (no ``innerHTML``, no ``eval``), so model
text in a cell can never become markup or script.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from reports.html import Safe, esc, join, table, tag

MAX_TEXT_CHARS = 2000
_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

_SCRIPT = """(function () {
  var root = document.getElementById(%(id)s);
  if (!root) { return; }
  var cols = %(cols)s;
  var input = root.querySelector("input.sb-search");
  var selects = root.querySelectorAll("select.sb-filter");
  var rows = root.querySelectorAll("tbody > tr");
  function update() {
    var needle = input.value.trim().toLowerCase();
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i], show = true;
      for (var j = 0; j < selects.length && show; j++) {
        var want = selects[j].value;
        if (want !== "" && row.cells[cols[j]].textContent !== want) { show = false; }
      }
      if (show && needle !== "" && row.textContent.toLowerCase().indexOf(needle) < 0) { show = false; }
      row.style.display = show ? "" : "none";
    }
  }
  input.addEventListener("input", update);
  for (var j = 0; j < selects.length; j++) { selects[j].addEventListener("change", update); }
})();"""


def truncate(text: Any, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` as a string (None -> ""), cut to ``limit`` characters with a note of its full length."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[:limit] + f"… [truncated, {len(s)} chars]"


def text_cell(text: Any, meta: Any = None, limit: int = MAX_TEXT_CHARS) -> Safe:
    """A pre-formatted, escaped, truncated text block with an optional escaped caption below it."""
    parts = [tag("pre", truncate(text, limit), cls="out")]
    if meta:
        parts.append(tag("div", meta, cls="meta"))
    return join(parts)


def searchable_table(headers: Sequence[Any], rows: Sequence[Sequence[Any]], *, table_id: str,
                     filter_columns: Sequence[int] = (), placeholder: str = "search all text") -> Safe:
    """A table wrapped in ``<div id=table_id>`` with a search box and one ``<select>`` per column
    in ``filter_columns`` (options: that column's distinct plain-text values, in first-seen order).

    A row shows iff every select is "all" or equals the cell's text exactly, and the search text
    (case-insensitive) occurs in the row's text. Filter columns must hold plain strings (their
    cell text is compared), other cells may be :class:`Safe` fragments. Raises ``ValueError`` on a
    bad ``table_id``, an out-of-range filter column or a non-string filter cell.
    """
    if not _ID.fullmatch(table_id):
        raise ValueError(f"searchable_table: bad table id {table_id!r}")
    cols = [int(c) for c in filter_columns]
    if any(c < 0 or c >= len(headers) for c in cols):
        raise ValueError(f"searchable_table: filter columns {cols} out of range for {len(headers)} columns")
    selects = []
    for c in cols:
        values = list(dict.fromkeys(r[c] for r in rows))
        if any(not isinstance(v, str) or isinstance(v, Safe) for v in values):
            raise ValueError(f"searchable_table: filter column {c} ({headers[c]}) must hold plain strings")
        options = [tag("option", "all", value="")] + [tag("option", v, value=v) for v in values]
        selects.append(tag("label", join([f"{headers[c]} ", tag("select", join(options), cls="sb-filter")])))
    search = tag("label", join(["search ", Safe(f'<input type="search" class="sb-search" placeholder="{esc(placeholder)}">')]))
    script = _SCRIPT % {"id": json.dumps(table_id), "cols": json.dumps(cols)}
    return tag("div", join([tag("div", join([search, *selects], sep=" "), cls="sb-controls"),
                            table(headers, rows, cls="samples"),
                            Safe(f'<script type="text/javascript">{script}</script>')]), id=table_id)


def cap_per_group(records: Iterable[Any], key: Any, cap: int) -> tuple[list[Any], dict[Any, int]]:
    """Keep the first ``cap`` records of each ``key(record)`` group (file order kept); return them
    and ``{group: number left out}`` for groups that lost records. ``cap`` must be >= 0."""
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    kept, seen, left = [], {}, {}
    for r in records:
        k = key(r)
        seen[k] = seen.get(k, 0) + 1
        if seen[k] <= cap:
            kept.append(r)
        else:
            left[k] = left.get(k, 0) + 1
    return kept, left

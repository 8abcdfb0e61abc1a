"""The paper's reference values (``harness/evals/data/paper_reference.yaml``) as result rows.

Rows carry ``run_id="paper"``, ``policy="paper:<model>"`` (e.g. ``paper:ppo_ptx_175b``) and the slice of
ours they correspond to, and live in their own file (``results/paper_reference.jsonl``, written by
:func:`harness.results.write_results`), so they sit beside ours in reports but are never mixed into a
run's results or reach a regression gate. An interval is the paper's ± where it gives one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.records import ResultRow

REFERENCE_FILE = Path(__file__).resolve().parent / "data" / "paper_reference.yaml"
_REQUIRED = ("eval", "metric", "slice", "paper_policy", "value", "where")


def load_reference(path: str | Path = REFERENCE_FILE) -> list[dict[str, Any]]:
    """The reference entries. Raises ``ValueError`` naming the file, entry and field on a bad entry."""
    path = Path(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = doc.get("values") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a mapping with a non-empty 'values' list")
    for i, e in enumerate(entries):
        missing = [k for k in _REQUIRED if not isinstance(e, dict) or k not in e]
        if missing:
            raise ValueError(f"{path}: entry {i}: missing field(s) {missing}")
        if not isinstance(e["value"], (int, float)) or isinstance(e["value"], bool):
            raise ValueError(f"{path}: entry {i}: field 'value' must be a number")
        if not isinstance(e["slice"], dict):
            raise ValueError(f"{path}: entry {i}: field 'slice' must be a mapping (empty: {{}})")
    return entries


def paper_rows(evals: set[str] | None = None, path: str | Path = REFERENCE_FILE) -> list[ResultRow]:
    """Reference rows for the evals in ``evals`` (all when ``None``), labelled as the paper's."""
    rows = []
    for e in load_reference(path):
        if evals is not None and e["eval"] not in evals:
            continue
        hw = e.get("ci_halfwidth")
        lo, hi = (e["value"] - hw, e["value"] + hw) if hw is not None else (None, None)
        rows.append(ResultRow("paper", f"paper:{e['paper_policy']}", e["eval"], e["metric"], float(e["value"]), lo, hi, 0,
                              dict(e["slice"])))
    return rows

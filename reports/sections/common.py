"""What every report section reads (:class:`RunData`) and small formatting helpers they share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.results import COLUMNS
from reports.ci_figures import num
from reports.figures import order_policies
from reports.html import Safe, fmt_pct, fmt_pp, note, tag
from reports.paper_ref import PaperValue

NO_RESULTS = "results/results.jsonl"


@dataclass
class RunData:
    """One run directory, loaded. ``results``: our rows as a tidy table
    (:func:`harness.results.results_frame`: one column per slice key; ``None`` if the file is missing);
    ``declarations``: eval -> its declarations (:class:`harness.evals.base.EvalDef`); ``paper``: reference
    values (:mod:`reports.paper_ref`); ``items``: eval name -> (path, records) of ``results/*_items.jsonl``;
    ``logs``: PPO run -> per-step train-log dicts; ``probes``: PPO run -> its probe's points (``probe_log.jsonl``,
    :mod:`trainers.probe`), for the runs that had one; ``evals``: ``results/evals.json`` or None."""

    run_dir: Path
    run: dict[str, Any] | None = None
    results: pd.DataFrame | None = None
    declarations: dict[str, Any] = field(default_factory=dict)
    paper: list[PaperValue] = field(default_factory=list)
    items: dict[str, tuple[Path, list[dict[str, Any]]]] = field(default_factory=dict)
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    probes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    evals: dict[str, Any] | None = None

    def rows(self, eval_: str, metrics: Any = None) -> pd.DataFrame:
        """Our rows of ``eval_`` (metric in the collection ``metrics`` if given); every slice key of the run
        is a column (``None`` where a row lacks it)."""
        if self.results is None:
            return pd.DataFrame(columns=[*COLUMNS, "slice"])
        df = self.results[self.results["eval"] == eval_]
        if metrics is not None:
            df = df[df["metric"].isin(list(metrics))]
        return df

    def metric(self, eval_: str, name: str):
        """The declaration (:class:`harness.evals.base.Metric`) of ``name`` in ``eval_``, or None."""
        defn = self.declarations.get(eval_)
        return next((m for m in defn.metrics if m.name == name), None) if defn else None

    def label(self, eval_: str, name: str) -> str:
        """The declared label of a metric (its name when it has none)."""
        m = self.metric(eval_, name)
        return (m.label or m.name) if m else name

    def is_fraction(self, eval_: str, name: str) -> bool:
        """Whether the declared unit of a metric is a fraction (shown as %, deltas in pp)."""
        m = self.metric(eval_, name)
        return m is not None and m.unit == "fraction"

    def is_delta(self, eval_: str, name: str) -> bool:
        """Whether a metric is declared as a paired delta (``delta_of``)."""
        m = self.metric(eval_, name)
        return m is not None and m.delta_of is not None

    def eval_info(self, eval_: str) -> dict[str, Any]:
        """``evals.json``'s entry for ``eval_`` (empty when absent)."""
        info = ((self.evals or {}).get("evals") or {}).get(eval_)
        return info if isinstance(info, dict) else {}


def na(what: str) -> Safe:
    """The "not available in this run" note of a section or part."""
    return note(f"{what} not available in this run.")


def slug(name: Any) -> str:
    """A lower-case id fragment of ``name`` (letters, digits, dashes)."""
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-") or "x"


def judges(df: pd.DataFrame, column: str = "judge", main: str = "helpful") -> list[str | None]:
    """The distinct judges/scorers of ``df`` with ``main`` first, then first-seen order (None last)."""
    seen = list(dict.fromkeys(df[column])) if column in df.columns else [None]
    named = [j for j in seen if j is not None]
    return order_policies(named, order=(main,)) + ([None] if None in seen else [])


def by_judge(df: pd.DataFrame, judge: str | None, column: str = "judge") -> pd.DataFrame:
    """Rows of one judge (``None``: rows without a judge)."""
    if column not in df.columns:
        return df if judge is None else df.iloc[0:0]
    return df[df[column].isna()] if judge is None else df[df[column] == judge]


def col(df: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` of ``df``, or ``None`` everywhere when no row has that slice key."""
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


def ci(row: dict[str, Any] | None, percent: bool = True, digits: int = 3) -> str:
    """A row's value with its interval: a percentage (``percent``) or a plain number; "—" if absent."""
    if not row or num(row.get("value")) is None:
        return "—"
    v, lo, hi = row["value"], row.get("ci_low"), row.get("ci_high")
    if percent:
        return fmt_pct(v, lo, hi)
    s = f"{float(v):.{digits}f}"
    return s + (f" [{float(lo):.{digits}f}, {float(hi):.{digits}f}]" if num(lo) is not None and num(hi) is not None else "")


def delta(row: dict[str, Any] | None, percent: bool = True, digits: int = 3) -> Any:
    """A paired delta (policy - base) coloured by sign: percentage points or a signed number."""
    if not row or num(row.get("value")) is None:
        return "—"
    v, lo, hi = row["value"], row.get("ci_low"), row.get("ci_high")
    if percent:
        text = fmt_pp(v, lo, hi)
    else:
        text = f"{float(v):+.{digits}f}" + (f" [{float(lo):+.{digits}f}, {float(hi):+.{digits}f}]"
                                           if num(lo) is not None and num(hi) is not None else "")
    return tag("span", text, cls="neg" if v < 0 else "pos")


def index(df: pd.DataFrame, *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``{(row[k] for k in keys): row}`` over ``df``'s records (later rows win)."""
    return {tuple(r[k] for k in keys): r for r in df.to_dict("records")}


def n_of(*rows: dict[str, Any] | None) -> Any:
    """The first ``n`` among ``rows`` or "—"."""
    for r in rows:
        if r and r.get("n") is not None:
            return r["n"]
    return "—"

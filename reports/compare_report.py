"""``comparison.html``: every metric of run A against B (a second run, a results.jsonl or a gate
snapshot), with paired deltas where both have per-item records.

Reached through ``harness-report run_dir=A compare_to=B``. The numbers come from
:func:`harness.regress.compare.compare_sets` (the gate's pairing module, docs/regression.md):
delta = A - B, for paired metrics with a 95 % paired-bootstrap interval and a two-sided paired
permutation p-value. One forest plot per eval, one table per eval, then the metrics only in A and
only in B. Every string on the page goes through :mod:`reports.html` escaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.io import atomic_write_text
from harness.regress.compare import Comparison, Delta, compare_sets
from harness.regress.items import MetricKey
from harness.regress.provenance import differences
from harness.regress.results import ResultSet, load_result_set
from reports.compare_figures import forest_figure
from reports.html import Safe, Section, figure_div, join, note, render_page, table, tag


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "—" if x is None else format(x, fmt)


def _ci(d: Delta) -> str:
    return "—" if d.ci_low is None or d.ci_high is None else f"[{d.ci_low:+.4f}, {d.ci_high:+.4f}]"


def _provenance(a: ResultSet, b: ResultSet) -> Safe:
    """Whether A and B were made the same way (config hash, data fingerprints, eval versions), as the gate checks it."""
    evals = {k.eval for k in a.metrics} & {k.eval for k in b.metrics}
    diffs = differences(a.provenance, b.provenance, evals)
    if not diffs:
        return note("A and B share their config hash, data fingerprints and eval versions.")
    return join([tag("p", f"A and B were not made the same way ({len(diffs)} difference(s)): their deltas mix the change "
                          "under test with these.", cls="neg"),
                 table(["kind", "difference"], [[d.kind, d.detail] for d in diffs])])


def _header(a: ResultSet, b: ResultSet, cmp: Comparison) -> Safe:
    n_paired = sum(d.paired for d in cmp.deltas)
    rows = [("A", a.source, a.kind, len(a.metrics), a.provenance.config_hash or "—"),
            ("B", b.source, b.kind, len(b.metrics), b.provenance.config_hash or "—")]
    return join([
        table(["", "source", "kind", "metrics", "config hash"], rows, numeric=[3]),
        _provenance(a, b),
        tag("p", f"{len(cmp.deltas)} metrics in both: {n_paired} paired item by item, {len(cmp.deltas) - n_paired} unpaired; "
                 f"{len(cmp.only_a)} only in A, {len(cmp.only_b)} only in B."),
        note("delta = A − B in each metric's own units. Paired: items matched by id, delta = mean per-item difference "
             "with a 95 % paired percentile-bootstrap interval and a two-sided paired sign-flip permutation p-value. "
             "Unpaired (no per-item records on one side, or a model fit such as the LC win rate): A − B only."),
    ])


def _eval_table(deltas: Sequence[Delta]) -> Safe:
    headers = ["policy", "metric", "slice", "A", "B", "delta", "95 % CI", "p", "n paired", "note"]
    rows = [[d.key.policy, d.key.metric, _slice(d.key), _num(d.a), _num(d.b), _num(d.delta, "+.4f"), _ci(d),
             _num(d.p_value, ".3g"), d.n_paired if d.paired else "unpaired", d.note] for d in deltas]
    return table(headers, rows, numeric=[3, 4, 5, 6, 7, 8])


def _slice(key: MetricKey) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.slice) or "—"


def _only(keys: list[MetricKey], side: str) -> Safe:
    if not keys:
        return note(f"none: every metric of {side} is in both")
    return table(["eval", "policy", "metric", "slice"], [[k.eval, k.policy, k.metric, _slice(k)] for k in keys])


def build_compare_report(run_dir: str | Path, compare_to: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the comparison of run A (``run_dir``) against B (``compare_to``: a run directory, a
    ``results.jsonl`` or a snapshot) to ``out_path`` (default ``<run_dir>/comparison.html``), atomically;
    returns the path. Raises ``ValueError`` naming the file and record for unreadable or malformed input."""
    a, b = load_result_set(run_dir), load_result_set(compare_to)
    cmp = compare_sets(a, b)
    sections = [Section("sec-runs", "Runs compared", _header(a, b, cmp))]
    evals: dict[str, list[Delta]] = {}
    for d in cmp.deltas:
        evals.setdefault(d.key.eval, []).append(d)
    for i, (name, deltas) in enumerate(sorted(evals.items())):
        fig = forest_figure(deltas, f"{name}: A − B")
        sections.append(Section(f"sec-eval-{i}", f"{name}", join([figure_div(fig, f"fig-delta-{i}"), _eval_table(deltas)])))
    sections.append(Section("sec-only-a", "Only in A", _only(cmp.only_a, "A")))
    sections.append(Section("sec-only-b", "Only in B", _only(cmp.only_b, "B")))
    page = render_page(f"Comparison: {a.source} vs {b.source}", sections)
    out = Path(out_path) if out_path is not None else (Path(run_dir) if Path(run_dir).is_dir() else Path(run_dir).parent) \
        / "comparison.html"
    return atomic_write_text(out, page)

"""The gate's outputs: a markdown summary (for ``$GITHUB_STEP_SUMMARY``) and JUnit XML (one
testcase per metric: ``<failure>`` for a regression, ``<error>`` for a missing or invalid metric)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from harness.io import atomic_write_text
from harness.regress.gate import Check
from harness.regress.provenance import ProvenanceCheck

STATUS = {0: "OK", 1: "REGRESSION", 2: "ERROR"}
COLUMNS = ("verdict", "metric", "baseline", "run", "delta", "p-value", "p (adj.)", "n paired", "note")


def _md(text: str) -> str:
    """A markdown table cell: pipes, backslashes, angle brackets and newlines made inert."""
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", " ").replace("\n", " "))


def _code(text: str) -> str:
    """A code span in a table cell (angle brackets stay literal there; pipes are escaped for the table)."""
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def _f(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def _row(c: Check) -> list[str]:
    cells = [c.verdict.upper() if c.verdict in ("regression", "error") else c.verdict, _f(c.baseline, ".4f"), _f(c.run, ".4f"),
             _f(c.delta, "+.4f"), _f(c.p_value, ".3g"), _f(c.p_adjusted, ".3g"), str(c.n_paired) if c.paired else "unpaired", c.note]
    cells = [_md(x) for x in cells]
    return cells[:1] + [_code(c.metric)] + cells[1:]


def _table(checks: Sequence[Check]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(c)) + " |" for c in checks]
    return lines


def counts(checks: Sequence[Check]) -> Counter:
    """Checks per verdict (``ok``, ``regression``, ``error``, ``new``) and ``paired``."""
    n = Counter(c.verdict for c in checks)
    n["paired"] = sum(c.paired for c in checks)
    return n


def _provenance(check: ProvenanceCheck | None) -> list[str]:
    if check is None:
        return []
    if not check.differences:
        return ["", "Provenance: the run and the baseline share their config hash, data fingerprints and eval versions."]
    lines = ["", "### Provenance differences", "",
             "| kind | difference | status |", "|---|---|---|"]
    lines += [f"| {d.kind} | {_md(d.detail)} | {'allowed (allow_mismatch)' if d.allowed else '**ERROR**'} |" for d in check.differences]
    return lines


def markdown_summary(checks: Sequence[Check], code: int, *, run: str, baseline: str, correction: str,
                     error: str | None = None, provenance: ProvenanceCheck | None = None) -> str:
    """The summary page: a status line, the counts, the test used, whether run and baseline were made the
    same way (``provenance``), the problems first, then every metric."""
    n = counts(checks)
    lines = [f"## harness-regress: {STATUS[code]}", "",
             f"Run `{_md(run)}` against baseline `{_md(baseline)}`."]
    if error:
        lines += ["", f"**Error:** {_md(error)}"]
    lines += _provenance(provenance)
    if checks:
        lines += ["", f"{len(checks)} metrics: {n['ok']} ok, {n['regression']} regressions, {n['error']} errors, "
                  f"{n['new']} new; {n['paired']} compared item by item (paired), the rest unpaired.", "",
                  "A metric regresses when its drop in the bad direction exceeds its tolerance and, when per-item records "
                  "exist on both sides, the one-sided paired sign-flip permutation test is significant "
                  f"(p adjusted by `{correction}` <= alpha); without them (unpaired), when the two rows' 95 % intervals "
                  "also do not overlap, where both have one. See docs/regression.md."]
        problems = [c for c in checks if c.verdict in ("error", "regression")]
        if problems:
            lines += ["", "### Regressions and errors", "", *_table(problems)]
        lines += ["", "<details><summary>All metrics</summary>", "", *_table(checks), "", "</details>"]
    return "\n".join(lines) + "\n"


def junit_xml(checks: Sequence[Check], *, run: str, baseline: str, error: str | None = None) -> str:
    """JUnit XML: one ``testsuite`` "harness-regress", one ``testcase`` per metric (classname
    ``harness-regress.<eval>``); an input error becomes one errored testcase ``inputs``."""
    n = counts(checks)
    tests = len(checks) + (1 if error else 0)
    errors = n["error"] + (1 if error else 0)
    suites = ET.Element("testsuites", name="harness-regress", tests=str(tests), failures=str(n["regression"]),
                        errors=str(errors))
    suite = ET.SubElement(suites, "testsuite", name="harness-regress", tests=str(tests), failures=str(n["regression"]),
                          errors=str(errors), skipped="0")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="run", value=run)
    ET.SubElement(props, "property", name="baseline", value=baseline)
    if error:
        case = ET.SubElement(suite, "testcase", classname="harness-regress", name="inputs")
        ET.SubElement(case, "error", message=error, type="invalid_input").text = error
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"harness-regress.{c.key.eval}", name=c.metric)
        detail = (f"baseline={_f(c.baseline, '.6g')} run={_f(c.run, '.6g')} delta={_f(c.delta, '+.6g')} "
                  f"p={_f(c.p_value, '.4g')} p_adj={_f(c.p_adjusted, '.4g')} "
                  f"{'n_paired=' + str(c.n_paired) if c.paired else 'unpaired'}; {c.note}")
        if c.verdict == "regression":
            ET.SubElement(case, "failure", message=c.note, type="regression").text = detail
        elif c.verdict == "error":
            kind = "missing" if "missing from the run" in c.note else "undeclared" if "declare" in c.note else "error"
            ET.SubElement(case, "error", message=c.note, type=kind).text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_outputs(markdown: str, junit: str, md_path: str | Path, junit_path: str | Path, step_summary: bool = True) -> None:
    """Write both files atomically; with ``step_summary`` and ``$GITHUB_STEP_SUMMARY`` set, append the markdown there."""
    atomic_write_text(md_path, markdown)
    atomic_write_text(junit_path, junit)
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary and target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(markdown + "\n")

"""``harness-regress``: the gate (``run_dir=`` against ``baseline=``) or, with ``snapshot=true``, the
baseline snapshot of ``run_dir`` written to ``baseline=``. Config: :class:`harness.config.RegressApp`,
``conf/regress.yaml``; behaviour: :mod:`harness.regress.gate`; docs/regression.md.

Exit codes: 0 ok, 1 regression, 2 error (missing metric, unreadable or malformed input, bad config, or a run
made another way than its baseline: config hash, data fingerprints or eval versions differ, unless
``allow_mismatch`` names the kind; :mod:`harness.regress.provenance`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.regress.gate import EXIT_ERROR, EXIT_OK, Rule, compare, exit_code
from harness.regress.provenance import ProvenanceCheck, differences
from harness.regress.results import load_result_set, write_snapshot
from harness.regress.summary import counts, junit_xml, markdown_summary, write_outputs


def _rule(obj: Any, where: str) -> Rule:
    d = dict(obj)
    unknown = set(d) - {"pattern", "tolerance", "alpha"}
    if unknown:
        extra = " (a metric's direction comes from its declaration)" if "direction" in unknown else ""
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)} (pattern, tolerance, alpha){extra}")
    return Rule(**d)


def output_paths(cfg) -> tuple[Path, Path]:
    """``cfg.markdown`` / ``cfg.junit``, by default ``<run dir>/regress/summary.md`` and ``junit.xml``
    (the folder of ``run_dir`` when it is a results file)."""
    run = Path(str(cfg.run_dir))
    root = (run if run.is_dir() or not run.suffix else run.parent) / "regress"
    return Path(cfg.markdown or root / "summary.md"), Path(cfg.junit or root / "junit.xml")


def run_regress(cfg) -> int:
    """Run the gate (or write a snapshot) for a :class:`harness.config.RegressApp` config; returns the exit code.
    Every input or config error is reported (stderr, and the markdown/JUnit outputs when gating) as exit code 2."""
    if cfg.snapshot:
        try:
            path = write_snapshot(cfg.run_dir, cfg.baseline)
        except (ValueError, OSError) as e:
            print(f"harness-regress: error: {e}", file=sys.stderr)
            return EXIT_ERROR
        print(f"snapshot of {cfg.run_dir}: {path}")
        return EXIT_OK
    md_path, junit_path = output_paths(cfg)
    checks, error, provenance = [], None, None
    try:
        rules = [_rule(r, f"rules[{i}]") for i, r in enumerate(cfg.rules)]
        default = _rule(cfg.default, "default")
        run, base = load_result_set(cfg.run_dir), load_result_set(cfg.baseline)
        evals = {k.eval for k in run.metrics} & {k.eval for k in base.metrics}
        provenance = ProvenanceCheck(differences(run.provenance, base.provenance, evals, list(cfg.allow_mismatch)))
        checks = compare(run, base, rules, default, correction=cfg.correction, ignore=list(cfg.ignore),
                         n_resamples=int(cfg.n_resamples), seed=int(cfg.seed), unpaired_intervals=bool(cfg.unpaired_intervals))
        error = provenance.error()  # the metrics are still compared and listed, but the gate cannot pass
        code = EXIT_ERROR if error else exit_code(checks)
    except (ValueError, OSError, TypeError) as e:
        error, code = str(e), EXIT_ERROR
    md = markdown_summary(checks, code, run=str(cfg.run_dir), baseline=str(cfg.baseline), correction=str(cfg.correction),
                          error=error, provenance=provenance)
    try:
        write_outputs(md, junit_xml(checks, run=str(cfg.run_dir), baseline=str(cfg.baseline), error=error), md_path, junit_path,
                      bool(cfg.step_summary))
    except OSError as e:
        print(f"harness-regress: error: cannot write the summary: {e}", file=sys.stderr)
        return EXIT_ERROR
    n = counts(checks)
    if error:
        print(f"harness-regress: error: {error}", file=sys.stderr)
    for d in provenance.differences if provenance else []:
        if d.allowed:
            print(f"harness-regress: warning: {d.message}", file=sys.stderr)
    for c in checks:
        if c.verdict in ("regression", "error"):
            print(f"{c.verdict.upper():>10}  {c.metric}  {c.note}", file=sys.stderr)
    print(f"harness-regress: {len(checks)} metrics, {n['regression']} regressions, {n['error']} errors, {n['new']} new "
          f"-> exit {code}; {md_path}, {junit_path}")
    return code

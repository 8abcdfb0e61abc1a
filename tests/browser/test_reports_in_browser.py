"""Every report kind in headless Chromium (Debian's system chromium, --headless --no-sandbox).

Slow: needs the browser and a smoke run. Run with ``pytest -m slow tests/browser``. Screenshots go to
``tmp_path`` and, when ``HARNESS_SCREENSHOT_DIR`` is set, are copied there to look at.
"""

import os
import shutil
from pathlib import Path

import pytest

from harness.io import read_jsonl, write_jsonl
from reports.browser_check import XSS_PAYLOADS, check_page

pytestmark = pytest.mark.slow


def _keep(shot: Path) -> None:
    keep = os.environ.get("HARNESS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


def test_checker_catches_what_it_looks_for(tmp_path):
    """The check itself can fail: raw script runs, an empty plot div, a console error and a network fetch are all seen."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body>" + "".join(XSS_PAYLOADS[:2])
                    + "<div class='plotly-graph-div' id='fig-empty'></div>"
                    + "<script>console.error('boom')</script><img src='http://192.0.2.1/x.png'></body></html>")
    res = check_page(page, settle_ms=300)
    assert res.xss in ("script", "img") and res.dialogs
    assert res.empty_figures == ["fig-empty"]
    assert "boom" in res.console_errors
    assert any(u.startswith("http://192.0.2.1") for u in res.network_requests)
    assert not res.ok


def _poison(run_dir: Path) -> None:
    """Put every XSS payload into the outputs and instructions of each per-item file that has text."""
    for path in sorted((run_dir / "results").glob("*_items.jsonl")):
        rows = read_jsonl(path)
        for i, r in enumerate(rows):
            for key in ("output", "instruction", "baseline_output", "prompt"):
                if isinstance(r.get(key), str):
                    r[key] = XSS_PAYLOADS[i % len(XSS_PAYLOADS)] + r[key]
        write_jsonl(path, rows)


def test_run_report_in_browser(smoke_run_copy, tmp_path):
    from reports.run_report import build_run_report

    _poison(smoke_run_copy)
    report = build_run_report(smoke_run_copy)
    shot = tmp_path / "run_report.png"
    res = check_page(report, shot, find_text=XSS_PAYLOADS)
    _keep(shot)
    assert res.figures and not res.empty_figures, res.figures
    assert res.console_errors == [] and res.page_errors == [] and res.network_requests == []
    assert res.xss is None and res.dialogs == []
    assert all(res.found_text.values()), res.found_text  # the payloads are shown as text
    assert shot.stat().st_size > 50_000


def test_comparison_report_in_browser(smoke_run, smoke_run_copy, tmp_path):
    from reports.compare_report import build_compare_report

    _poison(smoke_run_copy)
    report = build_compare_report(smoke_run_copy, smoke_run, tmp_path / "comparison.html")
    shot = tmp_path / "comparison_report.png"
    res = check_page(report, shot)
    _keep(shot)
    assert res.figures and not res.empty_figures, res.figures
    assert res.console_errors == [] and res.page_errors == [] and res.network_requests == []
    assert res.xss is None and res.dialogs == []


def test_sweep_report_in_browser(smoke_run, tmp_path):
    """A real 2 x 2 beta x gamma sweep from the smoke run, plus a failed job whose error text carries XSS payloads."""
    import subprocess
    import sys

    from reports.sweep_report import build_sweep_report
    from tests.sweep_helpers import write_job

    sweep_dir = tmp_path / "sweep"
    exe = Path(sys.executable).parent / "harness-pipeline"
    proc = subprocess.run([str(exe), "pipeline=smoke", "experiment=ppo_beta_gamma", f"upstream={smoke_run}",
                           "ppo.beta=0.01,0.1", "rl_runs.0.ptx_coef=0.0,1.0", f"hydra.sweep.dir={sweep_dir}", "--multirun"],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "HF_HOME": str(tmp_path / "hf")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    import yaml

    constant = [o for o in yaml.safe_load((sweep_dir / "0" / ".hydra" / "overrides.yaml").read_text())
                if not o.startswith(("ppo.beta=", "rl_runs.0.ptx_coef="))]  # the failed job shares the sweep's command line
    write_job(sweep_dir, "99", [*constant, "ppo.beta=0.5", "rl_runs.0.ptx_coef=2.0"],
              error={"type": "RuntimeError", "message": XSS_PAYLOADS[0], "traceback": XSS_PAYLOADS[1]})
    report = build_sweep_report(sweep_dir)
    shot = tmp_path / "sweep_report.png"
    res = check_page(report, shot, find_text=(XSS_PAYLOADS[0],))
    _keep(shot)
    assert len(res.figures) >= 3 and not res.empty_figures, res.figures
    assert res.console_errors == [] and res.page_errors == [] and res.network_requests == []
    assert res.xss is None and res.dialogs == [] and all(res.found_text.values())

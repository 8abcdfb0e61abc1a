"""Open a report in headless Chromium and record what a reader's browser would see.

The check drives the system Chromium (Debian's ``chromium`` package, ``/usr/bin/chromium``,
started with ``--headless --no-sandbox``) through Playwright's CDP client; Playwright's own
browser download is never used. For one HTML file it records:

- console messages of type ``error`` and uncaught page errors (``pageerror``);
- every request the page makes to anything but ``file:`` / ``data:`` / ``about:`` URLs
  (a report must open offline, so this list must be empty);
- every plotly figure div (``div.plotly-graph-div``) and whether it rendered (it holds an
  ``svg.main-svg`` with at least one drawn element);
- whether injected script ran: any ``alert``/``confirm``/``prompt`` dialog, and the global
  ``window.__xss`` that the XSS payloads of the tests set (:data:`XSS_PAYLOADS`);
- a full-page PNG screenshot, when a path is given.

Command line: ``python -m reports.browser_check report.html [--screenshot shot.png]`` prints
the result as JSON and exits 1 if the page has console errors, network requests, empty figures
or executed injected script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

CHROMIUM_ENV = "HARNESS_CHROMIUM"
"""Environment variable naming the Chromium executable (default: ``chromium`` on ``PATH``)."""

XSS_PAYLOADS: tuple[str, ...] = (
    "<script>window.__xss = 'script'; alert('xss')</script>",
    "<img src=x onerror=\"window.__xss = 'img'; alert('xss')\">",
    "</pre></td></tr></table><script>window.__xss = 'breakout'</script>",
)
"""Model-output strings that would run script if a report failed to escape them."""

_LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")


@dataclass
class PageCheck:
    """What headless Chromium recorded for one page (see the module docstring)."""

    path: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    network_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    figures: dict[str, bool] = field(default_factory=dict)  # plot div id -> rendered
    xss: str | None = None  # value of window.__xss after load (None: no injected script ran)
    found_text: dict[str, bool] = field(default_factory=dict)  # each find_text string -> in the rendered text
    screenshot: str | None = None

    @property
    def empty_figures(self) -> list[str]:
        """Ids of plot divs with nothing drawn in them."""
        return [k for k, ok in self.figures.items() if not ok]

    @property
    def ok(self) -> bool:
        """No console or page errors, no network requests, every figure drawn, no injected script ran."""
        return not (self.console_errors or self.page_errors or self.network_requests or self.dialogs
                    or self.empty_figures or self.xss is not None)


def chromium_executable() -> str:
    """Path of the system Chromium: ``$HARNESS_CHROMIUM`` or ``chromium`` on ``PATH``.

    Raises ``FileNotFoundError`` when neither exists (install Debian's ``chromium`` package).
    """
    exe = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe or not Path(exe).exists():
        raise FileNotFoundError(f"no Chromium executable: set {CHROMIUM_ENV} or install the 'chromium' package")
    return exe


_FIGURES_JS = """() => Array.from(document.querySelectorAll('div.plotly-graph-div')).map(d => [
  d.id,
  d.querySelectorAll('svg.main-svg').length > 0 &&
    d.querySelectorAll('svg.main-svg path, svg.main-svg rect, svg.main-svg text').length > 0])"""


def check_page(path: str | Path, screenshot: str | Path | None = None, *, find_text: tuple[str, ...] = (),
               settle_ms: int = 1500, width: int = 1300) -> PageCheck:
    """Load ``path`` (an HTML file) in headless Chromium and return a :class:`PageCheck`.

    ``find_text``: strings to look for in the page's rendered text (``document.body.textContent``),
    e.g. an XSS payload that must show as text. ``settle_ms``: time after the ``load`` event for plotly to draw. ``width``: viewport width in
    CSS pixels. Raises ``FileNotFoundError`` if ``path`` or Chromium is missing; Playwright errors
    (e.g. the browser failing to start) propagate.
    """
    from playwright.sync_api import sync_playwright

    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"report not found: {path}")
    result = PageCheck(path=str(path))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_executable(), headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: result.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: result.page_errors.append(str(e)))
            page.on("request", lambda r: None if r.url.startswith(_LOCAL_SCHEMES) else result.network_requests.append(r.url))

            def on_dialog(d):
                result.dialogs.append(f"{d.type}: {d.message}")
                d.dismiss()

            page.on("dialog", on_dialog)
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_timeout(settle_ms)
            result.figures = dict(page.evaluate(_FIGURES_JS))
            xss = page.evaluate("() => window.__xss === undefined ? null : String(window.__xss)")
            result.xss = xss
            text = page.evaluate("() => document.body.textContent")
            result.found_text = {t: t in text for t in find_text}
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
                result.screenshot = str(screenshot)
        finally:
            browser.close()
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: check one report; print JSON; exit 0 when :attr:`PageCheck.ok`, else 1."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", help="the report's HTML file")
    ap.add_argument("--screenshot", help="write a full-page PNG here")
    args = ap.parse_args(argv)
    res = check_page(args.html, args.screenshot)
    print(json.dumps({**asdict(res), "empty_figures": res.empty_figures, "ok": res.ok}, indent=2))
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())

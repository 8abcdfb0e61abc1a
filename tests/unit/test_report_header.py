"""The run report's header names the model and the preset and flags random weights, from what run.json records.

The smoke case is tests/data/smoke_run (a real `harness-pipeline pipeline=smoke` run on model=tiny); the others are
that run.json with the model, preset or stage changed the way a default pipeline run or a harness-eval run records them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from reports.page_reader import section_html
from reports.run_report import build_run_report
from reports.sections.header import RANDOM_BADGE

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "smoke_run"


def _page(tmp_path: Path, edit=None) -> str:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    if edit is not None:
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        edit(info)
        (run / "run.json").write_text(json.dumps(info), encoding="utf-8")
    return build_run_report(run).read_text(encoding="utf-8")


def _banner(page: str) -> str:
    m = re.search(r'<h1>[^<]*</h1>\n(<p class="run-identity">.*?</p>)\n<nav', page)
    assert m, "no identity line under the title"
    return m.group(1)


def _fields(page: str) -> dict[str, str]:
    """The Run section's first table as {field: cell html}."""
    sec = section_html(page, "sec-run")
    return dict(re.findall(r"<tr><td>([^<]*)</td><td>(.*?)</td></tr>", sec[: sec.index("</table>")]))


@pytest.fixture(scope="module")
def smoke_page(tmp_path_factory) -> str:
    return _page(tmp_path_factory.mktemp("hdr"))


def test_smoke_run_names_tiny_and_smoke_and_says_random_weights(smoke_page):
    info = json.loads((FIXTURE / "run.json").read_text(encoding="utf-8"))
    assert (info["config"]["model"]["name"], info["config"]["pipeline"]["name"]) == ("tiny", "smoke")
    assert _banner(smoke_page) == ('<p class="run-identity">model <code>tiny</code> · preset <code>smoke</code> '
                                   f'<strong class="badge-warn">{RANDOM_BADGE}</strong></p>')
    fields = _fields(smoke_page)
    assert fields["model"] == "<code>tiny</code>" and fields["preset"] == "<code>smoke</code>"
    assert fields["base weights"] == f'<strong class="badge-warn">{RANDOM_BADGE} (model=tiny is a random initialisation)</strong>'
    assert fields["run id"] == f"<code>{info['run_id']}</code>" and fields["git commit"] == f"<code>{info['git_commit']}</code>"
    assert all(f"<code>{name}: {path}</code>" in fields["policies"] for name, path in info["policies"].items())


def test_default_preset_on_the_embedded_model_has_no_badge(tmp_path):
    def default(info):
        info["config"]["model"]["name"] = "smollm2-135m"
        info["config"]["pipeline"]["name"] = "default"

    page = _page(tmp_path, default)
    assert _banner(page) == '<p class="run-identity">model <code>smollm2-135m</code> · preset <code>default</code></p>'
    assert _fields(page)["base weights"] == "loaded from smollm2-135m"
    assert RANDOM_BADGE not in page and "badge-warn" not in page.split("</style>", 1)[1]


def test_harness_eval_run_names_its_config_as_the_preset(tmp_path):
    def eval_run(info):  # what harness-eval writes: stage eval, preset = its config name, no pipeline key
        info.update(stage="eval", preset="eval")
        info["config"].pop("pipeline")
        info["config"]["model"]["name"] = "HuggingFaceTB/SmolLM2-360M-Instruct"

    page = _page(tmp_path, eval_run)
    assert "model <code>HuggingFaceTB/SmolLM2-360M-Instruct</code> · preset <code>eval</code>" in _banner(page)
    assert RANDOM_BADGE not in page


def test_a_run_json_without_config_says_what_is_not_recorded(tmp_path):
    page = _page(tmp_path, lambda info: info.pop("config"))
    assert _banner(page) == ('<p class="run-identity">model <code>not recorded in run.json</code> · '
                             'preset <code>not recorded in run.json</code></p>')
    assert _fields(page)["base weights"] == "not recorded in run.json"

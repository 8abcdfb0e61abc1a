"""Every console script's ``--help`` (Hydra's app help, conf/hydra/help/): what it does, its main options, an example.

One subprocess calls each entry point of pyproject.toml's ``[project.scripts]`` as its console script does
(``sys.exit(<module>:<function>())`` with ``sys.argv = [<script>, "--help"]``): the import is paid once, not
eight times, and the process shows at the end what ``--help`` imported: never torch.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import tomllib

from tests.cli_helpers import REPO

SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
DRIVER = r"""
import contextlib, importlib, io, json, sys
out = {}
for script, target in json.loads(sys.argv[1]).items():
    module, function = target.split(":")
    sys.argv = [script, "--help"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            code = getattr(importlib.import_module(module), function)()
        except SystemExit as e:
            code = e.code
    out[script] = {"code": code or 0, "stdout": buf.getvalue()}
print(json.dumps({"help": out, "torch": "torch" in sys.modules}))
"""


def test_there_are_eight_console_scripts():
    assert sorted(SCRIPTS) == ["harness-eval", "harness-label", "harness-pipeline", "harness-ppo", "harness-regress",
                               "harness-report", "harness-rm", "harness-sft"]


def test_every_console_script_help_says_what_it_does_its_options_and_an_example(tmp_path):
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(SCRIPTS)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)  # a hang guard only
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert sorted(result["help"]) == sorted(SCRIPTS)
    for script, got in result["help"].items():
        out = got["stdout"]
        assert got["code"] == 0, (script, out[-2000:])
        lines = out.splitlines()
        assert lines[0].startswith(f"{script}: ") and len(lines[0]) > len(script) + 30, (script, lines[0])
        options = lines[lines.index("Main options:") + 1:]
        assert len([line for line in options[:options.index("")] if re.match(r"  \S+", line)]) >= 3, (script, out[:1500])
        example = lines[lines.index("Example:") + 1]
        assert example.startswith(f"  {script} "), (script, example)
        assert "== The composed config" in out and "harness/config.py" in out
    assert "eval.run=[winrate,toxicity]" in result["help"]["harness-eval"]["stdout"]
    assert "baseline: ???" in result["help"]["harness-regress"]["stdout"]  # each script composes its own config
    assert result["torch"] is False
    assert not list(tmp_path.iterdir())  # --help writes no run directory

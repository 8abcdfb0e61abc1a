"""The example GitHub Actions workflow (.github/workflows/regress.yml) is checked here, since it cannot run
on GitHub from this machine: its shell steps parse, its commands name real console scripts, files and
configs, its cache key covers the code, and what it uploads is what the gate and the reports write.
tests/integration/test_pipeline_smoke.py runs its gate and report steps on a real smoke run."""

import shlex
import subprocess
from pathlib import Path

import tomllib
import yaml

from harness.regress.results import load_result_set

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "regress.yml"


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps() -> dict[str, dict]:
    return {s.get("name", s.get("uses")): s for s in workflow()["jobs"]["regress"]["steps"]}


def test_runs_on_every_pull_request():
    wf = workflow()
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads the bare key `on` as true
    assert "pull_request" in triggers
    assert wf["permissions"] == {"contents": "read"}


def test_every_shell_step_parses():
    scripts = [s["run"] for s in steps().values() if "run" in s]
    assert len(scripts) == 5
    for script in scripts:
        proc = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert proc.returncode == 0, (script, proc.stderr)


def test_commands_name_real_console_scripts_files_and_configs():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    s = steps()
    commands = {name: shlex.split(s[name]["run"]) for name in
                ("harness-pipeline pipeline=smoke", "Regression gate", "Comparison report (run vs baseline)")}
    for argv in commands.values():
        assert argv[0] in scripts
    assert "pipeline=smoke" in commands["harness-pipeline pipeline=smoke"]
    assert (REPO / "conf" / "pipeline" / "smoke.yaml").is_file()
    baseline = dict(a.split("=", 1) for a in commands["Regression gate"][1:])["baseline"]
    assert baseline == dict(a.split("=", 1) for a in commands["Comparison report (run vs baseline)"][1:])["compare_to"]
    snapshot = load_result_set(REPO / baseline)  # a real snapshot, readable by the gate
    assert snapshot.kind == "snapshot" and len(snapshot.metrics) > 100


def test_install_step_pins_the_makefiles_torch():
    install = steps()["Install"]["run"]
    makefile = (REPO / "Makefile").read_text()
    assert "torch==2.13.0" in install and "torch==2.13.0" in makefile
    assert install.count("-c constraints.txt") == 2  # torch first, then everything under the same constraints


def test_generation_cache_key_covers_code_and_config():
    key = steps()["Restore the generation cache"]["with"]["key"]
    globs = key.split("hashFiles(")[1].split(")")[0]
    patterns = [p.strip().strip("'") for p in globs.split(",")]
    assert {"harness/**", "trainers/**", "conf/**"} <= set(patterns)
    for pattern in patterns:  # every pattern matches something, so the key really changes with the code
        assert list(REPO.glob(pattern)), pattern
    assert workflow()["jobs"]["regress"]["env"]["HARNESS_GEN_CACHE"].endswith(
        steps()["Restore the generation cache"]["with"]["path"])


def test_uploads_are_what_the_gate_and_reports_write():
    env = workflow()["jobs"]["regress"]["env"]
    run_dir = env["RUN_DIR"].replace("${{ github.workspace }}/", "")
    paths = steps()["Upload the gate's outputs and the reports"]["with"]["path"].split()
    assert sorted(paths) == sorted(f"{run_dir}/{p}" for p in
                                   ("regress/junit.xml", "regress/summary.md", "report.html", "comparison.html"))

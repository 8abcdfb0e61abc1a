"""Runs are exclusive and resumes honest: a busy run directory refuses a second run at once, a killed
run's lock is taken over with a warning, ``resume=true`` refuses a changed config unless told, the
streamed log never repeats steps, files get the umask's mode, and two writers of one generation cache
lose nothing."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.evals.gencache import GenerationCache
from harness.io import read_json, read_jsonl
from harness.runlock import LOCK_FILE
from tests.cli_helpers import BIN, SFT, last_line, run_app

pytestmark = pytest.mark.integration
QUICK_SFT = [*SFT, "sft.epochs=2", "sft.select_by=loss"]  # 2 optimiser steps


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    """A process that takes the run directory's lock and keeps it until killed; returns once it holds it."""
    code = (f"import sys; from harness.runlock import RunLock; RunLock({str(run_dir)!r}).acquire(); "
            "print('held', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_busy_run_directory_refuses_a_second_pipeline_and_keeps_the_first_runs_files(tmp_path):
    run = tmp_path / "run"
    holder = _hold_lock(run)
    try:
        (run / ".hydra").mkdir()
        (run / ".hydra" / "overrides.yaml").write_text("- first run\n")
        before = sorted((p.relative_to(run).as_posix(), p.read_bytes()) for p in run.rglob("*") if p.is_file())
        proc = run_app("harness-pipeline", ["pipeline=smoke"], run, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-3000:]
        line = last_line(proc.stderr)
        assert "is being written by another run" in line and f"pid {holder.pid} on " in line and ", started " in line, line
        after = sorted((p.relative_to(run).as_posix(), p.read_bytes()) for p in run.rglob("*") if p.is_file())
        assert after == before  # nothing overwritten: .hydra/, the lock's holder record
    finally:
        holder.kill()
        holder.wait()


def _holder_written(lock: Path) -> bool:
    """The lock file names its holder: the holder has the flock (it writes its details only once it does)."""
    try:
        return "pid" in json.loads(lock.read_text())
    except (OSError, ValueError):
        return False


def test_two_stage_runs_in_one_directory_the_second_fails_and_the_first_finishes_intact(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen([str(BIN / "harness-sft"), *QUICK_SFT, "sft.epochs=3", f"hydra.run.dir={run}"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300  # hang guard only
    while not _holder_written(run / LOCK_FILE) and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    second = run_app("harness-sft", [*QUICK_SFT, "seed=7"], run, cwd=tmp_path)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert second.returncode == 2 and f"pid {first.pid} on " in last_line(second.stderr), second.stderr[-3000:]
    assert [r["step"] for r in read_jsonl(run / "checkpoints" / "sft_train_log.jsonl")] == [1, 2, 3]  # no interleaving
    assert "seed=7" not in (run / ".hydra" / "overrides.yaml").read_text()
    assert read_json(run / "run_record.json")["config"]["seed"] == 0
    assert read_json(run / "checkpoints" / "sft" / "run.json")["config"]["seed"] == 0
    assert not (run / LOCK_FILE).exists()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    """Umask 022 for this test's subprocesses (they inherit it), restored afterwards."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_resume_is_honest_and_logs_never_repeat_steps(tmp_path, umask_022):
    run = tmp_path / "run"
    log = run / "checkpoints" / "sft_train_log.jsonl"

    # a stale lock, left by a killed run, is taken over with a warning
    holder = _hold_lock(run)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    first = run_app("harness-sft", QUICK_SFT, run, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "took over the stale lock" in first.stderr and f"pid {holder.pid}" in first.stderr
    assert [r["step"] for r in read_jsonl(log)] == [1, 2]
    for f in (run / "run_record.json", run / "checkpoints" / "sft" / "run.json", run / "checkpoints" / "sft" / "model.safetensors",
              run / "checkpoints" / "base" / "model.safetensors"):
        assert _mode(f) == 0o644, f  # the umask's mode, not mkstemp's 0600

    # a changed config is refused, naming the keys, and nothing changes
    before = {p: p.read_bytes() for p in (log, run / "run_record.json")}
    refused = run_app("harness-sft", [*QUICK_SFT, "resume=true", "seed=1", "sft.lr=0.5"], run, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr[-3000:]
    line = last_line(refused.stderr)
    assert "seed: 0 -> 1" in line and "sft.lr: 1e-05 -> 0.5" in line and "resume_allow_changes=true" in line, line
    assert {p: p.read_bytes() for p in before} == before

    # ... unless accepted explicitly, which is recorded; without a training-state checkpoint (sft.save_steps=0)
    # the resumed stage trains from step 1, and its log starts over instead of repeating steps 1, 2
    allowed = run_app("harness-sft", [*QUICK_SFT, "resume=true", "seed=1", "resume_allow_changes=true"], run, cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert [r["step"] for r in read_jsonl(log)] == [1, 2]
    record = read_json(run / "run_record.json")
    assert [r["changes"] for r in record["resumes"]] == [{"seed": [0, 1]}] and record["config"]["seed"] == 1
    assert read_json(run / "checkpoints" / "sft" / "run.json")["config"]["seed"] == 1


WRITER = textwrap.dedent("""
    import sys
    from harness.evals.gencache import GenerationCache
    cache = GenerationCache(sys.argv[1])
    for i in range(int(sys.argv[3])):
        cache.put("m" * 64, {"max_new_tokens": 8}, [f"{sys.argv[2]} prompt {i}"], [f"{sys.argv[2]} output {i}"])
""")


def test_two_processes_sharing_a_generation_cache_lose_no_entry(tmp_path):
    root, n = tmp_path / "cache", 60
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), name, str(n)]) for name in ("A", "B")]
    assert [w.wait(timeout=600) for w in writers] == [0, 0]
    cache = GenerationCache(root)
    prompts = [f"{name} prompt {i}" for name in ("A", "B") for i in range(n)]
    got = cache.get("m" * 64, {"max_new_tokens": 8}, prompts)
    assert got == [f"{name} output {i}" for name in ("A", "B") for i in range(n)]
    assert len(list(root.rglob("*.jsonl"))) == 1  # both wrote the same shard


def test_a_resumed_pipeline_with_a_changed_seed_is_refused_before_anything_is_written(tmp_path):
    from hydra import compose, initialize_config_dir

    from harness.cli import CONF_DIR
    from harness.entry import _plain
    from harness.resume import record_start

    run = tmp_path / "run"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("pipeline", overrides=["pipeline=smoke", f"out_dir={run}"])
    record_start(run, _plain(cfg, run), resume=False, allow_changes=False)
    proc = run_app("harness-pipeline", ["pipeline=smoke", "resume=true", "seed=3"], run, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = last_line(proc.stderr)
    assert "keys that affect results differ" in line and "seed: 0 -> 3" in line and "ppo" not in line, line
    assert sorted(p.name for p in run.iterdir()) == ["run_record.json"]

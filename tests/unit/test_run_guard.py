"""The run-directory lock, the resume record, model-path checks and how a user error is printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException

from harness.entry import exit_code, one_line
from harness.errors import (
    ConfigError,
    ModelPathError,
    ResumeMismatchError,
    RunLockedError,
)
from harness.io import read_json
from harness.modelpaths import check_model_path
from harness.resume import RECORD_FILE, record_start, result_changes
from harness.runlock import LOCK_FILE, RunLock

CFG = {"seed": 0, "run_id": "a", "out_dir": "/x", "sft": {"lr": 0.1, "save_steps": 0}, "tracking": {"dir": "/x/t"}}


def test_lock_is_exclusive_across_processes_and_released(tmp_path):
    code = f"from harness.runlock import RunLock; RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); input()"
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"is being written by another run \(pid {holder.pid} on .*, started "):
            RunLock(tmp_path).acquire()
    finally:
        holder.communicate("\n", timeout=60)  # exits: the kernel drops its flock; it left the file (no release)
    lock = RunLock(tmp_path)
    previous = lock.acquire()  # stale: taken over, the previous holder reported
    assert previous["pid"] == holder.pid and lock.held
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists() and not lock.held
    assert RunLock(tmp_path).acquire() is None  # a cleanly released lock leaves nothing stale


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path):
    first = RunLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    finally:
        first.release()


def test_result_changes_ignore_where_and_how_often_but_not_what():
    new = {**CFG, "run_id": "b", "out_dir": "/y", "sft": {"lr": 0.2, "save_steps": 5}, "tracking": {"dir": "/y/t"}, "extra": 1}
    assert result_changes(CFG, new) == {"extra": ("<absent>", 1), "sft.lr": (0.1, 0.2)}


def test_record_start_checks_and_records_resumes(tmp_path):
    assert record_start(tmp_path, CFG, resume=False, allow_changes=False, overrides=["seed=0"]) is None
    assert read_json(tmp_path / RECORD_FILE)["config"] == CFG
    record_start(tmp_path, {**CFG, "run_id": "b"}, resume=True, allow_changes=False)  # only a label changed
    changed = {**CFG, "seed": 1}
    with pytest.raises(ResumeMismatchError, match=r"seed: 0 -> 1; resume with the recorded values, or add resume_allow_changes=true"):
        record_start(tmp_path, changed, resume=True, allow_changes=False)
    record_start(tmp_path, changed, resume=True, allow_changes=True, overrides=["seed=1"])
    record = read_json(tmp_path / RECORD_FILE)
    assert record["config"]["seed"] == 1
    assert [r["changes"] for r in record["resumes"]] == [{}, {"seed": [0, 1]}] and record["resumes"][1]["overrides"] == ["seed=1"]


def test_resume_of_a_run_recorded_before_the_record_file_compares_with_run_json(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"config": CFG}))
    with pytest.raises(ResumeMismatchError, match="sft.lr: 0.1 -> 0.3"):
        record_start(tmp_path, {**CFG, "sft": {"lr": 0.3, "save_steps": 0}}, resume=True, allow_changes=False)


def test_resume_without_any_record_warns(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    assert "resuming unchecked" in record_start(tmp_path, CFG, resume=True, allow_changes=False)


def _ckpt(folder, weights: bytes | None = None):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    if weights is not None:
        (folder / "model.safetensors").write_bytes(weights)
    return folder


def _safetensors(n: int) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    return len(header).to_bytes(8, "little") + header + b"\0" * (4 * n)


def test_model_paths(tmp_path, tiny_dir):
    assert check_model_path(tiny_dir) is not None and check_model_path("org/name") is None
    good, size = _ckpt(tmp_path / "good", _safetensors(10)), len(_safetensors(10))
    assert check_model_path(str(good)) == good
    cases = [
        (str(tmp_path / "missing"), "no such file or directory"),
        (str(good / "config.json"), "is a file"),
        (str(_ckpt(tmp_path / "cut", _safetensors(10)[:-7])), f"truncated safetensors file ({size - 7} of the {size} bytes"),
        (str(_ckpt(tmp_path / "noweights")), "no weight files"),
        (str(_ckpt(tmp_path / "badheader", b"\x05\0\0\0\0\0\0\0{nope")), "damaged safetensors header"),
    ]
    run = tmp_path / "run"
    _ckpt(run / "checkpoints" / "sft", _safetensors(1))
    cases.append((str(run), f"is a run directory, not a model checkpoint: give one of its checkpoints (sft), e.g. policy={run / 'checkpoints' / 'sft'}"))
    for path, message in cases:
        with pytest.raises(ModelPathError) as info:
            check_model_path(path, "policy")
        assert message in str(info.value) and f"{path}" in str(info.value), (path, str(info.value))


def test_user_errors_print_as_one_line_with_exit_code_2():
    cause = ValueError("Key 'foo' not in 'SFTConfig'\n    full_key: sft.foo\n    object_type=SFTConfig")
    hydra_error = ConfigCompositionException("Could not override 'sft.foo'.\nTo append to your config use +sft.foo=1")
    hydra_error.__cause__ = cause
    assert one_line(hydra_error) == ("Could not override 'sft.foo'.; To append to your config use +sft.foo=1; "
                                     "Key 'foo' not in 'SFTConfig'; full_key: sft.foo")
    assert exit_code(hydra_error) == 2 and exit_code(ConfigError("x")) == 2 and exit_code(RuntimeError("bug")) == 1

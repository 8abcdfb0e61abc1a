"""Bad input, as a demanding user or an adversary gives it: every console script answers with ONE line
on stderr naming what, where and how to fix, exit code 2, and nothing written or lost.

Table-driven: each :class:`Case` is a command line (console script + overrides), the exit code, the
words its last stderr line must hold, and what the run directory may hold afterwards. Most cases
fail in validation, before Hydra or the stage write anything (about half a second each); the data
cases fail in the stage's first step, loading data; the other failure modes of the same readers
(:data:`LOADER_CASES`) run in-process through the loader that step calls. Run-directory locking, resume checks and the
generation cache under two writers are in :mod:`tests.integration.test_exclusive_runs`.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import selection
from harness.config import DataConfig
from harness.entry import exit_code, one_line
from tests.cli_helpers import (
    DATA,
    EVAL,
    LABEL,
    PPO,
    RM,
    SFT,
    SMOKE,
    TINY,
    last_line,
    run_app,
)

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------------------ data fixtures


def data_dir_with(root: Path, relpath: str, content: bytes | None) -> Path:
    """A copy of the data mirror (symlinks) in which ``relpath`` holds ``content`` (None: the file is missing)."""
    out = root / "data"
    target = Path(relpath)
    for entry in DATA.iterdir():
        if entry.name != target.parts[0]:
            (out / entry.name).parent.mkdir(parents=True, exist_ok=True)
            (out / entry.name).symlink_to(entry)
    folder = out / target.parts[0]
    folder.mkdir(parents=True, exist_ok=True)
    for f in (DATA / target.parts[0]).iterdir():
        if f.name != target.name:
            (folder / f.name).symlink_to(f)
    if content is not None:
        (out / relpath).write_bytes(content)
    return out


HH = "hh_rlhf/helpful-base_test.jsonl.gz"
SEEDS = "self_instruct_seed/seed_tasks.jsonl"


def _seed_lines() -> list[bytes]:
    return (DATA / SEEDS).read_bytes().splitlines(keepends=True)


def truncated_gzip() -> bytes:
    raw = (DATA / HH).read_bytes()
    return raw[: len(raw) // 2]


def bad_utf8_on_line_3() -> bytes:
    lines = _seed_lines()
    lines[2] = lines[2].replace(b'"instruction": "', b'"instruction": "\xff\xfe', 1)
    return b"".join(lines)


def duplicated_first_id() -> bytes:
    lines = _seed_lines()
    return b"".join(lines + [lines[0]])


def bad_json_on_line_2() -> bytes:
    lines = _seed_lines()
    lines[1] = lines[1][: len(lines[1]) // 2] + b"\n"
    return b"".join(lines)


# ---------------------------------------------------------------------------------------- the table


@dataclass
class Case:
    """One bad input. ``args`` may use ``{tiny}`` (a model=tiny checkpoint), ``{tmp}`` (a scratch folder)
    and ``{data}`` (the data mirror with ``data`` applied: (relative path, bytes or None for missing)).
    ``leaves``: ``nothing`` (the run directory is never created) or ``no_output`` (no checkpoint,
    run.json or results were written, e.g. a data error after the base model was built)."""

    id: str
    app: str
    args: list[str]
    words: tuple[str, ...]
    code: int = 2
    data: tuple[str, bytes | None] | None = None
    leaves: str = "nothing"
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    # ---- silent before: wrong sizes and coefficients the single-stage apps accepted
    Case("ppo_negative_beta", "harness-ppo", [*PPO, "ppo.beta=-0.5"], ("ppo.beta=-0.5", "out of range", ">= 0")),
    Case("sft_negative_n_train", "harness-sft", [*SFT, "data.n_sft_train=-5"], ("data.n_sft_train=-5", ">= 1")),
    Case("sft_n_train_exceeds_demos", "harness-sft", [*SFT, "init_from={tiny}", "data.n_sft_train=100000"],
         ("data.n_sft_train + data.n_sft_val asks for 100001", "only 175 demonstrations"), leaves="no_output"),
    Case("pipeline_negative_ptx_coef", "harness-pipeline", [*SMOKE, "rl_runs.1.ptx_coef=-1"], ("rl_runs.1.ptx_coef=-1.0", ">= 0")),
    # ---- raw tracebacks before: sizes and counts
    Case("sft_batch_size_0", "harness-sft", [*SFT, "sft.batch_size=0"], ("sft.batch_size=0", ">= 1")),
    Case("ppo_steps_negative", "harness-ppo", [*PPO, "ppo.steps=-1"], ("ppo.steps=-1", ">= 1")),
    Case("sft_epochs_0", "harness-sft", [*SFT, "sft.epochs=0"], ("sft.epochs=0", ">= 1")),
    Case("eval_batch_size_0", "harness-eval", [*EVAL, "eval.batch_size=0"], ("eval.batch_size=0", ">= 1")),
    Case("eval_n_eval_prompts_0", "harness-eval", [*EVAL, "data.n_eval_prompts=0"], ("data.n_eval_prompts=0", ">= 1")),
    Case("pipeline_batch_size_0", "harness-pipeline", [*SMOKE, "sft.batch_size=0"], ("sft.batch_size=0", ">= 1")),
    # ---- more ranges, choices and cross-field rules
    Case("sft_lr_0", "harness-sft", [*SFT, "sft.lr=0"], ("sft.lr=0", "> 0")),
    Case("sft_lr_nan", "harness-sft", [*SFT, "sft.lr=nan"], ("sft.lr=nan", "not a finite number")),
    Case("sft_warmup_ratio_1_5", "harness-sft", [*SFT, "sft.warmup_ratio=1.5"], ("sft.warmup_ratio=1.5", "<= 1")),
    Case("sft_mixed_precision_fp8", "harness-sft", [*SFT, "sft.mixed_precision=fp8"], ("sft.mixed_precision='fp8'", "bf16")),
    Case("sft_prompt_longer_than_sequence", "harness-sft", [*SFT, "sft.max_prompt_length=32"],
         ("sft.max_prompt_length=32", "smaller than sft.max_length=32")),
    Case("ppo_cliprange_0", "harness-ppo", [*PPO, "ppo.cliprange=0"], ("ppo.cliprange=0", "> 0")),
    Case("ppo_minibatch_does_not_divide", "harness-ppo", [*PPO, "ppo.batch_size=4", "ppo.mini_batch_size=3"],
         ("ppo.mini_batch_size=3", "must divide ppo.batch_size=4")),
    Case("ppo_adaptive_kl_without_target", "harness-ppo", [*PPO, "ppo.kl_control=adaptive"], ("ppo.kl_target",)),
    Case("label_k_min_above_k_max", "harness-label", [*LABEL, "label.k_min=5", "label.k_max=3"], ("label.k_min=5", "<= label.k_max=3")),
    Case("label_noise_rate_0_6", "harness-label", [*LABEL, "label.noise_rate=0.6"], ("label.noise_rate=0.6", "< 0.5")),
    Case("split_fractions_do_not_sum_to_1", "harness-rm", [*RM, "data.split_fractions.rm_train=0.9"],
         ("data.split_fractions", "sum to 1")),
    Case("unknown_hh_subset", "harness-rm", [*RM, "data.hh_subsets=[helpful-base,nope]"], ("data.hh_subsets", "unknown: ['nope']")),
    Case("rm_unknown_split", "harness-rm", [*RM, "split=judge_toxic"], ("split='judge_toxic'", "judge_helpful")),
    Case("pipeline_reserved_rl_run", "harness-pipeline", [*SMOKE, "rl_runs=[{{name:sft}}]"], ("rl_runs", "['sft'] cannot name an RL policy")),
    Case("pipeline_old_rl_runs_form", "harness-pipeline", [*SMOKE, "rl_runs=[ppo,dpo]"], ("rl_runs is a list of {name, ptx_coef}",)),
    Case("ppo_old_gamma_key", "harness-ppo", [*PPO, "ppo.gamma=1"], ("'ppo.gamma' was renamed", "ppo.ptx_coef")),
    Case("eval_unknown_eval", "harness-eval", [*EVAL, "eval.run=[nope]"], ("eval.run: no eval named 'nope'",)),
    Case("data_dir_missing", "harness-sft", [*SFT, "data.data_dir=/nonexistent/data"], ("data.data_dir", "/nonexistent/data", "does not exist")),
    # ---- Hydra's own errors, also one line and exit 2
    Case("unknown_key", "harness-sft", [*SFT, "sft.foo=1"], ("sft.foo", "+sft.foo=1")),
    Case("wrong_type", "harness-sft", [*SFT, "sft.batch_size=abc"], ("sft.batch_size=abc", "Integer")),
    Case("missing_required_policy", "harness-ppo", [*TINY, "reward_model={tiny}"], ("policy is required", "policy=<value>")),
    Case("eval_without_policies", "harness-eval", [*TINY], ("at least one policy", "+policies.")),
    Case("report_without_target", "harness-report", [], ("exactly one of run_dir", "sweep_dir"), leaves="any"),
    # ---- model paths
    Case("model_path_missing", "harness-sft", [*SFT, "init_from=/nonexistent/ckpt"], ("init_from=/nonexistent/ckpt", "no such file")),
    Case("run_dir_as_model", "harness-ppo", [*PPO[:1], "policy={tmp}/run", "reward_model={tiny}"],
         ("policy=", "is a run directory", "checkpoints/sft")),
    Case("truncated_safetensors", "harness-rm", [*RM[:1], "init_from={tmp}/truncated", *RM[2:]],
         ("model.safetensors", "truncated safetensors")),
    Case("checkpoint_without_config", "harness-ppo", [*PPO[:1], "policy={tmp}/noconfig", "reward_model={tiny}"],
         ("policy=", "no config.json")),
    Case("eval_policy_path_missing", "harness-eval", [*TINY, "+policies.sft=/nonexistent/sft", "eval.run=[winrate]"],
         ("policies.sft=/nonexistent/sft", "no such file")),
    Case("eval_outputs_file_missing", "harness-eval", [*TINY, "+policies.d={{outputs:/nonexistent/o.json}}", "eval.run=[winrate]"],
         ("policies.d.outputs=/nonexistent/o.json", "no such file")),
    Case("comparisons_file_missing", "harness-rm", [*RM, "comparisons={tmp}/none.jsonl"], ("comparisons=", "none.jsonl", "no such file")),
    # ---- data files (the other failure modes of the same readers: LOADER_CASES below, in-process)
    Case("hh_truncated_gzip", "harness-rm", [*RM, "data.data_dir={data}"], ("helpful-base_test.jsonl.gz", "truncated gzip"),
         data=(HH, None), leaves="no_output"),
    Case("demos_duplicate_id", "harness-sft", [*SFT, "init_from={tiny}", "data.data_dir={data}"],
         ("seed_tasks.jsonl:176", "'id'", "repeats line 1"), data=(SEEDS, None), leaves="no_output"),
    # ---- how errors look: the traceback only on request, a bug is still a bug
    Case("verbose_flag_adds_traceback", "harness-sft", [*SFT, "sft.batch_size=0", "-v"], ("sft.batch_size=0", "Traceback")),
    Case("hydra_full_error_adds_traceback", "harness-sft", [*SFT, "sft.batch_size=0"], ("sft.batch_size=0", "Traceback"),
         env={"HYDRA_FULL_ERROR": "1"}),
]
# data content generated per case where a fixed bytes value would be too large to list in the table
CONTENT = {"hh_truncated_gzip": truncated_gzip, "demos_invalid_utf8": bad_utf8_on_line_3,
           "demos_duplicate_id": duplicated_first_id, "demos_invalid_json": bad_json_on_line_2}
MISSING = {"hh_subset_file_missing"}

# Data-file failure modes run in-process through the loader the stage calls first (the same code path as
# the console script, without its 5 s of imports); the exit code is what harness.entry.console gives the error.
COMPARISONS = ("selection.comparisons", lambda data: selection.comparisons(DataConfig(data_dir=data), "rm"))
DEMOS = ("selection.demonstrations", lambda data: selection.demonstrations(DataConfig(data_dir=data)))
LOADER_CASES = [
    Case("hh_subset_empty_file", COMPARISONS[0], [], ("helpful-base_test.jsonl.gz", "empty file (0 bytes)"), data=(HH, b"")),
    Case("hh_text_named_gz", COMPARISONS[0], [], ("helpful-base_test.jsonl.gz", "not a readable gzip file"),
         data=(HH, b'{"chosen": "a", "rejected": "b"}\n')),
    Case("hh_no_records", COMPARISONS[0], [], ("helpful-base_test.jsonl.gz", "no records"), data=(HH, gzip.compress(b"\n\n"))),
    Case("hh_subset_file_missing", COMPARISONS[0], [], ("helpful-base_test.jsonl.gz", "file not found"), data=(HH, None)),
    Case("demos_invalid_utf8", DEMOS[0], [], ("seed_tasks.jsonl:3", "invalid UTF-8"), data=(SEEDS, None)),
    Case("demos_invalid_json", DEMOS[0], [], ("seed_tasks.jsonl:2", "invalid JSON"), data=(SEEDS, None)),
    Case("comparisons_file_bad_line", "selection.comparisons_from_file", [], ("bad.jsonl:2", "invalid JSON")),
]
LOADERS = {COMPARISONS[0]: COMPARISONS[1], DEMOS[0]: DEMOS[1],
           "selection.comparisons_from_file": lambda data: selection.comparisons_from_file(DataConfig(data_dir=data),
                                                                                            Path(data).parent / "bad.jsonl")}


def _prepare(case: Case, tmp: Path, tiny: str) -> dict[str, str]:
    """Build what the case's placeholders name under ``tmp``."""
    names = {"tiny": tiny, "tmp": str(tmp), "data": str(DATA)}
    if case.data is not None:
        rel, content = case.data
        content = None if case.id in MISSING else (CONTENT[case.id]() if case.id in CONTENT else content)
        names["data"] = str(data_dir_with(tmp, rel, content))
    used = " ".join(case.args)
    if "{tmp}/run" in used:  # a run directory given as a model
        run = tmp / "run"
        (run / ".hydra").mkdir(parents=True)
        (run / "checkpoints" / "sft").mkdir(parents=True)
        (run / "checkpoints" / "sft" / "config.json").write_text("{}")
    for name, keep in (("truncated", 0.5), ("noconfig", 1.0)):
        if "{tmp}/" + name not in used:
            continue
        folder = tmp / name
        folder.mkdir(parents=True)
        for f in Path(tiny).iterdir():
            if f.is_file() and not (name == "noconfig" and f.name == "config.json"):
                raw = f.read_bytes()
                (folder / f.name).write_bytes(raw[: int(len(raw) * keep)] if f.suffix == ".safetensors" else raw)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "bad.jsonl").write_text(json.dumps({"id": "a", "prompt": "p", "completions": ["x", "y"], "ranking": [0, 1],
                                               "source": "t"}) + "\n{not json\n")
    return names


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_exit_2(case, tmp_path, tiny_dir):
    names = _prepare(case, tmp_path / "in", tiny_dir)
    run_dir = tmp_path / "out"
    proc = run_app(case.app, [a.format(**names) for a in case.args], run_dir, env=case.env, cwd=tmp_path)
    tail = proc.stderr[-3000:]
    assert proc.returncode == case.code, f"{case.id}: exit {proc.returncode}\n{tail}"
    line = last_line(proc.stderr)
    assert line.startswith(f"{case.app}: error: "), f"{case.id}: last stderr line is not the error:\n{tail}"
    for word in case.words:
        where = proc.stderr if word == "Traceback" else line
        assert word in where, f"{case.id}: {word!r} missing from\n{tail}"
    if "Traceback" not in case.words:  # one line: no traceback, no other error line (progress bars may come before)
        assert "Traceback" not in proc.stderr and [x for x in proc.stderr.splitlines() if "error" in x.lower()] == [line], tail
    if case.leaves == "nothing":
        assert not run_dir.exists(), f"{case.id}: wrote {sorted(p.name for p in run_dir.rglob('*'))}"
    elif case.leaves == "no_output":
        written = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")} if run_dir.exists() else set()
        assert not {p for p in written if p.endswith("run.json") or p.startswith("results")}, written
        assert ".harness.lock" not in written, "the lock must be released"


def test_a_bug_keeps_its_traceback_and_exits_1(tmp_path):
    """An exception that is not a user error is an internal bug: the traceback stays, exit 1."""
    script = (
        "import sys, hydra\n"
        "from harness.entry import console\n"
        "@hydra.main(version_base='1.3', config_path=None)\n"
        "def app(cfg):\n"
        "    raise RuntimeError('boom in the harness')\n"
        f"sys.argv = ['harness-x', 'hydra.run.dir={tmp_path}/x']\n"
        "console(app, 'harness-x')()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" in proc.stderr and "RuntimeError: boom in the harness" in proc.stderr
    assert last_line(proc.stderr).startswith("harness-x: internal error")


@pytest.mark.parametrize("case", LOADER_CASES, ids=[c.id for c in LOADER_CASES])
def test_bad_data_file_names_file_line_and_field(case, tmp_path, tiny_dir):
    names = _prepare(case, tmp_path / "in", tiny_dir)
    data = names["data"] if case.data is not None else str(tmp_path / "in" / "data")
    with pytest.raises(Exception) as info:
        LOADERS[case.app](data)
    message = one_line(info.value)
    assert exit_code(info.value) == case.code, f"{case.id}: {type(info.value).__name__}: {message}"
    for word in case.words:
        assert word in message, f"{case.id}: {word!r} missing from {message!r}"

"""Helpers the three ``bench/*_vs_trl.py`` scripts share.

- one base model, saved once and loaded by both our trainer and trl's, so the weights are equal;
- fixed-length synthetic token sequences, so both trainers see exactly the same tokens (no padding);
- timing of the interval between optimiser-step ends, with warmup steps excluded;
- a phase profiler that wraps callables in place (generation, forwards, backward, optimiser step);
- a FLOP model and the matmul peak, for achieved-FLOP/s figures;
- the environment record and an atomic JSON write (:mod:`harness.io`).

Units: seconds, tokens, FLOP (floating-point operations; a multiply-add is 2), GFLOP/s = 1e9 FLOP/s.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.io import write_json
from harness.models import ModelConfig, load_tokenizer, materialize_base
from harness.runinfo import git_commit, versions

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# The issue's figures for this machine's 2 cores (GFLOP/s of a large torch matmul). They are kept as
# the stated reference; every run also measures the matmul peak itself (``measure_matmul_peak``),
# because the two can disagree (a VM may hide AMX, for instance, and then bf16 is the slower type).
ISSUE_PEAK_GFLOPS = {"fp32": 135.0, "bf16": 390.0}

# Random-init Llama shapes with the GPT-2 tokenizer (vocab 50,257). "tiny" is the test model
# (harness.models.ModelConfig defaults, ~3.3 M parameters, 3.2 M of them the tied embedding), far too
# small for FLOP/s to mean anything. "small" (~51 M parameters: 25.7 M tied embedding/LM head, 25.7 M
# in 8 blocks of width 512) is the default: each block matmul is big enough to run near the BLAS
# rate, and its embedding-to-body ratio is close to SmolLM2-135M's, yet one PPO iteration takes
# seconds on 2 cores. Any checkpoint folder (e.g. .cache/harness/smollm2-135m-instruct) also works.
MODEL_PRESETS: dict[str, dict[str, int]] = {
    "tiny": {},
    "small": {"hidden_size": 512, "num_layers": 8, "num_heads": 8, "intermediate_size": 1408},
}

PRECISIONS = {"fp32": "no", "bf16": "bf16"}  # bench name -> accelerate mixed_precision


# ------------------------------------------------------------------ arguments
def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every script takes: model, precisions, steps, warmup, repeats, output name."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="small", help=f"preset ({', '.join(MODEL_PRESETS)}) or a checkpoint folder")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=list(PRECISIONS),
                   help="fp32, or bf16 autocast (accelerate mixed_precision=bf16) for both trainers")
    p.add_argument("--steps", type=int, default=2, help="timed optimiser steps (PPO: iterations) per run")
    p.add_argument("--warmup", type=int, default=1, help="steps run first and excluded from timing")
    p.add_argument("--repeats", type=int, default=2, help="runs per trainer and precision, ours and trl's alternating")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="result name: bench/results/<out>.json (default: the script's)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR))
    p.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR"), help="offline data mirror (GPT-2 tokenizer)")
    p.add_argument("--no-peak", action="store_true", help="skip the matmul peak measurement (tests)")
    p.add_argument("--op-profile", action="store_true", help="run one more, untimed step under torch.profiler; keep its top ops")
    return p


# ---------------------------------------------------------------------- model
def build_base(model: str, workdir: Path, data_dir: str | None, seed: int) -> tuple[str, Any]:
    """Save the base causal LM once under ``workdir`` (presets) and return ``(path, tokenizer)``.

    Every model in a run (policy, reference, reward, value, on both sides) is loaded from this one
    folder, so ours and trl's start from identical weights.
    """
    if model in MODEL_PRESETS:
        path = materialize_base(ModelConfig(name="tiny", **MODEL_PRESETS[model]), workdir / f"base-{model}", data_dir, seed)
    elif Path(model).is_dir():
        path = str(Path(model).resolve())
    else:
        raise ValueError(f"--model {model!r}: not a preset ({', '.join(MODEL_PRESETS)}) and not a folder")
    return path, load_tokenizer(path)


def scalar_head_weight(hidden_size: int, seed: int) -> torch.Tensor:
    """The reward/value head weight ``[1, hidden]`` both sides of a comparison start from: N(0, 1/hidden), seeded.

    A zero head (what :func:`harness.models.load_scalar_model` gives a new head) would make every
    reward 0; the work per step is the same either way, but a random head keeps the runs realistic.
    """
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn(1, hidden_size, generator=g) / hidden_size**0.5


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters that take part in a matmul for every token: all but the input embedding, plus the LM
    head's weight counted once even when it is tied to the embedding (it is still a vocab-wide matmul).

    This is the ``N`` of the 2N / 6N FLOP-per-token rule (Kaplan et al. 2020, arXiv 2001.08361,
    section 2.1, who leave out embeddings; the tied head is a real matmul, so it is counted).
    """
    emb = model.get_input_embeddings().weight
    n = sum(p.numel() for p in model.parameters() if p is not emb)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and head.weight is emb:
        n += head.weight.numel()
    return n


def forward_flops(n_params: int, tokens: int) -> float:
    """Forward FLOP: 2 per parameter per token (one multiply-add; Kaplan et al. 2020, eq. 2.2).

    The attention-score term 2 * n_layer * n_ctx * d per token is left out: at the context lengths
    benchmarked here (<= 256) it is under 2 % of 2N for the ``small`` preset.
    """
    return 2.0 * n_params * tokens


def train_flops(n_params: int, tokens: int) -> float:
    """Forward + backward FLOP: 6 per parameter per token (backward = 2x forward; Kaplan et al. 2020)."""
    return 6.0 * n_params * tokens


# ----------------------------------------------------------------- fixed data
def single_token_words(tokenizer, n: int = 512, seed: int = 0) -> list[str]:
    """``n`` lowercase words that each encode as exactly one token with a leading space.

    Sequences of them have a known token count, so ours and trl's see the same number of tokens.
    """
    words = []
    for tok in tokenizer.get_vocab():
        w = tokenizer.convert_tokens_to_string([tok])
        if w.startswith(" ") and w[1:].isalpha() and w[1:].islower() and len(w) >= 4:
            if len(tokenizer(w, add_special_tokens=False)["input_ids"]) == 1:
                words.append(w[1:])
    words.sort()
    random.Random(seed).shuffle(words)
    if len(words) < n:
        raise ValueError(f"tokenizer has only {len(words)} single-token words, need {n}")
    return words[:n]


def text_of_length(rng: random.Random, words: list[str], n_tokens: int) -> str:
    """A space-separated text of ``n_tokens`` single-token words."""
    return " ".join(rng.choice(words) for _ in range(n_tokens))


def fixed_length_pairs(tokenizer, n: int, prompt_len: int, completion_len: int, seed: int, completions_per_prompt: int = 1):
    """``n`` prompts with ``completions_per_prompt`` completions each, as text, such that
    :func:`harness.prompting.encode_pair` (hh format, ``chat_template=false``) gives exactly
    ``prompt_len`` prompt tokens and ``completion_len`` completion tokens (EOS included).

    Returns ``(prompts, completions, encoded)`` with ``completions[i]`` a list and ``encoded[i]`` the
    matching list of :class:`harness.prompting.EncodedPair`. Raises if a length comes out different.
    """
    from harness.prompting import encode_pair, encode_prompts

    words = single_token_words(tokenizer, seed=seed)
    overhead = len(encode_prompts([words[0]], tokenizer, 10_000, "false")[0]) - 1  # template tokens around the text
    rng = random.Random(seed)
    prompts = [text_of_length(rng, words, prompt_len - overhead) for _ in range(n)]
    completions = [[text_of_length(rng, words, completion_len - 1) for _ in range(completions_per_prompt)] for _ in range(n)]
    total = prompt_len + completion_len
    encoded = [[encode_pair(p, c, tokenizer, total, prompt_len, "false") for c in cs] for p, cs in zip(prompts, completions)]
    lengths = {(len(e.input_ids), sum(e.completion_mask)) for es in encoded for e in es}
    if lengths != {(total, completion_len)}:
        raise RuntimeError(f"(total, completion) token lengths {sorted(lengths)} != {(total, completion_len)}")
    return prompts, completions, encoded


# --------------------------------------------------------------------- timing
@dataclass(frozen=True)
class Schedule:
    """Which steps of a run count: ``warmup`` untimed steps, ``steps`` timed ones, then one more,
    untimed, under torch.profiler when ``op_profile`` (so the profiler's overhead stays out of the timing)."""

    warmup: int
    steps: int
    op_profile: bool = False

    @property
    def total(self) -> int:
        """Steps the trainer must run."""
        return self.warmup + self.steps + int(self.op_profile)


class OpProfile:
    """torch.profiler over one step: the operators with the most self CPU time."""

    def __init__(self, top: int = 15) -> None:
        self.top, self.table, self._prof = top, [], None

    def start(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        self._prof = profile(activities=[ProfilerActivity.CPU])
        self._prof.__enter__()

    def stop(self) -> None:
        self._prof.__exit__(None, None, None)
        events = sorted(self._prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in events) or 1.0
        self.table = [{"op": e.key, "self_cpu_seconds": e.self_cpu_time_total / 1e6, "share": e.self_cpu_time_total / total,
                       "calls": e.count} for e in events[: self.top]]
        self._prof = None


class RunTimer:
    """Times one run of a trainer: call :meth:`step_end` at the end of every optimiser step (PPO:
    iteration). Wall (``time.perf_counter``) and CPU (``time.process_time``, all threads)
    timestamps are kept; the timed interval runs from the end of step ``warmup`` to the end of step
    ``warmup + steps``. ``prof`` (phases) is active over exactly that interval; the op profile,
    if asked for, over the step after it.
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.prof = PhaseProfiler()
        self.ops = OpProfile() if schedule.op_profile else None
        self.ends: list[float] = []
        self.cpu_ends: list[float] = []
        self.t_start, self.c_start = time.perf_counter(), time.process_time()
        if schedule.warmup == 0:
            self.prof.start()

    def step_end(self) -> None:
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())
        n, sch = len(self.ends), self.schedule
        if n == sch.warmup:
            self.prof.start()
        if n == sch.warmup + sch.steps:
            self.prof.stop()
            if self.ops:
                self.ops.start()
        if self.ops and n == sch.total:
            self.ops.stop()

    def record(self, **extra: Any) -> dict[str, Any]:
        """Timed steps, wall and CPU seconds, the phase breakdown, the op table, and ``extra``.

        Raises if fewer than ``warmup + steps`` steps ended (a trainer ran fewer than asked).
        """
        w, n = self.schedule.warmup, self.schedule.steps
        if len(self.ends) < w + n:
            raise RuntimeError(f"only {len(self.ends)} steps ended; expected {w + n}")
        secs = self.ends[w + n - 1] - (self.ends[w - 1] if w else self.t_start)
        cpu = self.cpu_ends[w + n - 1] - (self.cpu_ends[w - 1] if w else self.c_start)
        out = {"timed_steps": n, "seconds": secs, "cpu_seconds": cpu, "phases": self.prof.breakdown(secs, cpu), **extra}
        if self.ops:
            out["top_ops"] = self.ops.table
        return out


def wrap_after(obj: Any, attr: str, hook: Callable[[], None]) -> Callable[[], None]:
    """Replace ``obj.attr`` by a wrapper that calls ``hook()`` after it; returns the undo function."""
    original = getattr(obj, attr)

    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        hook()
        return out

    setattr(obj, attr, wrapped)
    return lambda: setattr(obj, attr, original)


class PhaseProfiler:
    """Wall-clock and CPU seconds per named phase, by wrapping the callables that make up a step.

    ``wrap(obj, attr, name)`` replaces ``obj.attr`` in place; ``name`` may be a function of the call's
    arguments (e.g. to tell a no-grad rollout forward from a training one). Only time from
    ``start()`` to ``stop()`` counts (the timed steps). Nested wrapped calls count once, in the outermost
    phase. CPU seconds (``time.process_time``, all threads) are the robust figure on a shared
    machine: another process taking the core stretches wall time, not CPU time, at least with one
    torch thread (with more, waiting threads may spin). ``restore()`` undoes every wrap.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list[Callable[[], None]] = []
        self._depth = 0
        self.active = False

    def wrap(self, obj: Any, attr: str, name: str | Callable[..., str]) -> None:
        original = getattr(obj, attr)

        def wrapped(*args, **kwargs):
            if not self.active or self._depth:
                return original(*args, **kwargs)
            label = name(*args, **kwargs) if callable(name) else name
            self._depth += 1
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:  # counted even if the call itself ended the timed interval (stop() inside it)
                self._count(label, time.perf_counter() - t0, time.process_time() - c0)
                self._depth -= 1

        setattr(obj, attr, wrapped)
        self._undo.append(lambda: setattr(obj, attr, original))

    def add(self, label: str, seconds: float, cpu_seconds: float) -> None:
        """Count a call measured elsewhere (e.g. between two trainer callbacks) under ``label``, if active."""
        if self.active:
            self._count(label, seconds, cpu_seconds)

    def _count(self, label: str, seconds: float, cpu_seconds: float) -> None:
        self.seconds[label] += seconds
        self.cpu_seconds[label] += cpu_seconds
        self.calls[label] += 1

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def breakdown(self, total_seconds: float, total_cpu_seconds: float | None) -> dict[str, dict[str, float]]:
        """Per phase: wall and CPU seconds, their shares of the totals, calls; ``other`` is the remainder."""
        cpu_total = total_cpu_seconds or float("nan")
        out = {k: {"seconds": v, "share": v / total_seconds, "cpu_seconds": self.cpu_seconds[k],
                   "cpu_share": self.cpu_seconds[k] / cpu_total, "calls": self.calls[k]} for k, v in sorted(self.seconds.items())}
        rest, cpu_rest = total_seconds - sum(self.seconds.values()), cpu_total - sum(self.cpu_seconds.values())
        out["other"] = {"seconds": rest, "share": rest / total_seconds, "cpu_seconds": cpu_rest, "cpu_share": cpu_rest / cpu_total,
                        "calls": 0}
        return out


def attach_hf_timing(trainer, timer: RunTimer) -> None:
    """Time a trl trainer (a ``transformers`` Trainer, or trl's PPOTrainer with the same callbacks).

    A callback calls ``timer.step_end`` on every step end and times ``optimizer.step()`` between the
    pre- and post-optimiser-step events (Trainer's optimiser only exists once ``train()`` runs, so it
    cannot be wrapped beforehand; trl's PPO loop sends neither event, its optimiser is wrapped
    instead). With ``disable_tqdm`` a Trainer prints every log dict: the printer is removed, the
    logging itself still runs.
    """
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    class Timing(TrainerCallback):
        t0 = c0 = 0.0

        def on_pre_optimizer_step(self, *a, **k):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_optimizer_step(self, *a, **k):
            timer.prof.add("optimizer_step", time.perf_counter() - self.t0, time.process_time() - self.c0)

        def on_step_end(self, *a, **k):
            timer.step_end()

    trainer.add_callback(Timing())
    trainer.remove_callback(PrinterCallback)


def grad_label(no_grad: str, grad: str) -> Callable[..., str]:
    """Phase label chooser: ``grad`` while autograd records, ``no_grad`` otherwise."""
    return lambda *a, **k: grad if torch.is_grad_enabled() else no_grad


# ------------------------------------------------------------------ precision
def reset_accelerate(precision: str) -> None:
    """Forget accelerate's process-wide state so the next ``Accelerator`` can use another precision.

    ``AcceleratorState`` is a singleton that refuses a second mixed-precision mode in one process; both
    trainers make their own ``Accelerator``, and a run alternates fp32 and bf16. trl's PPOTrainer
    builds ``Accelerator()`` without a precision argument, so it reads ``ACCELERATE_MIXED_PRECISION``
    (what ``accelerate launch --mixed_precision bf16`` sets): that variable is set here for both.
    """
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    os.environ["ACCELERATE_MIXED_PRECISION"] = PRECISIONS[precision]


def measure_matmul_peak(dtype: torch.dtype, n: int = 1024, seconds: float = 1.0) -> float:
    """GFLOP/s of repeated ``[n, n] @ [n, n]`` matmuls in ``dtype`` (2 n^3 FLOP each) for ``seconds``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2.0 * n**3 * count / (time.perf_counter() - t0) / 1e9


def measured_peaks(skip: bool) -> dict[str, float | None]:
    """Measured matmul GFLOP/s for fp32 and bf16 (None with ``skip``)."""
    if skip:
        return {"fp32": None, "bf16": None}
    return {"fp32": measure_matmul_peak(torch.float32), "bf16": measure_matmul_peak(torch.bfloat16)}


# ---------------------------------------------------------------- environment
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """What the numbers depend on: library versions, threads, CPU, git commit, load average, and the
    C allocator's environment settings (``MALLOC_*``, ``GLIBC_TUNABLES``, ``THP_MEM_ALLOC_ENABLE``),
    which change both sides' speed on this VM (see bench/README.md)."""
    import accelerate
    import trl

    env = versions()
    env.update({
        "trl": trl.__version__, "accelerate": accelerate.__version__, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "cpu": cpu_model(), "machine": platform.machine(), "git_commit": git_commit(),
        "cuda": torch.cuda.is_available(), "loadavg_start": os.getloadavg(),
        "allocator_env": {k: v for k, v in sorted(os.environ.items())
                          if k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "THP_MEM_ALLOC_ENABLE", "LD_PRELOAD")},
    })
    return env


# -------------------------------------------------------------------- results
def throughput(examples_per_step: int, tokens_per_step: int, flops_per_step: float, steps: int, seconds: float,
               cpu_seconds: float | None) -> dict[str, float | None]:
    """Rates over ``steps`` timed steps that took ``seconds`` (wall) and ``cpu_seconds`` (this process):
    examples/s, tokens/s, GFLOP/s per wall second, and examples per CPU second."""
    return {"examples_per_s": examples_per_step * steps / seconds, "tokens_per_s": tokens_per_step * steps / seconds,
            "gflops_per_s": flops_per_step * steps / seconds / 1e9,
            "examples_per_cpu_s": examples_per_step * steps / cpu_seconds if cpu_seconds else None}


def summarize(runs: list[dict[str, Any]], peaks: dict[str, float | None]) -> dict[str, Any]:
    """Per precision: median rates of ours and trl's over repeats, and the ratios ours/trl.

    Each ratio is the median of the per-repeat ratios: repeat i of ours ran next to repeat i of
    trl's, so load from other processes tends to fall on both. ``ratio_ours_over_trl`` uses wall
    time, ``cpu_ratio_ours_over_trl`` this process's CPU time. Utilisation is GFLOP/s over the
    issue's peak and over the matmul peak measured in the same run.
    """
    out: dict[str, Any] = {}
    for precision in sorted({r["precision"] for r in runs}):
        by_impl = {impl: [r for r in runs if r["precision"] == precision and r["impl"] == impl] for impl in ("ours", "trl")}
        row: dict[str, Any] = {"repeats": min(len(v) for v in by_impl.values())}
        for impl, rs in by_impl.items():
            med = {k: statistics.median(r[k] for r in rs) for k in ("examples_per_s", "tokens_per_s", "gflops_per_s")}
            cpu = [r["examples_per_cpu_s"] for r in rs if r.get("examples_per_cpu_s")]
            med["examples_per_cpu_s"] = statistics.median(cpu) if cpu else None
            med["utilisation_vs_issue_peak"] = med["gflops_per_s"] / ISSUE_PEAK_GFLOPS[precision]
            if peaks.get(precision):
                med["utilisation_vs_measured_peak"] = med["gflops_per_s"] / peaks[precision]
            row[impl] = med
        pairs = list(zip(by_impl["ours"], by_impl["trl"]))
        row["ratio_per_repeat"] = [o["examples_per_s"] / t["examples_per_s"] for o, t in pairs]
        row["ratio_ours_over_trl"] = statistics.median(row["ratio_per_repeat"])
        cpu_ratios = [o["examples_per_cpu_s"] / t["examples_per_cpu_s"] for o, t in pairs if o.get("examples_per_cpu_s") and t.get("examples_per_cpu_s")]
        row["cpu_ratio_per_repeat"] = cpu_ratios
        row["cpu_ratio_ours_over_trl"] = statistics.median(cpu_ratios) if cpu_ratios else None
        out[precision] = row
    return out


def mean_phases(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per precision and trainer: mean wall and CPU seconds per timed step of each phase, and shares."""
    acc: dict[str, Any] = {}
    for r in runs:
        key = acc.setdefault(r["precision"], {}).setdefault(r["impl"], defaultdict(list))
        for phase, v in r["phases"].items():
            key[phase].append({"seconds_per_step": v["seconds"] / r["timed_steps"], "share": v["share"],
                               "cpu_seconds_per_step": v["cpu_seconds"] / r["timed_steps"], "cpu_share": v["cpu_share"]})
    return {p: {impl: {ph: {k: statistics.mean(x[k] for x in v) for k in v[0]} for ph, v in phases.items()}
                for impl, phases in impls.items()} for p, impls in acc.items()}


def write_result(results_dir: str | Path, name: str, payload: dict[str, Any]) -> Path:
    """Atomically write ``<results_dir>/<name>.json`` (:func:`harness.io.write_json`)."""
    payload["environment"]["loadavg_end"] = os.getloadavg()
    return write_json(Path(results_dir) / f"{name}.json", payload)


def schedule_of(args) -> Schedule:
    """The step schedule the command line asks for."""
    return Schedule(args.warmup, args.steps, args.op_profile)


def interleaved(repeats: int) -> Iterator[tuple[int, str]]:
    """``(repeat, impl)`` pairs with the order flipped each repeat: ours, trl, trl, ours, ours, trl, ..."""
    for r in range(repeats):
        for impl in (("ours", "trl") if r % 2 == 0 else ("trl", "ours")):
            yield r, impl


def hf_args(workdir: Path, precision: str, schedule: Schedule, seed: int, **kwargs) -> dict[str, Any]:
    """TrainingArguments fields common to trl's SFT and reward trainers here: ``schedule.total`` steps,
    no checkpoint saving, no evaluation, no reporting, no progress bar, no gradient checkpointing
    (trl turns it on by default; ours has none), bf16 autocast or fp32, on CPU."""
    return dict(output_dir=str(workdir), max_steps=schedule.total, gradient_accumulation_steps=1, gradient_checkpointing=False,
                bf16=precision == "bf16", use_cpu=not torch.cuda.is_available(), report_to="none", save_strategy="no",
                eval_strategy="no", logging_steps=1, disable_tqdm=True, seed=seed, dataloader_num_workers=0,
                lr_scheduler_type="cosine", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, **kwargs)


def _timed_run(run: Callable[[str, str], dict[str, Any]], impl: str, precision: str, repeat: int, per_step: dict[str, Any],
               bench: str, example_unit: str) -> dict[str, Any]:
    """One run plus its rates; prints a one-line summary."""
    res = run(impl, precision)
    res.update(throughput(per_step["examples"], per_step["tokens"], per_step["required_flops"], res["timed_steps"],
                          res["seconds"], res["cpu_seconds"]), impl=impl, precision=precision, repeat=repeat,
               loadavg_1min=os.getloadavg()[0])
    print(f"[{bench}] {precision} {impl} repeat {repeat}: {res['examples_per_s']:.3f} {example_unit}s/s, "
          f"{res['tokens_per_s']:.1f} tokens/s, {res['gflops_per_s']:.1f} GFLOP/s", flush=True)
    return res


def benchmark(args, bench: str, run: Callable[[str, str], dict[str, Any]], per_step: dict[str, Any],
              example_unit: str, extra: dict[str, Any]) -> Path:
    """Run ``run(impl, precision)`` for every precision, ``args.repeats`` times per trainer with ours
    and trl's alternating, and write ``<results_dir>/<name>.json``. Returns its path.

    ``per_step`` holds ``examples``, ``tokens`` and ``required_flops`` of one timed step, so each
    run's rates follow from its timed seconds.
    """
    env, peaks = environment(), measured_peaks(args.no_peak)
    runs = []
    saved_precision = os.environ.get("ACCELERATE_MIXED_PRECISION")
    try:
        for precision in args.precision:
            for repeat, impl in interleaved(args.repeats):
                free()
                runs.append(_timed_run(run, impl, precision, repeat, per_step, bench, example_unit))
    finally:  # reset_accelerate set it for trl; leave the caller's environment as it was
        if saved_precision is None:
            os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
        else:
            os.environ["ACCELERATE_MIXED_PRECISION"] = saved_precision
    payload = {
        "bench": bench, "example_unit": example_unit,
        "settings": {k: v for k, v in vars(args).items() if k not in ("results_dir", "data_dir", "out")},
        "per_step": per_step, **extra,
        "peaks_gflops": {"issue": ISSUE_PEAK_GFLOPS, "measured_matmul_1024": peaks},
        "summary": summarize(runs, peaks), "phases": mean_phases(runs), "runs": runs, "environment": env,
    }
    name = args.out or f"{bench}_vs_trl_{'-'.join(args.precision)}"
    return write_result(args.results_dir, name, payload)


def free() -> None:
    """Drop the previous run's models before the next one is built (memory, and no GC pause mid-run)."""
    gc.collect()


@contextlib.contextmanager
def profiled_run(prof: PhaseProfiler) -> Iterator[None]:
    """Around one trainer's ``train()``: transformers kept quiet, and every ``prof.wrap`` undone
    afterwards, even when the run raises."""
    try:
        with quiet_transformers():
            yield
    finally:
        prof.restore()


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers/trl info logging and progress bars during a run (they print per step)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)

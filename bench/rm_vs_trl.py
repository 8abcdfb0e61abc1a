"""Our reward-model trainer (trainers/reward_model.py) against trl 1.12's ``RewardTrainer``, same run.

Both train a scalar head on the same saved base model with the same random head (both
``AutoModelForSequenceClassification``),
every block trainable, on the same comparisons: K = 2 completions per prompt, fixed lengths
(``--prompt-length`` + ``--completion-length`` tokens each, EOS included). With K = 2 our K-wise loss
(paper eq. 1) is trl's pairwise ``-log sigmoid(r_chosen - r_rejected)``. trl gets the token ids ours
builds (``chosen_ids`` / ``rejected_ids``); ours tokenises its text inside the step, as it always
does. Same batch (comparisons per step), AdamW, clipping at 1.0, no gradient checkpointing, bf16
autocast or fp32.

Timing: the interval between optimiser-step ends after ``--warmup`` steps. Rates: comparisons/s,
tokens/s (both sequences), GFLOP/s = 6 N per token (Kaplan et al. 2020), N without an LM head.
Phases: forward (ours includes its tokenisation), backward, gradient clipping, optimiser step, other.

Run: ``python -m bench.rm_vs_trl --help``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench import common as C
from harness.config import RMConfig
from harness.models import load_scalar_model
from harness.records import Comparison


@dataclass
class Setting:
    """One benchmark configuration, shared by both trainers. Lengths in tokens."""

    base: str
    tokenizer: Any
    comparisons: list[Comparison]
    encoded: list[list[Any]]  # [chosen, rejected] harness.prompting.EncodedPair per comparison
    batch_size: int
    prompt_length: int
    completion_length: int
    schedule: C.Schedule
    seed: int
    workdir: Path


def parse_args(argv=None):
    p = C.base_parser(__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=4, help="comparisons (prompts with 2 completions) per optimiser step")
    p.add_argument("--prompt-length", type=int, default=64, help="prompt tokens (fixed)")
    p.add_argument("--completion-length", type=int, default=64, help="tokens per completion, EOS included (fixed)")
    p.set_defaults(steps=4)  # a step is seconds here, a PPO iteration tens of seconds
    return p.parse_args(argv)


def run_ours(s: Setting, precision: str) -> dict[str, Any]:
    """One run of our RewardModelTrainer over ``schedule.total`` batches; returns timing and phases."""
    from trainers.reward_model import RewardModelTrainer

    C.reset_accelerate(precision)
    model = load_scalar_model(s.base)
    with torch.no_grad():
        model.score.weight.copy_(C.scalar_head_weight(model.config.hidden_size, s.seed))
    cfg = RMConfig(lr=1e-5, epochs=1, batch_size=s.batch_size, grad_accum=1, warmup_ratio=0.0,
                   max_length=s.prompt_length + s.completion_length, max_prompt_length=s.prompt_length, max_grad_norm=1.0,
                   trainable_layers=None, normalize_to_demos=False, mixed_precision=C.PRECISIONS[precision])
    trainer = RewardModelTrainer(cfg, model, s.tokenizer, s.comparisons, [], chat_template="false", seed=s.seed)
    timer = C.RunTimer(s.schedule)
    C.wrap_after(trainer.opt, "step", timer.step_end)
    timer.prof.wrap(trainer.opt, "step", "optimizer_step")
    timer.prof.wrap(trainer, "_batch_rewards", "forward")
    timer.prof.wrap(trainer.accelerator, "backward", "backward")
    timer.prof.wrap(trainer.accelerator, "clip_grad_norm_", "clip_grad")
    with C.profiled_run(timer.prof):
        trainer.train()
    return timer.record()


def run_trl(s: Setting, precision: str) -> dict[str, Any]:
    """One run of trl's RewardTrainer on the same token ids; returns timing and phases."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    C.reset_accelerate(precision)
    model = AutoModelForSequenceClassification.from_pretrained(s.base, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = s.tokenizer.pad_token_id
    with torch.no_grad():
        model.score.weight.copy_(C.scalar_head_weight(model.config.hidden_size, s.seed))
    args = RewardConfig(**C.hf_args(s.workdir / "trl_rm", precision, s.schedule, s.seed,
                                    per_device_train_batch_size=s.batch_size, learning_rate=1e-5,
                                    max_length=s.prompt_length + s.completion_length, center_rewards_coefficient=None))
    data = Dataset.from_dict({"chosen_ids": [e[0].input_ids for e in s.encoded], "rejected_ids": [e[1].input_ids for e in s.encoded]})
    trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=s.tokenizer)
    timer = C.RunTimer(s.schedule)
    C.attach_hf_timing(trainer, timer)
    timer.prof.wrap(trainer, "compute_loss", "forward")
    timer.prof.wrap(trainer.accelerator, "backward", "backward")
    timer.prof.wrap(trainer.accelerator, "clip_grad_norm_", "clip_grad")
    with C.profiled_run(timer.prof):
        trainer.train()
    return timer.record(trl_gradient_checkpointing=bool(trainer.model.is_gradient_checkpointing))


def main(argv=None) -> Path:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_rm_") as tmp:
        base, tok = C.build_base(args.model, Path(tmp), args.data_dir, args.seed)
        schedule = C.schedule_of(args)
        n = args.batch_size * schedule.total
        prompts, completions, encoded = C.fixed_length_pairs(tok, n, args.prompt_length, args.completion_length, args.seed,
                                                             completions_per_prompt=2)
        comps = [Comparison(str(i), p, tuple(cs), (0, 1), "bench") for i, (p, cs) in enumerate(zip(prompts, completions))]
        s = Setting(base, tok, comps, encoded, args.batch_size, args.prompt_length, args.completion_length,
                    schedule, args.seed, Path(tmp))
        n_scalar = C.matmul_params(load_scalar_model(base))
        tokens = args.batch_size * 2 * (args.prompt_length + args.completion_length)
        per_step = {"examples": args.batch_size, "tokens": tokens, "required_flops": C.train_flops(n_scalar, tokens)}
        extra = {"model": {"name": args.model, "scalar_matmul_params": n_scalar}}
        return C.benchmark(args, "rm", lambda impl, precision: (run_ours if impl == "ours" else run_trl)(s, precision),
                           per_step, "comparison", extra)


if __name__ == "__main__":
    print(main())

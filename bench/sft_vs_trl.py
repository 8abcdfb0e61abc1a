"""Our SFT (trainers/sft.py) against trl 1.12's ``SFTTrainer``, same run.

Both fine-tune the same saved causal LM on the same demonstrations: fixed-length token sequences
(``--prompt-length`` prompt + ``--completion-length`` completion tokens, EOS included, so no padding),
loss on completion tokens only. trl gets the very token ids ours builds (``input_ids`` plus
``completion_mask``, with ``completion_only_loss=True``), so it tokenises nothing. Same batch size,
no gradient accumulation, AdamW, gradient clipping at 1.0, no gradient checkpointing, bf16 autocast
or fp32. trl's loss is its default (``loss_type="chunked_nll"``) unless ``--trl-loss-type`` says otherwise.

Timing: the interval between optimiser-step ends after ``--warmup`` steps. Rates: demonstrations/s,
tokens/s (prompt + completion), GFLOP/s = 6 N per token (Kaplan et al. 2020) over the timed interval.
Phases: loss forward, backward, gradient clipping, optimiser step, other.

Run: ``python -m bench.sft_vs_trl --help``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench import common as C
from harness.config import SFTConfig
from harness.models import load_policy
from harness.records import Demonstration


@dataclass
class Setting:
    """One benchmark configuration, shared by both trainers. Lengths in tokens."""

    base: str
    tokenizer: Any
    demos: list[Demonstration]
    encoded: list[Any]  # harness.prompting.EncodedPair per demonstration
    batch_size: int
    prompt_length: int
    completion_length: int
    schedule: C.Schedule
    seed: int
    trl_loss_type: str | None
    workdir: Path


def parse_args(argv=None):
    p = C.base_parser(__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=8, help="demonstrations per optimiser step")
    p.add_argument("--prompt-length", type=int, default=64, help="prompt tokens per demonstration (fixed)")
    p.add_argument("--completion-length", type=int, default=64, help="completion tokens per demonstration, EOS included (fixed)")
    p.add_argument("--trl-loss-type", default=None, help="trl SFTConfig.loss_type (default: trl's own, chunked_nll)")
    p.set_defaults(steps=4)  # a step is seconds here, a PPO iteration tens of seconds
    return p.parse_args(argv)


def run_ours(s: Setting, precision: str) -> dict[str, Any]:
    """One run of our SFTTrainer over ``schedule.total`` batches; returns timing and phases."""
    from trainers.sft import SFTTrainer

    C.reset_accelerate(precision)
    total = s.prompt_length + s.completion_length
    cfg = SFTConfig(lr=1e-5, epochs=1, batch_size=s.batch_size, grad_accum=1, warmup_ratio=0.0, weight_decay=0.0,
                    max_length=total, max_prompt_length=s.prompt_length, max_grad_norm=1.0, mixed_precision=C.PRECISIONS[precision])
    trainer = SFTTrainer(cfg, load_policy(s.base), s.tokenizer, s.demos, [], chat_template="false", seed=s.seed)
    timer = C.RunTimer(s.schedule)
    C.wrap_after(trainer.opt, "step", timer.step_end)
    timer.prof.wrap(trainer.opt, "step", "optimizer_step")
    timer.prof.wrap(trainer, "_loss", "forward")
    timer.prof.wrap(trainer.accelerator, "backward", "backward")
    timer.prof.wrap(trainer.accelerator, "clip_grad_norm_", "clip_grad")
    with C.profiled_run(timer.prof):
        trainer.train(s.workdir / "ours_sft")
    return timer.record()


def run_trl(s: Setting, precision: str) -> dict[str, Any]:
    """One run of trl's SFTTrainer on the same token ids; returns timing and phases."""
    from datasets import Dataset
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer as TrlSFTTrainer

    C.reset_accelerate(precision)
    extra = {"loss_type": s.trl_loss_type} if s.trl_loss_type else {}
    args = TrlSFTConfig(**C.hf_args(s.workdir / "trl_sft", precision, s.schedule, s.seed,
                                    per_device_train_batch_size=s.batch_size, learning_rate=1e-5,
                                    max_length=s.prompt_length + s.completion_length, completion_only_loss=True,
                                    packing=False, padding_free=False, **extra))
    data = Dataset.from_dict({"input_ids": [e.input_ids for e in s.encoded], "completion_mask": [e.completion_mask for e in s.encoded]})
    trainer = TrlSFTTrainer(model=load_policy(s.base), args=args, train_dataset=data, processing_class=s.tokenizer)
    timer = C.RunTimer(s.schedule)
    C.attach_hf_timing(trainer, timer)
    timer.prof.wrap(trainer, "compute_loss", "forward")
    timer.prof.wrap(trainer.accelerator, "backward", "backward")
    timer.prof.wrap(trainer.accelerator, "clip_grad_norm_", "clip_grad")
    with C.profiled_run(timer.prof):
        trainer.train()
    return timer.record(trl_loss_type=trainer.args.loss_type, trl_gradient_checkpointing=bool(trainer.model.is_gradient_checkpointing))


def main(argv=None) -> Path:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_sft_") as tmp:
        base, tok = C.build_base(args.model, Path(tmp), args.data_dir, args.seed)
        schedule = C.schedule_of(args)
        n = args.batch_size * schedule.total
        prompts, completions, encoded = C.fixed_length_pairs(tok, n, args.prompt_length, args.completion_length, args.seed)
        demos = [Demonstration(str(i), p, cs[0], "bench") for i, (p, cs) in enumerate(zip(prompts, completions))]
        s = Setting(base, tok, demos, [e[0] for e in encoded], args.batch_size, args.prompt_length, args.completion_length,
                    schedule, args.seed, args.trl_loss_type, Path(tmp))
        n_policy = C.matmul_params(load_policy(base))
        tokens = args.batch_size * (args.prompt_length + args.completion_length)
        per_step = {"examples": args.batch_size, "tokens": tokens, "required_flops": C.train_flops(n_policy, tokens)}
        extra = {"model": {"name": args.model, "policy_matmul_params": n_policy}}
        return C.benchmark(args, "sft", lambda impl, precision: (run_ours if impl == "ours" else run_trl)(s, precision),
                           per_step, "demonstration", extra)


if __name__ == "__main__":
    print(main())

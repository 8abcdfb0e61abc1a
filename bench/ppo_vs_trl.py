"""Our PPO (trainers/ppo.py) against trl 1.12's ``trl.experimental.ppo.PPOTrainer``, same run.

Both start from the same saved base model: the policy and the frozen reference policy are that causal
LM; the reward model and the value model are scalar-head versions of it with one shared random head
(ours via :func:`harness.models.load_scalar_model`, trl's as its docs ask; both
``AutoModelForSequenceClassification``). Prompts are fixed-length token
sequences (no padding), responses are sampled for exactly ``--response-length`` tokens on both
sides (a random-init model almost never samples EOS, and trl runs with ``stop_token=None``; the
generated widths are recorded). Settings mapped one to one: batch (episodes per rollout),
mini-batch, PPO epochs, temperature 1, KL coefficient, vf_coef, clip ranges, GAE gamma/lambda,
advantage whitening on, reward whitening off, no EOS penalty, gradient checkpointing off, bf16
autocast or not. trl's sample generations and checkpoint saving are off.

Timing: the interval between the ends of PPO iterations after ``--warmup`` iterations. Episodes/s
and tokens/s (prompt + response tokens per episode) follow; GFLOP/s counts the work the algorithm
needs per iteration (see :func:`required_flops`), the same for both, so it is model-FLOP
utilisation in the sense of Chowdhery et al. 2022 (arXiv 2204.02311, appendix B).

Phase profile: generation, each no-grad rollout forward (policy, reference, value, reward), the
training forwards, backward and optimiser step are timed by wrapping those calls; ``other`` is the
rest (log-softmax over the vocabulary, GAE, whitening, statistics, logging).

Run: ``python -m bench.ppo_vs_trl --help``.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench import common as C
from harness.config import PPOConfig
from harness.models import load_policy, load_scalar_model
from harness.prompting import encode_prompts
from harness.records import Prompt


@dataclass
class Setting:
    """One benchmark configuration, shared by both trainers. Lengths in tokens."""

    base: str
    tokenizer: Any
    prompts: list[Prompt]
    prompt_ids: list[list[int]]
    batch_size: int
    mini_batch_size: int
    ppo_epochs: int
    prompt_length: int
    response_length: int
    beta: float
    schedule: C.Schedule
    seed: int
    workdir: Path


def parse_args(argv=None):
    p = C.base_parser(__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=8, help="episodes per rollout batch")
    p.add_argument("--mini-batch-size", type=int, default=8, help="episodes per PPO update")
    p.add_argument("--ppo-epochs", type=int, default=2, help="passes over each rollout batch")
    p.add_argument("--prompt-length", type=int, default=64, help="tokens per prompt (fixed)")
    p.add_argument("--response-length", type=int, default=48, help="tokens sampled per response (fixed)")
    p.add_argument("--beta", type=float, default=0.05, help="KL coefficient (ours: beta, trl: kl_coef)")
    return p.parse_args(argv)


def make_prompts(tokenizer, n: int, length: int, seed: int) -> tuple[list[Prompt], list[list[int]]]:
    """``n`` prompts whose rendered form (hh ``Human:/Assistant:`` text) is exactly ``length`` tokens."""
    words = C.single_token_words(tokenizer, seed=seed)
    overhead = len(encode_prompts([words[0]], tokenizer, 10_000, "false")[0]) - 1  # template tokens around the text
    rng = random.Random(seed)
    prompts = [Prompt(str(i), C.text_of_length(rng, words, length - overhead), "bench") for i in range(n)]
    ids = encode_prompts([p.prompt for p in prompts], tokenizer, length, "false")
    if {len(x) for x in ids} != {length}:
        raise RuntimeError(f"prompt lengths {sorted({len(x) for x in ids})} != {length}")
    return prompts, ids


def our_scalar_model(s: Setting) -> torch.nn.Module:
    model = load_scalar_model(s.base)
    with torch.no_grad():
        model.score.weight.copy_(C.scalar_head_weight(model.config.hidden_size, s.seed))
    return model


def trl_scalar_model(s: Setting) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(s.base, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = s.tokenizer.pad_token_id
    with torch.no_grad():
        model.score.weight.copy_(C.scalar_head_weight(model.config.hidden_size, s.seed))
    return model


def required_flops(s: Setting, n_policy: int, n_scalar: int) -> float:
    """FLOP one PPO iteration needs, whichever implementation runs it.

    Generation: 2 N_pi per prompt and response token (prefill + one decode step per new token);
    no-grad forwards over the whole episode for the reference policy, the value model and the reward
    model; then ``ppo_epochs`` x (policy + value) forward + backward, 6 N per token. The behaviour
    policy's log-probs are not counted: generation already produced its logits (trl reuses them).
    """
    tokens = s.batch_size * (s.prompt_length + s.response_length)
    return (C.forward_flops(n_policy, tokens)  # generation
            + C.forward_flops(n_policy, tokens) + 2 * C.forward_flops(n_scalar, tokens)  # ref, value, reward
            + s.ppo_epochs * C.train_flops(n_policy + n_scalar, tokens))


def run_ours(s: Setting, precision: str) -> dict[str, Any]:
    """One run of our PPOTrainer; returns timing, response widths and the phase breakdown."""
    from trainers.ppo import PPOTrainer

    C.reset_accelerate(precision)
    cfg = PPOConfig(steps=s.schedule.total, batch_size=s.batch_size, mini_batch_size=s.mini_batch_size,
                    ppo_epochs=s.ppo_epochs, max_prompt_length=s.prompt_length, max_new_tokens=s.response_length,
                    beta=s.beta, temperature=1.0, vf_coef=1.0, cliprange=0.2, cliprange_value=0.2, discount=1.0,
                    gae_lambda=0.95, whiten_advantages=True, mixed_precision=C.PRECISIONS[precision])
    trainer = PPOTrainer(cfg, load_policy(s.base), load_policy(s.base), our_scalar_model(s), our_scalar_model(s),
                         s.tokenizer, s.prompts, chat_template="false", seed=s.seed)
    timer, widths = C.RunTimer(s.schedule), []
    prof = timer.prof
    policy = trainer.accelerator.unwrap_model(trainer.policy)
    prof.wrap(policy, "generate", "generate")
    # A policy forward is _lm_forward then _response_logprobs (log-softmax over the vocabulary); both
    # count in the forward's phase. With autograd on it is a training forward: that includes the
    # rollout's forward when the batch is one minibatch, since the first update reuses it.
    last = {"label": None}

    def lm_label(model, *a, **k):
        last["label"] = ("rollout_ref_forward" if model is trainer.ref_policy else
                         "train_forward" if torch.is_grad_enabled() else "rollout_policy_forward")
        return last["label"]

    prof.wrap(trainer, "_lm_forward", lm_label)
    prof.wrap(trainer, "_response_logprobs", lambda *a, **k: last["label"])
    prof.wrap(trainer, "_values", C.grad_label("rollout_value_forward", "train_forward"))
    prof.wrap(trainer, "reward", "rollout_reward_forward")
    prof.wrap(trainer.accelerator, "backward", "backward")
    prof.wrap(trainer.opt, "step", "optimizer_step")
    original_step = trainer.step

    def step(ro):  # an iteration ends when its updates are done; the next rollout starts the next one
        widths.append(ro.sequences.shape[1] - ro.prompt_len)
        out = original_step(ro)
        timer.step_end()
        return out

    trainer.step = step
    with C.profiled_run(prof):
        trainer.train()
    return timer.record(response_widths=widths)


def run_trl(s: Setting, precision: str) -> dict[str, Any]:
    """One run of trl's PPOTrainer with the same settings; returns what :func:`run_ours` returns."""
    from datasets import Dataset
    from trl.experimental.ppo import PPOConfig as TrlPPOConfig
    from trl.experimental.ppo import PPOTrainer as TrlPPOTrainer
    from trl.experimental.ppo import ppo_trainer as trl_ppo

    C.reset_accelerate(precision)
    accum = s.batch_size // s.mini_batch_size
    args = TrlPPOConfig(
        output_dir=str(s.workdir / "trl_ppo"), per_device_train_batch_size=s.mini_batch_size,
        gradient_accumulation_steps=accum, num_mini_batches=accum, num_ppo_epochs=s.ppo_epochs,
        total_episodes=s.batch_size * s.schedule.total, local_rollout_forward_batch_size=s.mini_batch_size,
        response_length=s.response_length, temperature=1.0, kl_coef=s.beta, vf_coef=1.0, cliprange=0.2,
        cliprange_value=0.2, gamma=1.0, lam=0.95, whiten_rewards=False, stop_token=None, missing_eos_penalty=None,
        num_sample_generations=0, gradient_checkpointing=False, bf16=precision == "bf16", use_cpu=True,
        report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, seed=s.seed, dataloader_num_workers=0,
    )
    data = Dataset.from_dict({"input_ids": s.prompt_ids})
    trainer = TrlPPOTrainer(args=args, processing_class=s.tokenizer, model=load_policy(s.base), ref_model=load_policy(s.base),
                            reward_model=trl_scalar_model(s), train_dataset=data, value_model=trl_scalar_model(s))
    timer, widths = C.RunTimer(s.schedule), []
    prof = timer.prof
    value_model = trainer.accelerator.unwrap_model(trainer.model).value_model
    original_generation = trl_ppo.batch_generation

    def generation_with_width(model, queries, *a, **k):
        out = original_generation(model, queries, *a, **k)
        widths.append(out[0].shape[1] - queries.shape[1])
        return out

    trl_ppo.batch_generation = generation_with_width  # the profiler wraps this one, so its time counts as generate
    prof.wrap(trl_ppo, "batch_generation", "generate")
    prof.wrap(trl_ppo, "forward", C.grad_label("rollout_ref_forward", "train_forward"))
    prof.wrap(trl_ppo, "get_reward", lambda model, *a, **k: "rollout_value_forward" if model is value_model else "rollout_reward_forward")
    prof.wrap(trainer.accelerator, "backward", "backward")
    prof.wrap(trainer.optimizer, "step", "optimizer_step")

    C.attach_hf_timing(trainer, timer)  # trl's PPO loop calls on_step_end once per iteration
    try:
        with C.profiled_run(prof):
            trainer.train()
    finally:
        trl_ppo.batch_generation = original_generation
    return timer.record(response_widths=widths, trl_gradient_checkpointing=bool(trainer.model.is_gradient_checkpointing))


def main(argv=None) -> Path:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch_size % args.mini_batch_size:
        raise SystemExit("--batch-size must be a multiple of --mini-batch-size")
    with tempfile.TemporaryDirectory(prefix="bench_ppo_") as tmp:
        base, tok = C.build_base(args.model, Path(tmp), args.data_dir, args.seed)
        prompts, ids = make_prompts(tok, max(64, args.batch_size), args.prompt_length, args.seed)
        s = Setting(base, tok, prompts, ids, args.batch_size, args.mini_batch_size, args.ppo_epochs, args.prompt_length,
                    args.response_length, args.beta, C.schedule_of(args), args.seed, Path(tmp))
        n_policy, n_scalar = C.matmul_params(load_policy(base)), C.matmul_params(load_scalar_model(base))
        per_step = {"examples": s.batch_size, "tokens": s.batch_size * (s.prompt_length + s.response_length),
                    "required_flops": required_flops(s, n_policy, n_scalar)}
        accum = s.batch_size // s.mini_batch_size
        extra = {"model": {"name": args.model, "policy_matmul_params": n_policy, "scalar_matmul_params": n_scalar},
                 "trl_mapping": {"per_device_train_batch_size": s.mini_batch_size, "gradient_accumulation_steps": accum,
                                 "num_mini_batches": accum, "local_rollout_forward_batch_size": s.mini_batch_size}}
        return C.benchmark(args, "ppo", lambda impl, precision: (run_ours if impl == "ours" else run_trl)(s, precision),
                           per_step, "episode", extra)


if __name__ == "__main__":
    print(main())

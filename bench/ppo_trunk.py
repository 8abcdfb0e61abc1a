"""Seconds per PPO iteration of `make demo`'s PPO set-up, LoRA against a frozen trunk read once (``ppo.trainable_layers``).

The models stand where they stand in the demo pipeline: the policy and the reference are the SFT model; the proxy
reward model and the value model were trained from it with only their top blocks (``rm.trainable_layers``), so they
share its lower layers; the gold judge was trained from the base model, so its lower layers differ (here: the same
model with its lower layers perturbed by 1e-3, so it runs whole). Weights are the embedded model's (``--model``, a
folder); the reward heads are random (timing does not depend on their values). Prompts are ``--prompt-length``
single-token words; responses are sampled up to ``--max-new-tokens`` (EOS may end them earlier; the mean response
length is recorded per mode).

Modes: ``lora`` (the demo's PPO before this change: LoRA r 16 on every linear layer of the policy and the value
model, the reference is the policy without adapters), ``trunk`` (``trainable_layers`` top blocks of the policy and
the value model; reference, value, proxy RM read the frozen trunk once per rollout) and ``trunk_unshared`` (the same
trainable blocks, every model run whole: what the sharing itself saves). Each mode runs ``--warmup`` iterations,
then ``--iterations`` timed ones; results to ``bench/results/ppo_trunk[_<tag>].json``.

Run: ``python -m bench.ppo_trunk --model <SmolLM2-135M folder>``.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch

from bench import common as C
from harness.config import LoRAConfig, PPOConfig
from harness.models import load_policy, load_scalar_model, load_tokenizer, with_reward_pad
from harness.records import Prompt

MODES = ("lora", "trunk", "trunk_unshared")


def demo_ppo_config(mode: str, trainable_layers: int) -> PPOConfig:
    """conf/pipeline/demo.yaml's ppo section, with LoRA (``lora``) or ``trainable_layers`` (the others)."""
    common = dict(steps=10, batch_size=16, mini_batch_size=16, ppo_epochs=2, max_new_tokens=32, max_prompt_length=96,
                  lr=5.0e-4, value_lr=5.0e-4)
    if mode == "lora":
        lora = LoRAConfig(r=16, alpha=32, target_modules=["all-linear"])
        return PPOConfig(**common, lora=lora, value_lora=lora)
    return PPOConfig(**common, trainable_layers=trainable_layers)


def _scalar(base: str, tokenizer, seed: int, perturb: float = 0.0):
    model = load_scalar_model(base)
    with_reward_pad(model, tokenizer)  # as the RM trainer saves it: one embedding row more than the policy
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.score.weight.copy_(torch.randn(model.score.weight.shape, generator=gen) * 0.05)
        if perturb:
            for p in model.model.layers[0].parameters():
                p.add_(torch.randn(p.shape, generator=gen) * perturb)
    return model


def run_mode(mode: str, args, prompts: list[Prompt]) -> dict:
    """One trainer in ``mode``; seconds per timed iteration and where the models ran."""
    from trainers.ppo import PPOTrainer

    tok = load_tokenizer(args.model)
    cfg = demo_ppo_config(mode, args.trainable_layers)
    rm = _scalar(args.model, tok, 1)
    value = _scalar(args.model, tok, 1)
    gold = _scalar(args.model, tok, 2, perturb=1e-3)
    trainer = PPOTrainer(cfg, load_policy(args.model), None if cfg.lora.r else load_policy(args.model), rm, value, tok, prompts,
                         chat_template="false", seed=args.seed, gold_reward=gold)
    if mode == "trunk_unshared":
        trainer.trunk = None
    times, lengths = [], []
    for i in range(args.warmup + args.iterations):
        t0 = time.perf_counter()
        stats = trainer.step(trainer.rollout(trainer._next_batch()))
        if i >= args.warmup:
            times.append(round(time.perf_counter() - t0, 2))
            lengths.append(stats["response_length"])
    return {"seconds_per_iteration": times, "mean_s": round(sum(times) / len(times), 2),
            "response_length": round(sum(lengths) / len(lengths), 1),
            "trunk": trainer.trunk.record() if trainer.trunk is not None else None,
            "trainable_params": sum(p.numel() for p in trainer.policy.parameters() if p.requires_grad)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="the SFT policy's folder (e.g. the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--trainable-layers", type=int, default=4, help="top blocks trained in the trunk modes")
    p.add_argument("--prompt-length", type=int, default=64, help="tokens per prompt")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    tok = load_tokenizer(args.model)
    words, rng = C.single_token_words(tok), random.Random(args.seed)
    prompts = [Prompt(str(i), C.text_of_length(rng, words, args.prompt_length), "bench") for i in range(64)]
    env = C.environment()
    runs = {}
    for mode in args.modes:
        runs[mode] = run_mode(mode, args, prompts)
        print(mode, runs[mode], flush=True)
        C.free()
    name = "ppo_trunk" + (f"_{args.tag}" if args.tag else "")
    payload = {"bench": "ppo_trunk", "config": {k: v for k, v in vars(args).items()}, "runs": runs, "environment": env}
    print(C.write_result(Path(__file__).resolve().parent / "results", name, payload))


if __name__ == "__main__":
    main()

"""Sampling several answers to AlpacaEval prompts: the KV cache extended in place against transformers' concatenating one.

:func:`harness.generation.generate_samples` starts ``generate`` from a prefilled cache
(:func:`harness.shared_prefix.prefilled_inputs`). transformers' ``DynamicLayer`` appends each step's keys and values
with ``torch.cat``, copying the whole cache every step; rows are left-padded to the batch's longest prompt, so with
long prompts (the eval cuts at ``eval.max_prompt_length`` = 1024 tokens) every step copies a wide cache.
:func:`harness.shared_prefix.growing_cache` writes the step into spare capacity instead. This times
``generate_samples`` on ``--prompts`` AlpacaEval instructions of the eval's seeded order, ``--samples`` answers each
at the eval's decoding, batch 48, once with each cache, alternating (``--repeats`` rounds), in one process, and
checks that both give the same answers. Writes ``bench/results/generation_cache[_<tag>].json``.

Run: ``python -m bench.generation_cache --policy <checkpoint> [--prompts 48 --samples 8 --repeats 2 --tag T]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from bench import common as C


def main(argv: list[str] | None = None) -> None:
    import harness.shared_prefix as sp
    from harness.config import DataConfig
    from harness.generation import generate_samples
    from harness.models import load_policy, load_tokenizer
    from harness.selection import eval_prompts

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", required=True, help="a causal LM checkpoint folder")
    p.add_argument("--prompts", type=int, default=48)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--max-prompt-length", type=int, default=1024)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    prompts, _ = eval_prompts(DataConfig(data_dir=os.environ.get("HARNESS_DATA_DIR")), n=args.prompts)
    model, tok = load_policy(args.policy), load_tokenizer(args.policy)
    dec = {"max_new_tokens": args.max_new_tokens, "do_sample": True, "temperature": 0.7, "top_p": 0.9}
    growing = sp.growing_cache

    def concatenating(layers):
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=layers)

    seconds: dict[str, list[float]] = {"growing": [], "concatenating": []}
    outputs: dict[str, list[list[str]]] = {}
    try:
        for _ in range(args.repeats):
            for name, fn in (("growing", growing), ("concatenating", concatenating)):
                sp.growing_cache = fn
                t0 = time.perf_counter()
                got = generate_samples(model, tok, prompts, "policy", dec, seeds=list(range(args.samples)), batch_size=48,
                                       max_prompt_length=args.max_prompt_length)
                seconds[name].append(round(time.perf_counter() - t0, 2))
                outputs[name] = [[g.output for g in s] for s in got]
                print(name, seconds[name][-1], flush=True)
    finally:
        sp.growing_cache = growing
    same = sum(a == b for x, y in zip(outputs["growing"], outputs["concatenating"]) for a, b in zip(x, y))
    total = sum(len(x) for x in outputs["growing"])
    lengths = [len(tok(p.prompt).input_ids) for p in prompts]
    result = {"seconds": seconds, "median_s": {k: statistics.median(v) for k, v in seconds.items()},
              "speedup": round(statistics.median(seconds["concatenating"]) / statistics.median(seconds["growing"]), 3),
              "same_answers": same, "answers": total, "prompt_tokens": {"max": max(lengths), "median": statistics.median(lengths)}}
    print(result)
    name = "generation_cache" + (f"_{args.tag}" if args.tag else "")
    print(C.write_result(Path(__file__).resolve().parent / "results", name,
                         {"bench": "generation_cache", "config": vars(args), "result": result, "environment": C.environment()}))


if __name__ == "__main__":
    main()

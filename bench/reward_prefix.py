"""Reward-model scoring with shared prompt prefixes run once (``harness.judging.prefix_scores``) against whole texts.

Two cases on one reward model built from ``--model`` (a scalar head on the causal LM, harness rendering through
its chat template, the demo judges' reading lengths 192 / 96, batch 48): ``k4`` (96 prompts of 20-90 single-token
words, 4 outputs of 30 words each: the simulated labeler's shape) and ``distinct`` (192 prompts, one output each:
only the chat template's system turn is shared). Each case runs prefix, whole, prefix, whole in one process;
``whole`` is :func:`harness.judging.reward_model.reward_scores` with the prefix path replaced by its whole-text
fallback. Records seconds per run and the largest score difference; ``bench/results/reward_prefix[_<tag>].json``.

Run: ``python -m bench.reward_prefix --model <SmolLM2-135M folder>``.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch

from bench import common as C


def _cases(tok, seed: int) -> dict[str, tuple[list[str], list[str]]]:
    words, rng = C.single_token_words(tok), random.Random(seed)
    prompts = [C.text_of_length(rng, words, rng.randint(20, 90)) for _ in range(96)]
    k4 = ([p for p in prompts for _ in range(4)], [C.text_of_length(rng, words, 30) for _ in range(4 * len(prompts))])
    distinct_p = [C.text_of_length(rng, words, rng.randint(20, 90)) for _ in range(192)]
    distinct = (distinct_p, [C.text_of_length(rng, words, rng.randint(20, 64)) for _ in distinct_p])
    return {"k4": k4, "distinct": distinct}


def main(argv: list[str] | None = None) -> None:
    from harness.judging import prefix_scores
    from harness.judging.reward_model import reward_scores
    from harness.models import load_scalar_model, load_tokenizer, record_reward_model, with_reward_pad

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a causal LM folder (e.g. the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    model = load_scalar_model(args.model)
    tok = with_reward_pad(model, load_tokenizer(args.model))
    record_reward_model(model, chat_template=True, offset=0.0)
    with torch.no_grad():
        model.score.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(args.seed))
    model.eval()
    shared = prefix_scores.prefix_shared_scores

    def whole_only(model, enc, pad_id, batch_size, whole, progress=None, min_prefix=None):
        return whole(list(range(len(enc))))

    env, runs = C.environment(), {}
    for name, (prompts, outputs) in _cases(tok, args.seed).items():
        got: dict[str, list] = {"prefix": [], "whole": []}
        scores = {}
        for mode in ("prefix", "whole", "prefix", "whole"):
            prefix_scores.prefix_shared_scores = shared if mode == "prefix" else whole_only
            try:
                t0 = time.perf_counter()
                scores[mode] = reward_scores(model, tok, prompts, outputs, max_length=192, max_prompt_length=96,
                                             batch_size=48, chat_template="auto")
                got[mode].append(round(time.perf_counter() - t0, 1))
            finally:
                prefix_scores.prefix_shared_scores = shared
        runs[name] = {"texts": len(prompts), "seconds": got,
                      "max_abs_diff": max(abs(a - b) for a, b in zip(scores["prefix"], scores["whole"]))}
        print(name, runs[name], flush=True)
    name = "reward_prefix" + (f"_{args.tag}" if args.tag else "")
    print(C.write_result(Path(__file__).resolve().parent / "results", name,
                         {"bench": "reward_prefix", "config": vars(args), "runs": runs, "environment": env}))


if __name__ == "__main__":
    main()

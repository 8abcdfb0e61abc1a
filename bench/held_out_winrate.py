"""Contrast b on PPO's own prompt distribution: the gold judge's win rate of PPO policies over SFT on held-out hh prompts.

The report's contrast b is the win-rate eval's (AlpacaEval instructions, the eval's decoding: temperature 0.7, top-p
0.9). PPO in ``make demo`` trains on hh-rlhf first turns at temperature 1, and its probe (:mod:`trainers.probe`) reads
24 held-out ones. This measures b where PPO was trained: ``--prompts`` held-out hh first turns from the probe's pool
(:func:`harness.selection.probe_prompts`: none a PPO, labeler, judge or AlpacaEval prompt), the probe's own prompts
(the first ``ppo.probe.prompts`` of the pool's seeded order) left out, one answer per prompt and policy (seed 0) under each ``--decoding`` (``ppo``: the run's ``ppo.temperature``,
top-p 1; ``eval``: the run's ``evals.winrate.decoding``), both at the eval's ``max_new_tokens``, each scored by the run's
gold judge (``checkpoints/judge_helpful``, at EOS). Per policy: the share of prompts where its answer outscores SFT's
(ties 0.5) with a 95 % bootstrap interval over prompts (:func:`harness.stats.bootstrap_mean`), and the mean gold
difference. Writes ``bench/results/held_out_winrate[_<tag>].json``.

``--prompt-set alpaca`` reads the eval's own AlpacaEval instructions instead (the first ``--prompts`` of their seeded
order, so 96 are the demo's), and ``--samples m`` draws m answers per prompt and policy (seeds 0 .. m-1): each prompt's
win is then the share of its m x m sample pairs (:func:`all_pairs_wins`), and the result has a row for the first 1, 2,
4, ... m samples a side, so one run shows how the interval narrows with m.

Run: ``python -m bench.held_out_winrate --run <make demo run> [--policy ppo2=<other run>/checkpoints/ppo ...]``
(the run's own ``checkpoints/ppo`` is always included, as ``ppo``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench import common as C

def wins_over(policy: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Per prompt: 1 where ``policy``'s gold score beats ``baseline``'s, 0.5 on a tie, 0 otherwise (``[n]`` each)."""
    return np.where(policy > baseline, 1.0, np.where(policy == baseline, 0.5, 0.0))


def all_pairs_wins(policy: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Per prompt: the share of the ``m x m`` pairs (policy sample i, baseline sample j) that the policy wins, ties 0.5.

    ``policy``, ``baseline``: ``[n_prompts, m]`` gold scores. Returns ``[n_prompts]``; with ``m = 1`` it is
    :func:`wins_over`. Its mean over prompts estimates the same win probability as one sample a side (the two-sample
    U-statistic, Mann-Whitney's AUC within a prompt), with less variance. Raises ``ValueError`` on other shapes."""
    if policy.ndim != 2 or policy.shape != baseline.shape:
        raise ValueError(f"all_pairs_wins: need two [prompts, samples] arrays of one shape, got {policy.shape} and {baseline.shape}")
    return wins_over(policy[:, :, None], baseline[:, None, :]).mean(axis=(1, 2))


def main(argv: list[str] | None = None) -> None:
    from harness.config import DataConfig
    from harness.generation import generate_samples
    from harness.judging.reward_model import RewardModelJudge
    from harness.models import load_policy, load_tokenizer
    from harness.selection import eval_prompts, probe_prompts
    from harness.stats import bootstrap_mean

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a `make demo` (pipeline=demo) run dir")
    p.add_argument("--policy", action="append", default=[], metavar="NAME=PATH", help="another policy checkpoint to compare")
    p.add_argument("--prompts", type=int, default=192)
    p.add_argument("--decoding", nargs="+", choices=["ppo", "eval"], default=["ppo", "eval"])
    p.add_argument("--prompt-set", choices=["hh", "alpaca"], default="hh",
                   help="hh: held-out hh first turns (the probe's pool); alpaca: the eval's AlpacaEval instructions (the first --prompts of its seeded order)")
    p.add_argument("--samples", type=int, default=1, help="answers per prompt and policy (seeds 0..m-1); the win rate is over all m x m pairs")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    run = Path(args.run)
    cfg = json.loads((run / "run.json").read_text())["config"]
    data = {k: v for k, v in cfg["data"].items() if k in DataConfig.__dataclass_fields__}
    if args.prompt_set == "hh":
        skipped = cfg["ppo"]["probe"]["prompts"]  # the run's probe took the first ones of the pool's seeded order
        prompts, _ = probe_prompts(DataConfig(**data), skipped + args.prompts)
        prompts = prompts[skipped:]
    else:  # eval_prompts(n) is the first n of one seeded shuffle: n >= the run's n_eval_prompts includes the eval's own
        skipped = 0
        prompts, _ = eval_prompts(DataConfig(**data), n=args.prompts)
    policies = {"sft": str(run / "checkpoints" / "sft"), "ppo": str(run / "checkpoints" / "ppo")}
    for spec in args.policy:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_dir():
            raise SystemExit(f"--policy {spec!r}: need NAME=PATH with PATH a checkpoint folder")
        policies[name] = path
    evald = cfg["evals"]["winrate"]["decoding"]
    decodings = {"ppo": {"max_new_tokens": evald["max_new_tokens"], "do_sample": True, "temperature": cfg["ppo"]["temperature"], "top_p": 1.0},
                 "eval": dict(evald)}
    judge = RewardModelJudge(str(run / "checkpoints" / "judge_helpful"), batch_size=32, max_length=cfg["eval"]["judges"]["max_length"],
                             max_prompt_length=cfg["eval"]["judges"]["max_prompt_length"])
    env = C.environment()
    out = {"prompts": len(prompts), "prompt_set": args.prompt_set, "samples": args.samples, "probe_prompts_skipped": skipped, "decodings": {d: decodings[d] for d in args.decoding},
           "policies": policies, "rows": []}
    gold: dict[str, dict[str, np.ndarray]] = {d: {} for d in args.decoding}  # decoding -> policy -> [prompts, samples] gold scores
    for name, path in policies.items():
        model, tok = load_policy(path), load_tokenizer(path)
        for dname in args.decoding:
            samples = generate_samples(model, tok, prompts, name, decodings[dname], seeds=list(range(args.samples)), batch_size=48,
                                       max_prompt_length=cfg["ppo"]["max_prompt_length"], chat_template=cfg["model"].get("chat_template", "auto"))
            gold[dname][name] = np.stack([np.array(judge.score([a.prompt for a in answers], [a.output for a in answers]))
                                          for answers in samples], axis=1)
    for dname in args.decoding:
        for name in policies:
            if name == "sft":
                continue
            g, base = gold[dname][name], gold[dname]["sft"]
            ms = sorted({1, *[m for m in (2, 4, 8) if m < args.samples], args.samples})
            for m in ms:  # the first m samples a side: what m samples per prompt resolve
                est = bootstrap_mean(list(all_pairs_wins(g[:, :m], base[:, :m])), seed=0)
                row = {"decoding": dname, "policy": name, "samples": m, "win_rate_vs_sft": round(est.value, 4), "ci_low": round(est.ci_low, 4),
                       "ci_high": round(est.ci_high, 4), "ties": int((g[:, 0] == base[:, 0]).sum()) if m == 1 else None,
                       "gold_mean_difference": round(float(g[:, :m].mean() - base[:, :m].mean()), 4)}
                out["rows"].append(row)
                print(row, flush=True)
    name = "held_out_winrate" + (f"_{args.tag}" if args.tag else "")
    print(C.write_result(Path(__file__).resolve().parent / "results", name,
                         {"bench": "held_out_winrate", "config": {**vars(args)}, "result": out, "environment": env}))


if __name__ == "__main__":
    main()

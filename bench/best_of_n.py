"""How much gold win rate over SFT optimising the proxy RM can buy at small KL: best-of-n by the proxy, judged by gold.

Gao et al. 2022 (arXiv 2210.10760) find that best-of-n sampling and RL reach similar gold reward at the same KL; best-of-n
needs no training, so it measures what the run's proxy RM (``checkpoints/rm``) can give the held-out gold judge
(``checkpoints/judge_helpful``) before PPO's optimisation quality enters. For a ``make demo`` run: ``--k`` samples of the
SFT policy (``checkpoints/sft``, PPO's decoding: temperature 1, ``ppo.max_new_tokens``) on ``--prompts`` held-out prompts
(:func:`harness.selection.probe_prompts`: none a PPO, labeler, judge or AlpacaEval prompt), each scored by both reward
models (:class:`harness.judging.reward_model.RewardModelJudge`, at EOS). Per n in 1..k, over every n-subset of a prompt's
samples: the gold judge's win rate of the subset's proxy-best sample against each sample outside it (ties 0.5), averaged
per prompt, with a 95 % bootstrap interval over prompts, beside best-of-n's KL ``log n - (n - 1) / n`` (nats; Stiennon et
al. 2020, appendix) and the oracle (best-of-n by the gold judge itself). Also the per-prompt Spearman correlation of
proxy and gold scores. Writes ``bench/results/best_of_n[_<tag>].json``.

Run: ``python -m bench.best_of_n --run <make demo run dir> [--prompts 64 --k 8]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from bench import common as C


def win_of_best(proxy: np.ndarray, gold: np.ndarray, n: int) -> float:
    """Gold win rate of the proxy-best of each ``n``-subset of one prompt's samples against every sample outside the
    subset (ties in gold count 0.5; ties in proxy pick the first), averaged over subsets and outsiders. ``proxy``,
    ``gold``: ``[k]`` scores, ``1 <= n < k``."""
    wins, count = 0.0, 0
    for subset in itertools.combinations(range(len(proxy)), n):
        best = subset[int(np.argmax(proxy[list(subset)]))]
        for j in set(range(len(proxy))) - set(subset):
            wins += 1.0 if gold[best] > gold[j] else 0.5 if gold[best] == gold[j] else 0.0
            count += 1
    return wins / count


def main(argv: list[str] | None = None) -> None:
    from harness.config import DataConfig
    from harness.generation import generate_samples
    from harness.judging.reward_model import RewardModelJudge
    from harness.models import load_policy, load_tokenizer
    from harness.selection import probe_prompts
    from harness.stats import bootstrap_mean

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a `make demo` (pipeline=demo) run dir")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    run = Path(args.run)
    cfg = json.loads((run / "run.json").read_text())["config"]
    data = {k: v for k, v in cfg["data"].items() if k in DataConfig.__dataclass_fields__}
    prompts, _ = probe_prompts(DataConfig(**data), args.prompts)
    sft = str(run / "checkpoints" / "sft")
    decoding = {"max_new_tokens": cfg["ppo"]["max_new_tokens"], "do_sample": True, "temperature": cfg["ppo"]["temperature"], "top_p": 1.0}
    env = C.environment()
    samples = generate_samples(load_policy(sft), load_tokenizer(sft), prompts, "sft", decoding, seeds=list(range(args.k)),
                               batch_size=32, max_prompt_length=cfg["ppo"]["max_prompt_length"], chat_template=cfg["model"].get("chat_template", "auto"))
    flat = [(g.prompt, g.output) for j in range(len(prompts)) for g in (s[j] for s in samples)]  # prompt-major
    scores = {}
    for name in ("rm", "judge_helpful"):
        judge = RewardModelJudge(str(run / "checkpoints" / name), batch_size=32, max_length=cfg["rm"]["max_length"],
                                 max_prompt_length=cfg["rm"]["max_prompt_length"])
        scores[name] = np.array(judge.score([a for a, _ in flat], [b for _, b in flat])).reshape(len(prompts), args.k)
    proxy, gold = scores["rm"], scores["judge_helpful"]
    rho = [spearmanr(proxy[i], gold[i])[0] for i in range(len(prompts))]
    curve = []
    for n in range(1, args.k):
        per_prompt = [win_of_best(proxy[i], gold[i], n) for i in range(len(prompts))]
        oracle = [win_of_best(gold[i], gold[i], n) for i in range(len(prompts))]
        est = bootstrap_mean(per_prompt, seed=0)
        curve.append({"n": n, "kl_nats": round(math.log(n) - (n - 1) / n, 4), "gold_win_rate": round(est.value, 4),
                      "ci_low": round(est.ci_low, 4), "ci_high": round(est.ci_high, 4), "oracle_win_rate": round(float(np.mean(oracle)), 4)})
        print(curve[-1], flush=True)
    out = {"prompts": len(prompts), "k": args.k, "decoding": decoding,
           "proxy_gold_spearman_within_prompt": round(float(np.nanmean(rho)), 3),
           "proxy_gold_spearman_all": round(float(spearmanr(proxy.ravel(), gold.ravel())[0]), 3), "curve": curve}
    print(out["proxy_gold_spearman_within_prompt"], out["proxy_gold_spearman_all"])
    name = "best_of_n" + (f"_{args.tag}" if args.tag else "")
    print(C.write_result(Path(__file__).resolve().parent / "results", name,
                         {"bench": "best_of_n", "config": {**vars(args)}, "result": out, "environment": env}))


if __name__ == "__main__":
    main()

"""Contrast b over PPO seeds: how much of the demo's "PPO beats SFT" is the eval's sampling and how much PPO's own luck.

The demo's b (the gold judge's win rate of PPO over SFT on AlpacaEval instructions) was read from one PPO run.
This reads one ``harness-eval`` run in which several PPO policies, each trained with another ``seed`` from the same
upstream (same SFT policy, proxy RM, gold judge and prompts), answered the same prompts with the same random numbers
(``evals.winrate.samples_per_prompt`` answers a side), all against the same SFT answers, and reports:

- per seed: the win rate and length-controlled win rate over SFT with the eval's 95 % intervals, the mean gold
  reward difference, whether the interval is above 0.5, and the PPO run's KL at its end (its train log);
- the share of a prompt's win that comes from the first m' answers a side (m' = 1, 2, 4, ...): the interval's
  half-width at each m' (percentile bootstrap over prompts), measured, not modelled;
- across seeds: the mean effect (win rate - 0.5) with a t interval over seeds (the PPO *procedure* against SFT: the
  estimand a user who runs ``make demo`` once draws from), the spread of the seeds' win rates, and the part of it the
  eval's own error explains (between-seed variance = variance of the seeds' estimates - mean squared standard error);
- the seeds pooled: the mean of each prompt's win over the seeds, with an interval over prompts and a crossed one
  over seeds and prompts (:func:`crossed_bootstrap`). The t interval over seeds treats the seeds' estimates as
  independent; in one ``harness-eval`` they share the prompts and SFT's answers (per-prompt wins of two seeds
  correlate 0.3-0.5 here), which the t interval does not see and the crossed bootstrap does;
- the probability that one run of the preset resolves b (interval above 0.5) at m' answers a side, for a run whose
  true effect is drawn from the seeds' distribution (Normal(mean, between-seed SD)), so that its estimate is
  Normal(mean, se_m'^2 + between-seed SD^2): ``P = Phi((mean - 1.96 se_m') / sqrt(se_m'^2 + between^2))``, se_m'
  the measured half-width at m' / 1.96 (:func:`harness.stats.resolve_probability`); the across-seed numbers are
  :func:`harness.stats.seed_spread`'s.

Run: ``python -m bench.ppo_seeds --eval <harness-eval run dir> --train ppo_s0=<run dir> ... [--tag s14]``; the
policies in the eval run are matched to ``--train`` by name; ``--only PREFIX`` reads those whose name starts with
PREFIX (an eval of two recipes' seeds, read one recipe at a time). Writes ``bench/results/ppo_seeds[_<tag>].json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from bench import common as C


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a JSONL file (``[]`` for a file with no records). Raises ``FileNotFoundError``."""
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def subsample_wins(pair_wins: list[float], m: int, k: int, first: int) -> float:
    """A prompt's win over its first ``first`` answers a side: the mean of ``pair_wins[s * k + t]`` for s, t < first.

    ``pair_wins``: the ``m x k`` pair outcomes of one item (policy sample ``s`` against baseline sample ``t`` at
    ``s * k + t``, :func:`harness.evals.winrate.winrate_items`). Raises ``ValueError`` if the length is not ``m * k``
    or ``first`` exceeds ``min(m, k)``."""
    if len(pair_wins) != m * k:
        raise ValueError(f"subsample_wins: {len(pair_wins)} pair outcomes, expected {m} x {k}")
    if not 1 <= first <= min(m, k):
        raise ValueError(f"subsample_wins: first={first} outside 1..{min(m, k)}")
    return float(np.asarray(pair_wins, dtype=float).reshape(m, k)[:first, :first].mean())


def crossed_bootstrap(wins: np.ndarray, n_resamples: int = 20000, seed: int = 0) -> dict:
    """The mean of a ``[seeds, prompts]`` table of per-prompt wins with two bootstrap intervals: over prompts (each
    prompt's wins in every seed kept together, so prompts and the answers the seeds share, such as one eval's SFT
    answers, count once), and crossed, over seeds and prompts at once (the pigeonhole bootstrap, Owen 2007, Ann. Appl.
    Stat. 1(1): conservative, its variance a little above the crossed design's). Percentile 95 % intervals.
    Raises ``ValueError`` for a table that is not 2-D with at least 2 seeds and 2 prompts."""
    w = np.asarray(wins, dtype=float)
    if w.ndim != 2 or min(w.shape) < 2:
        raise ValueError(f"crossed_bootstrap: need a [seeds >= 2, prompts >= 2] table, got shape {w.shape}")
    rng = np.random.default_rng(seed)
    n_s, n_p = w.shape
    prompts_only = np.array([w[:, rng.integers(0, n_p, n_p)].mean() for _ in range(n_resamples)])
    crossed = np.array([w[np.ix_(rng.integers(0, n_s, n_s), rng.integers(0, n_p, n_p))].mean() for _ in range(n_resamples)])
    return {"mean": float(w.mean()), "prompts_ci": np.percentile(prompts_only, [2.5, 97.5]).tolist(),
            "crossed_ci": np.percentile(crossed, [2.5, 97.5]).tolist(), "crossed_share_at_or_below_half": float((crossed <= 0.5).mean())}


def main(argv: list[str] | None = None) -> None:
    from harness.stats import bootstrap_mean, resolve_probability, seed_spread

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", required=True, help="a harness-eval run dir (results/results.jsonl, results/winrate_items.jsonl)")
    p.add_argument("--train", action="append", default=[], metavar="NAME=RUN", help="a PPO run dir per policy name (for its KL)")
    p.add_argument("--baseline", default="sft")
    p.add_argument("--judge", default="helpful")
    p.add_argument("--only", default="", help="read only the policies whose name starts with this (e.g. lr2_)")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    run = Path(args.eval)
    train = dict(t.split("=", 1) for t in args.train)
    rows = read_jsonl(run / "results" / "results.jsonl")
    items = [i for i in read_jsonl(run / "results" / "winrate_items.jsonl")
             if i["baseline"] == args.baseline and i["judge"] == args.judge and i["policy"].startswith(args.only)]
    policies = sorted({i["policy"] for i in items})
    if not policies:
        raise SystemExit(f"{run}: no win-rate items against {args.baseline} on judge {args.judge}")

    def row(policy: str, metric: str) -> dict:
        hits = [r for r in rows if r["policy"] == policy and r["eval"] == "winrate" and r["metric"] == metric
                and r["slice"].get("baseline") == args.baseline and r["slice"].get("judge") == args.judge]
        if len(hits) != 1:
            raise SystemExit(f"{run}: {len(hits)} rows for {policy} {metric} vs {args.baseline} ({args.judge})")
        return hits[0]

    per_seed, m = [], None
    for pol in policies:
        its = [i for i in items if i["policy"] == pol]
        m_pol, k = len(its[0].get("rewards", [0])), len(its[0].get("baseline_rewards", [0]))
        m = m_pol if m is None else m
        if m_pol != m or k != m:
            raise SystemExit(f"{run}: {pol} has {m_pol} x {k} answers; this bench needs the same m a side for every policy ({m})")
        wr, lc = row(pol, "win_rate"), row(pol, "lc_win_rate")
        curve = {}
        first = 1
        while first <= m:
            wins = [subsample_wins(i["pair_wins"], m, k, first) if m > 1 else i["win"] for i in its]
            est = bootstrap_mean(wins)
            curve[first] = {"win_rate": est.value, "ci": [est.ci_low, est.ci_high], "half_width": (est.ci_high - est.ci_low) / 2}
            first *= 2
        gold_diff = float(np.mean([np.mean(i.get("rewards", [i["reward"]])) - np.mean(i.get("baseline_rewards", [i["baseline_reward"]]))
                                   for i in its]))
        kl = None
        if pol in train:
            log = read_jsonl(Path(train[pol]) / "checkpoints" / "ppo_train_log.jsonl")
            kl = log[-1]["kl"]
        per_seed.append({"policy": pol, "prompts": len(its), "win_rate": wr["value"], "ci": [wr["ci_low"], wr["ci_high"]],
                         "lc_win_rate": lc["value"], "lc_ci": [lc["ci_low"], lc["ci_high"]], "resolved": wr["ci_low"] > 0.5,
                         "lc_resolved": lc["ci_low"] > 0.5, "gold_mean_difference": gold_diff, "kl_at_end": kl,
                         "by_answers": curve})
    wins = [s["win_rate"] for s in per_seed]
    ses = [(s["ci"][1] - s["ci"][0]) / (2 * 1.959964) for s in per_seed]
    summary, power = {}, {}
    if len(per_seed) > 1:
        spread = seed_spread(wins, ses)
        summary = {**asdict(spread), "mean_effect": spread.mean - 0.5}
        for first in per_seed[0]["by_answers"]:
            se = float(np.mean([s["by_answers"][first]["half_width"] for s in per_seed])) / 1.959964
            power[first] = {"se": se, "p_resolved": resolve_probability(spread.mean - 0.5, spread.between_sd, se),
                            "p_resolved_without_seed_spread": resolve_probability(spread.mean - 0.5, 0.0, se)}
    pooled = {}
    if len(per_seed) > 1:
        ids = sorted({i["prompt_id"] for i in items})
        win = {(i["policy"], i["prompt_id"]): i["win"] for i in items}
        pooled = crossed_bootstrap(np.array([[win[(pol, q)] for q in ids] for pol in policies]))
    result = {"eval_run": str(run), "baseline": args.baseline, "judge": args.judge, "answers_a_side": m,
              "per_seed": per_seed, "across_seeds": summary, "pooled": pooled, "resolve_probability": power}
    name = "ppo_seeds" + (f"_{args.tag}" if args.tag else "")
    print(C.write_result(Path(__file__).resolve().parent / "results", name,
                         {"bench": "ppo_seeds", "config": vars(args), "result": result, "environment": C.environment()}))
    print("| policy | KL at end | win rate vs SFT [95 % CI] | LC [95 % CI] | gold diff | resolved |")
    print("|---|---|---|---|---|---|")
    for s in per_seed:
        print(f"| {s['policy']} | {s['kl_at_end'] if s['kl_at_end'] is None else round(s['kl_at_end'], 2)} | "
              f"{s['win_rate']:.3f} [{s['ci'][0]:.3f}, {s['ci'][1]:.3f}] | {s['lc_win_rate']:.3f} [{s['lc_ci'][0]:.3f}, "
              f"{s['lc_ci'][1]:.3f}] | {s['gold_mean_difference']:+.3f} | {'yes' if s['resolved'] else 'no'} |")
    print(json.dumps({"across_seeds": summary, "pooled": pooled, "resolve_probability": power}, indent=1))


if __name__ == "__main__":
    main()

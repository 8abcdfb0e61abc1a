"""PPO variants side by side: each run's probe, its paired shape tests, its gain over SFT on the probe, and contrast b.

Each ``--run NAME=DIR`` is a ``harness-pipeline pipeline=demo`` run (typically a PPO-only rerun through ``upstream=`` of
one ``make demo`` run, so every variant starts from the same SFT policy, proxy RM and gold judge and its probe reads
the same held-out prompts with the same random numbers). Per run it records:

- the overrides (``run.json``) and the train log's seconds per iteration (median), last KL, entropy first and last;
- the probe's points (KL, proxy and gold means with standard errors) and the paired shape tests of both curves
  (:func:`harness.overoptimisation.reward_shape` with ``per_prompt``, as the report reads contrast c);
- ``gain``: per probe prompt, its mean reward over the points after training started minus its reward before, for
  the proxy and the gold judge; the mean over prompts, its standard error and a two-sided one-sample t-test (scipy):
  whether PPO moved the held-out rewards at all, whatever the curve's shape;
- contrast b as the run's results give it: the gold judge's win rate and length-controlled win rate of PPO over
  SFT, with their 95 % intervals and n.

Writes ``bench/results/ppo_variants[_<tag>].json``. Run: ``python -m bench.ppo_variants --run gae=<dir> --run rloo=<dir>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from bench import common as C


def probe_gain(per_prompt: list[list[float]]) -> dict[str, float]:
    """``per_prompt [n][T]`` (point 0 before training): each prompt's mean over points 1..T-1 minus its point 0; the
    mean over prompts, its standard error, the two-sided one-sample t-test's p (scipy) and n. Raises ``ValueError`` for
    fewer than 2 prompts or 2 points."""
    from scipy import stats

    a = np.asarray(per_prompt, dtype=float)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"probe_gain: need [n >= 2 prompts][T >= 2 points], got shape {a.shape}")
    d = a[:, 1:].mean(axis=1) - a[:, 0]
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))), "p": float(stats.ttest_1samp(d, 0.0).pvalue),
            "n": int(len(d))}


def summarise(run: Path) -> dict:
    """One run's record (see the module docstring). Raises ``SystemExit`` if the run has no PPO train log."""
    from harness.overoptimisation import reward_shape

    info = json.loads((run / "run.json").read_text())
    train = run / "checkpoints" / "ppo_train_log.jsonl"
    if not train.is_file():
        raise SystemExit(f"{run}: no checkpoints/ppo_train_log.jsonl (not a PPO run?)")
    log = [json.loads(line) for line in train.read_text().splitlines() if line.strip()]
    out = {"overrides": info.get("overrides", []), "iterations": len(log),
           "seconds_per_iteration_median": round(statistics.median(x["seconds"] for x in log), 1),
           "kl_last": round(log[-1]["kl"], 3), "entropy_first": round(log[0]["entropy"], 3), "entropy_last": round(log[-1]["entropy"], 3)}
    probe_file = run / "checkpoints" / "ppo" / "probe_log.jsonl"
    if probe_file.is_file():
        pts = [json.loads(line) for line in probe_file.read_text().splitlines() if line.strip()]
        out["probe"] = [{"step": p["step"], "kl": round(p["kl"], 3), "proxy": round(p["reward_mean"], 3), "proxy_se": round(p["reward_se"], 3),
                         "gold": round(p["gold_reward_mean"], 3), "gold_se": round(p["gold_reward_se"], 3)} for p in pts]
        kl = [p["kl"] for p in pts]
        for name, mean, by_prompt in (("proxy", "reward_mean", "reward_by_prompt"), ("gold", "gold_reward_mean", "gold_reward_by_prompt")):
            per_prompt = np.array([p[by_prompt] for p in pts]).T.tolist()
            shape = reward_shape(kl, [p[mean] for p in pts], per_prompt=per_prompt)
            out[f"{name}_shape"] = {"shape": shape.shape, "text": shape.text}
            out[f"{name}_gain"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in probe_gain(per_prompt).items()}
    rows = [json.loads(line) for line in (run / "results" / "results.jsonl").read_text().splitlines() if line.strip()] \
        if (run / "results" / "results.jsonl").is_file() else []
    for r in rows:
        s = r.get("slice") or {}
        if r.get("eval") == "winrate" and r.get("policy") == "ppo" and s.get("baseline") == "sft" and r["metric"] in ("win_rate", "lc_win_rate"):
            out[f"b_{r['metric']}"] = {"value": round(r["value"], 3), "ci": [round(r["ci_low"], 3), round(r["ci_high"], 3)], "n": r["n"],
                                      "judge": s.get("judge")}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--note", default="", help="what the runs are, for the results file")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    runs = {}
    for spec in args.run:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_dir():
            raise SystemExit(f"--run {spec!r}: need NAME=DIR with DIR a pipeline run directory")
        runs[name] = summarise(Path(path))
    path = C.write_result(C.RESULTS_DIR, f"ppo_variants{'_' + args.tag if args.tag else ''}", {"bench": "ppo_variants", "note": args.note, "runs": runs, "environment": C.environment()})
    print(json.dumps(runs, indent=1))
    print(f"-> {path}")


if __name__ == "__main__":
    main()

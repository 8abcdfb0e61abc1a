"""Contrast b at several answers per prompt: the win-rate eval of a finished pipeline run with ``samples_per_prompt`` = m.

The headline's contrast b is the gold judge's win rate of PPO over SFT on the eval's AlpacaEval prompts, one answer
a side per prompt. Most of that estimate's variance lies between samples of one prompt (bench/README.md, best-of-n:
a prompt's samples spread SD 0.76 on the gold judge, its mean over prompts 0.18), so several answers a side
(``evals.winrate.samples_per_prompt``, each prompt's win the mean over its sample pairs) narrow the interval at the
same expected win rate. This reruns the winrate eval of a ``harness-pipeline`` run (its ``run.json``: config,
policies, its judges) through the harness's own path (:func:`harness.stages.run_eval`) with a fresh run directory and
generation cache, once per ``--samples`` value, and records per value: the eval's wall and CPU seconds (the gold
judge's validation included, as in a cold run), the win-rate eval's own seconds (``evals.json``), and every
``win_rate`` / ``lc_win_rate`` row of the gold judge against SFT and base. Writes
``bench/results/winrate_samples[_<tag>].json``.

Run: ``python -m bench.winrate_samples --run <pipeline run> --samples 1 8 [--tag T]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench import common as C


def main(argv: list[str] | None = None) -> None:
    from omegaconf import OmegaConf

    from harness import stages
    from harness.pipeline import eval_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a harness-pipeline run directory (its run.json and checkpoints)")
    p.add_argument("--samples", type=int, nargs="+", default=[1, 8])
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    run = Path(args.run)
    info = json.loads((run / "run.json").read_text())
    cfg = OmegaConf.create(info["config"])
    paths = {"judge_helpful": str(run / "checkpoints" / "judge_helpful")}
    env = C.environment()
    out = {"run": str(run), "policies": info["policies"], "cases": []}
    for m in args.samples:
        cfg.evals.winrate.samples_per_prompt = m
        cfg.eval.run = ["winrate"]
        with tempfile.TemporaryDirectory() as tmp:
            cfg.eval.cache_dir = str(Path(tmp) / "cache")  # nothing generated before: every answer is timed
            t0, c0 = time.perf_counter(), time.process_time()
            rows = stages.run_eval(cfg.model, cfg.data, eval_config(cfg, paths), cfg.evals, info["policies"], Path(tmp) / "run",
                                   "bench", cfg.seed)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            winrate_s = json.loads((Path(tmp) / "run" / "results" / "evals.json").read_text())["evals"]["winrate"].get("seconds")
        case = {"samples_per_prompt": m, "eval_wall_s": round(wall, 1), "eval_cpu_s": round(cpu, 1), "winrate_s": winrate_s, "rows": [
            {"policy": r.policy, "baseline": r.slice.get("baseline"), "metric": r.metric, "value": round(r.value, 4),
             "ci_low": round(r.ci_low, 4), "ci_high": round(r.ci_high, 4), "n": r.n}
            for r in rows if r.eval == "winrate" and r.slice.get("judge") == "helpful" and r.metric in ("win_rate", "lc_win_rate")]}
        out["cases"].append(case)
        print(json.dumps(case), flush=True)
    name = "winrate_samples" + (f"_{args.tag}" if args.tag else "")
    print(C.write_result(Path(__file__).resolve().parent / "results", name,
                         {"bench": "winrate_samples", "config": vars(args), "result": out, "environment": env}))


if __name__ == "__main__":
    main()

"""Wall time, CPU time and peak RSS of the evaluation, per stage and per eval: the numbers behind README's table.

Cases (each a console script run in a subprocess, measured with ``os.wait4``, which reports the child's own
CPU time and peak resident set size):

- ``smoke``: ``harness-pipeline pipeline=smoke`` twice with one fresh harness cache: the first run trains
  and caches the judges (``cold``), the second finds them (``warm``). Target: ``warm`` ≤ 60 s.
- ``eval``: ``harness-eval`` of one policy or several (``--policy``, repeatable, ``path`` or ``name=path``; default:
  the embedded SmolLM2-135M-Instruct) at the evaluation sizes of ``--preset`` (default ``default``:
  :func:`preset_eval_overrides`), twice into new run dirs with one cache (``--cache``; give one that already
  holds the default judges to time "judges cached"): ``first`` and ``again`` (unchanged checkpoints: every
  generation, lm-eval task, judge reward and validation comes from the caches). ``--prime P`` evaluates policy P
  before them (``prime``), so ``first`` is a new policy on a machine that has evaluated one before. Targets:
  one policy ``first`` ≤ 3 min with judges cached, ``again`` ≤ 5 % of ``first``; the default pipeline's four
  (``--policy base=... sft=... ppo=... ppo_ptx=...``) ≤ 10 min.
- ``preset``: one ``harness-pipeline pipeline=<--preset>`` run (default ``demo``, what ``make demo`` runs), with a
  fresh cache unless ``--cache`` (``cold``: the judges train in it). Records per-stage wall time, CPU time and the
  peak-RSS high-water mark (``run.json`` ``metrics``) and the report's headline contrasts
  (:func:`reports.sections.headline.contrasts`) into ``bench/results/pipeline_<preset>[_<tag>].json``.
  Target (issue "make demo in 15 minutes"): ``demo`` cold ≤ 15 min.

Each run's per-stage times come from its own records: ``run.json`` ``metrics.timings_s`` (pipeline stages)
and ``results/evals.json`` (seconds per eval; whether judges and their validation came from the cache).
Results go to ``bench/results/eval_<case>[_<tag>].json``; ``python -m bench.eval_stage --table`` prints the
markdown table of every such file (bench/README.md). Timings swing with machine load: every result
records the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent


def preset_eval_overrides(preset: str = "default") -> list[str]:
    """The evaluation part of ``conf/pipeline/<preset>.yaml`` (``data.n_eval_prompts``, ``eval.*``, ``evals.*``) as
    harness-eval overrides (``key=value``, one per leaf), so ``--case eval`` times one policy at that preset's sizes.
    Raises ``FileNotFoundError`` for an unknown preset."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(REPO / "conf" / "pipeline" / f"{preset}.yaml")
    part = {"data": {"n_eval_prompts": cfg.data.n_eval_prompts}} if "n_eval_prompts" in cfg.get("data", {}) else {}
    part.update({k: OmegaConf.to_container(cfg[k]) for k in ("eval", "evals") if k in cfg})

    def leaves(node: Any, prefix: str) -> list[str]:
        if isinstance(node, dict):
            return [o for k, v in node.items() for o in leaves(v, f"{prefix}.{k}" if prefix else str(k))]
        if isinstance(node, list):
            return [f"{prefix}=[{','.join(str(v) for v in node)}]"]
        return [f"{prefix}={'null' if node is None else node}"]

    return leaves(part, "")


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; returns wall seconds, CPU seconds (user + system of the child and the descendants it
    waited for), peak RSS in MiB and the exit status. Raises ``RuntimeError`` with the output's tail on failure."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{log.read()[-4000:]}")
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 0), "command": " ".join(cmd)}


def run_records(run_dir: Path) -> dict[str, Any]:
    """Per-stage and per-eval seconds and cache use, from the run's own files."""
    from harness.io import read_json

    out: dict[str, Any] = {}
    if (run_dir / "run.json").is_file():
        m = read_json(run_dir / "run.json").get("metrics", {})
        out["stages_s"] = m.get("timings_s", {})
        out["stages_cpu_s"] = m.get("cpu_s", {})  # absent in runs before per-stage CPU time was recorded
        out["stages_peak_rss_mib"] = m.get("peak_rss_mib", {})  # the process's high-water mark at each stage's end
    evals_json = run_dir / "results" / "evals.json"
    if evals_json.is_file():
        ev = read_json(evals_json)
        out["evals_s"] = {name: e.get("seconds") for name, e in ev.get("evals", {}).items()}
        out["validation_s"] = ev.get("judge_validation", {}).get("seconds")  # absent before it was recorded
        out["judge_reward_cache"] = ev.get("judge_reward_cache")
        out["judges"] = {name: {k: j[k] for k in ("kind", "default_judge", "validation_cache") if k in j}
                         for name, j in ev.get("judges", {}).items()}
        out["generation_cache"] = ev.get("generation_cache")
        out["lm_eval_cache"] = ev.get("lm_eval_cache")
    return out


def environment() -> dict[str, Any]:
    from harness.runinfo import git_commit

    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git_commit": git_commit(),
            "cpus": os.cpu_count(), "loadavg": list(os.getloadavg()), "python": sys.version.split()[0]}


def case_smoke(work: Path, env: dict[str, str]) -> dict[str, Any]:
    runs = {}
    for label in ("cold", "warm"):
        run_dir = work / label
        res = measure([str(BIN / "harness-pipeline"), "pipeline=smoke", f"hydra.run.dir={run_dir}"], env)
        runs[label] = {**res, **run_records(run_dir)}
    return runs


def case_preset(work: Path, env: dict[str, str], preset: str, extra: list[str], cold: bool, run_dir: Path | None = None) -> dict[str, Any]:
    """One ``harness-pipeline pipeline=<preset>`` run, recorded as ``cold`` (a fresh cache: the judges train in it) or
    ``given cache``, into ``run_dir`` (default: a temporary folder, deleted after)."""
    run_dir = run_dir or work / "run"
    res = measure([str(BIN / "harness-pipeline"), f"pipeline={preset}", *extra, f"hydra.run.dir={run_dir}"], env)
    return {"cold" if cold else "given cache": {**res, **run_records(run_dir), "headline": headline(run_dir)}}


def headline(run_dir: Path) -> list[dict[str, Any]]:
    """The report's headline contrasts (reports/sections/headline.py) as records: contrast, label, value, interval, n, verdict."""
    from reports.run_report import load_run
    from reports.sections.headline import contrasts

    return [c.record() for c in contrasts(load_run(run_dir))]


def stage_table(results_dir: Path = RESULTS_DIR) -> str:
    """Markdown table of every ``pipeline_*.json``: one row per stage (wall, CPU, peak RSS)."""
    from harness.io import read_json

    lines = ["| result | stage | wall s | CPU s | peak RSS MiB (high-water mark) |", "|---|---|---|---|---|"]
    for f in sorted(results_dir.glob("pipeline_*.json")):
        for label, r in read_json(f)["runs"].items():
            for st, wall in r.get("stages_s", {}).items():
                lines.append(f"| {f.stem} ({label}) | {st} | {wall:.0f} | {r.get('stages_cpu_s', {}).get(st, float('nan')):.0f} | "
                             f"{r.get('stages_peak_rss_mib', {}).get(st, float('nan')):.0f} |")
            lines.append(f"| {f.stem} ({label}) | **whole run** (process) | **{r['wall_s']:.0f}** | {r['cpu_s']:.0f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def policy_overrides(policies: list[str]) -> list[str]:
    """``--policy`` values (``path`` or ``name=path``; a bare path is named ``policy``) as ``+policies.<name>=<path>``.
    Raises ``ValueError`` on a repeated name."""
    named = [p.split("=", 1) if "=" in p else ["policy", p] for p in policies]
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"--policy: repeated name in {names}")
    return [f"+policies.{n}={p}" for n, p in named]


def case_eval(work: Path, env: dict[str, str], policies: list[str], preset: str, extra: list[str],
              prime: str | None) -> dict[str, Any]:
    """``harness-eval`` of ``policies`` at ``preset``'s evaluation sizes: ``first`` then ``again`` (unchanged checkpoints),
    after a ``prime`` run of another policy when ``prime`` is given, which leaves in the cache everything no policy
    changes (judges' validations, the Likert calibration and threshold rewards, the toxicity scorer's fit, the file
    baselines' rewards), as a second policy evaluated on that machine finds it."""
    runs = {}
    labels = [("prime", [prime])] if prime else []
    for label, pols in [*labels, ("first", policies), ("again", policies)]:
        run_dir = work / label
        res = measure([str(BIN / "harness-eval"), *policy_overrides(pols), *preset_eval_overrides(preset), *extra,
                       f"hydra.run.dir={run_dir}"], env)
        runs[label] = {**res, **run_records(run_dir)}
    return runs


def table(results_dir: Path = RESULTS_DIR) -> str:
    """Markdown table of every ``eval_*.json``: one row per run."""
    from harness.io import read_json

    lines = ["| result | run | wall s | CPU s | peak RSS MiB | slowest stages / evals (s) | judges | load avg |",
             "|---|---|---|---|---|---|---|---|"]
    for f in sorted(results_dir.glob("eval_*.json")):
        res = read_json(f)
        for label, r in res["runs"].items():
            parts = {**{f"stage {k}": v for k, v in r.get("stages_s", {}).items()},
                     **{f"eval {k}": v for k, v in (r.get("evals_s") or {}).items()},
                     **({"judge validation": r["validation_s"]} if r.get("validation_s") is not None else {})}
            top = ", ".join(f"{k} {v:.0f}" for k, v in sorted(parts.items(), key=lambda kv: -(kv[1] or 0))[:4] if v is not None)
            judges = ", ".join(f"{n}: validation {j.get('validation_cache', '–')}" for n, j in r.get("judges", {}).items()
                               if j.get("kind") == "reward_model")
            load = f"{res['environment']['loadavg'][0]:.1f}–{res['environment_end']['loadavg'][0]:.1f}"
            lines.append(f"| {f.stem} | {label} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['peak_rss_mib']:.0f} | {top} | "
                         f"{judges or '–'} | {load} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--case", choices=["smoke", "eval", "preset"], help="what to time (see the module docstring)")
    p.add_argument("--preset", default=None, help="the pipeline preset (conf/pipeline/<name>.yaml): preset: the one to run "
                   "(default demo); eval: whose evaluation sizes to use (default default)")
    p.add_argument("--policy", action="append", default=None,
                   help="eval: a policy checkpoint, `path` or `name=path`, repeatable: e.g. base=... sft=... ppo=... ppo_ptx=... "
                        "for the default pipeline's eval stage (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--prime", default=None, help="eval: a different policy evaluated first (recorded as `prime`), so "
                   "`first` finds every policy-independent result cached")
    p.add_argument("--cache", default=None, help="harness cache dir (HARNESS_CACHE_DIR); default: a fresh temp dir")
    p.add_argument("--tag", default="", help="suffix of the result file's name, e.g. before / after")
    p.add_argument("--run-dir", default=None, help="preset: keep the run here (its report, checkpoints) instead of a temp dir")
    p.add_argument("--table", action="store_true", help="print the markdown table of bench/results/eval_*.json and exit")
    p.add_argument("extra", nargs="*", help="eval: more overrides for harness-eval")
    args = p.parse_args(argv)
    if args.table:
        print(table())
        print()
        print(stage_table())
        return
    if not args.case:
        p.error("--case is required unless --table")
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        work = Path(tmp)
        env = {**os.environ, "HARNESS_CACHE_DIR": args.cache or str(work / "cache")}
        start = environment()
        preset = args.preset or ("demo" if args.case == "preset" else "default")
        if args.case == "smoke":
            runs = case_smoke(work, env)
        elif args.case == "preset":
            runs = case_preset(work, env, preset, args.extra, cold=not args.cache, run_dir=Path(args.run_dir) if args.run_dir else None)
        else:
            from omegaconf import OmegaConf

            from harness.models import ModelConfig, smollm2_checkpoint

            # through OmegaConf: the field's default is an interpolation (${oc.env:HARNESS_CACHE_DIR,...}) that a bare
            # dataclass instance leaves unresolved
            policies = args.policy or [str(smollm2_checkpoint(OmegaConf.structured(ModelConfig).cache_dir))]
            runs = case_eval(work, env, policies, preset, args.extra, args.prime)
        bench = f"pipeline_{preset}" if args.case == "preset" else f"eval_{args.case}"
        out = {"bench": bench, "runs": runs, "environment": start, "environment_end": environment()}
    from harness.io import write_json

    name = bench + (f"_{args.tag}" if args.tag else "")
    path = write_json(RESULTS_DIR / f"{name}.json", out)
    print(stage_table() if args.case == "preset" else table())
    print(f"-> {path}")


if __name__ == "__main__":
    main()

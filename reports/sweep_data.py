"""Reads a Hydra multirun directory of ``harness-pipeline`` jobs into one table for the sweep report.

Layout (Hydra 1.3, any launcher): ``<sweep_dir>/multirun.yaml`` (the sweep's config: the grid in
``hydra.sweeper.params``, the command line in ``hydra.overrides.task``) and one folder per job
(``hydra.sweep.subdir``, the job number by default) with ``.hydra/overrides.yaml`` (the job's
overrides, its swept values included), then from the pipeline ``results/results.jsonl``,
``checkpoints/<rl run>/train_log.jsonl`` and, when it raised, ``error.json`` (:mod:`harness.failures`).

A job is *finished* (results, no error.json), *failed* (error.json) or *incomplete* (neither:
still running, killed, or timed out); a grid point with no job folder at all is *missing*.
Bad input raises ``ValueError`` naming the file (and record / field).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.failures import ERROR_FILE, read_failure
from harness.io import read_jsonl
from harness.stats import SeedSpread, seed_spread

FINISHED, FAILED, INCOMPLETE, MISSING = "finished", "failed", "incomplete", "missing"
WIN_BASELINE = "text-davinci-003"
WIN_JUDGE = "helpful"
REFERENCE_POLICIES = ("base", "sft")
"""Policies every job evaluates beside its RL policy; the alignment tax is measured against base."""
SEED = "seed"
"""A swept parameter that replicates rather than varies: the report summarises each metric over its values."""
TAX = "alignment_tax"
"""The eval whose ``{task}`` rows and ``*_delta`` rows against ``base`` are the per-task alignment tax."""


@dataclass
class Job:
    """One job folder. ``values``: parameter -> parsed value, ``texts``: parameter -> value as written."""

    name: str
    path: Path
    values: dict[str, Any]
    texts: dict[str, str]
    status: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # the job's own rows, each slice key a field (no paper rows)
    error: dict[str, Any] | None = None
    train_logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # RL run -> per-step log


@dataclass
class Sweep:
    """A loaded sweep: ``params`` are the swept parameters in grid order; ``missing`` the grid points
    (parameter -> value text) with no job folder."""

    path: Path
    params: list[str]
    jobs: list[Job]
    missing: list[dict[str, str]]
    command: list[str]
    upstream: str | None


def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _key(o) -> str:
    return o.key_or_group if o.package is None else f"{o.key_or_group}@{o.package}"


def parse_overrides(lines: Any, source: Path) -> list:
    """Hydra ``Override`` objects of ``lines`` (a list of ``key=value`` strings).
    Raises ``ValueError`` naming ``source`` on anything else."""
    from hydra.errors import HydraException

    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise ValueError(f"{source}: expected a YAML list of 'key=value' override strings")
    try:
        return _parser().parse_overrides(lines)
    except HydraException as e:
        raise ValueError(f"{source}: cannot parse the overrides: {e}") from e


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: invalid YAML: {e}") from e


def _grid(multirun: dict[str, Any], source: Path) -> tuple[dict[str, list[str] | None], list[str]]:
    """Swept parameter -> its values as written (None when not enumerable, e.g. an interval), in the
    order Hydra's BasicSweeper builds the grid (``hydra.sweeper.params``, then the command line,
    a later entry replacing an earlier one), and the command-line overrides."""
    hydra = multirun.get("hydra") or {}
    params = (hydra.get("sweeper") or {}).get("params") or {}
    command = list((hydra.get("overrides") or {}).get("task") or [])
    if not isinstance(params, dict):
        raise ValueError(f"{source}: field 'hydra.sweeper.params' must be a mapping")
    grid: dict[str, list[str] | None] = {}
    for o in parse_overrides([f"{k}={v}" for k, v in params.items()] + command, source):
        key = _key(o)
        if o.is_sweep_override():
            grid[key] = list(o.sweep_string_iterator()) if o.is_discrete_sweep() and not o.value_type.name.startswith("GLOB") else None
        else:
            grid.pop(key, None)
    return grid, command


def _results(path: Path) -> list[dict[str, Any]]:
    """The job's own rows of ``results.jsonl`` (:func:`harness.results.read_results`: older shapes upgraded,
    the paper's reference rows apart) as dicts with every slice key as a field. Raises ``ValueError``
    naming file, record and field on a malformed row."""
    from harness.results import read_results

    return [{**{k: v for k, v in vars(r).items() if k != "slice"}, **r.slice} for r in read_results(path).rows]


def _train_logs(job_dir: Path) -> dict[str, list[dict[str, Any]]]:
    logs = {}
    for path in sorted((job_dir / "checkpoints").glob("*/train_log.jsonl")):
        rows = read_jsonl(path)
        for i, r in enumerate(rows, 1):
            if not isinstance(r, dict) or isinstance(r.get("step"), bool) or not isinstance(r.get("step"), int):
                raise ValueError(f"{path}: record {i}: field 'step' must be an integer")
        logs[path.parent.name] = rows
    return logs


def load_job(job_dir: Path) -> Job:
    """One job folder (must hold ``.hydra/overrides.yaml``); every parameter of its overrides is kept."""
    source = job_dir / ".hydra" / "overrides.yaml"
    values, texts = {}, {}
    for o in parse_overrides(_yaml(source), source):
        values[_key(o)] = o.value()
        texts[_key(o)] = o.get_value_element_as_str()
    results = job_dir / "results" / "results.jsonl"
    if (job_dir / ERROR_FILE).is_file():
        return Job(job_dir.name, job_dir, values, texts, FAILED, error=read_failure(job_dir / ERROR_FILE))
    if results.is_file():
        return Job(job_dir.name, job_dir, values, texts, FINISHED, rows=_results(results), train_logs=_train_logs(job_dir))
    return Job(job_dir.name, job_dir, values, texts, INCOMPLETE)


def _order(name: str) -> tuple:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Every job of the multirun directory ``sweep_dir`` and the swept parameters.

    Swept parameters: the grid's keys (``multirun.yaml``), then any other key whose value differs
    between jobs (e.g. jobs added by hand). Raises ``ValueError`` when ``sweep_dir`` has no
    ``multirun.yaml`` or any file is malformed.
    """
    root = Path(sweep_dir)
    source = root / "multirun.yaml"
    if not source.is_file():
        raise ValueError(f"{root}: no multirun.yaml, so not a Hydra multirun directory (harness-pipeline ... --multirun writes one)")
    multirun = _yaml(source)
    if not isinstance(multirun, dict):
        raise ValueError(f"{source}: expected a mapping")
    grid, command = _grid(multirun, source)
    jobs = sorted((load_job(d) for d in root.iterdir() if (d / ".hydra" / "overrides.yaml").is_file()), key=lambda j: _order(j.name))
    params = list(grid)
    for job in jobs:
        for key in job.texts:
            if key not in params and len({j.texts.get(key) for j in jobs}) > 1:
                params.append(key)
    missing = []
    if grid and all(v is not None for v in grid.values()):
        seen = {tuple(j.texts.get(k) for k in grid) for j in jobs}
        missing = [dict(zip(grid, point)) for point in itertools.product(*grid.values()) if point not in seen]
    upstream = multirun.get("upstream")
    return Sweep(root, params, jobs, missing, command, upstream if isinstance(upstream, str) else None)


def _flat(r: dict[str, Any]) -> dict[str, Any]:
    """A row dict with its slice keys as fields (rows read by :func:`_results` are already flat)."""
    return {**{k: v for k, v in r.items() if k != "slice"}, **(r.get("slice") or {})} if "slice" in r else r


def _row(rows: list[dict], **match: Any) -> dict[str, Any] | None:
    hits = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return hits[0] if hits else None


def _is_delta(r: dict[str, Any]) -> bool:
    """Whether a row is a declared paired delta (:class:`harness.evals.base.Metric` ``delta_of``)."""
    from harness import registry

    return registry.get(r["eval"]).metric(r["metric"]).delta_of is not None


def tax_tasks(rows: list[dict[str, Any]]) -> list[str]:
    """Alignment-tax tasks (the ``task`` of alignment_tax delta rows against ``base``), first-seen order."""
    out: list[str] = []
    for r in map(_flat, rows):
        if r["eval"] == TAX and r.get("baseline") == "base" and _is_delta(r) and r.get("task") not in out:
            out.append(r["task"])
    return out


def policy_metrics(rows: list[dict[str, Any]], policy: str, logs: dict[str, list[dict]] | None = None) -> dict[str, Any]:
    """One policy's numbers in one job.

    ``win_rate`` (+ ``win_rate_ci_low``/``_ci_high``/``_n``): against :data:`WIN_BASELINE` by the
    :data:`WIN_JUDGE` judge; ``win_rate_vs_sft`` and ``lc_win_rate_vs_sft`` (+ the same suffixes): the win rate and
    the length-controlled win rate against SFT by that judge (the run report's contrast b when the helpful judge is
    the gold one). ``delta:<task>``: the paired accuracy change vs base per alignment-tax
    task (its delta row with the fewest shots); ``tax_mean_delta``: their
    mean over tasks (None without any). ``kl_final`` / ``gold_reward_final``: the last PPO step's
    ``kl`` and ``gold_reward_mean`` from ``logs[policy]``. Missing numbers are None.
    """
    rows = [_flat(r) for r in rows]
    out: dict[str, Any] = {"policy": policy}
    for key, metric, baseline in (("win_rate", "win_rate", WIN_BASELINE), ("win_rate_vs_sft", "win_rate", "sft"),
                                  ("lc_win_rate_vs_sft", "lc_win_rate", "sft")):
        win = _row(rows, policy=policy, eval="winrate", metric=metric, baseline=baseline, judge=WIN_JUDGE)
        out.update({key: win and win["value"], f"{key}_ci_low": win and win["ci_low"], f"{key}_ci_high": win and win["ci_high"],
                    f"{key}_n": win and win["n"]})
    deltas = []
    for task in tax_tasks(rows):
        hits = [r for r in rows if r["policy"] == policy and r["eval"] == TAX and r.get("task") == task
                and r.get("baseline") == "base" and _is_delta(r)]
        value = min(hits, key=lambda r: int(r.get("shots") or 0))["value"] if hits else (0.0 if policy == "base" else None)
        out[f"delta:{task}"] = value
        if value is not None:
            deltas.append(value)
    out["tax_mean_delta"] = sum(deltas) / len(deltas) if deltas else None
    last = (logs or {}).get(policy) or []
    last = last[-1] if last else {}
    for key, name in (("kl", "kl_final"), ("gold_reward_mean", "gold_reward_final")):
        v = last.get(key)
        out[name] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None
    return out


def rl_policies(job: Job) -> list[str]:
    """The job's RL policies: those with a PPO train log or a win rate, other than base and sft."""
    evals = {"winrate", TAX}
    names = list(job.train_logs) + [r["policy"] for r in job.rows if r["eval"] in evals]
    return [p for p in dict.fromkeys(names) if p not in REFERENCE_POLICIES]


def sweep_frame(sweep: Sweep):
    """One row per (finished job, RL policy) with :func:`policy_metrics`, and one row per failed or
    incomplete job (``policy`` None, metrics NaN); columns ``job``, ``status``, the swept
    parameters (parsed values), ``policy`` and the metrics. A pandas DataFrame."""
    import pandas as pd

    records = []
    for job in sweep.jobs:
        head = {"job": job.name, "status": job.status, **{p: job.values.get(p) for p in sweep.params}}
        policies = rl_policies(job) if job.status == FINISHED else []
        for policy in policies:
            records.append({**head, **policy_metrics(job.rows, policy, job.train_logs)})
        if not policies:
            records.append({**head, "policy": None})
    return pd.DataFrame(records)


def reference_metrics(sweep: Sweep) -> dict[str, dict[str, Any]]:
    """:func:`policy_metrics` of base and sft from the first finished job that evaluated them (with a
    shared upstream they are the same models in every job)."""
    out: dict[str, dict[str, Any]] = {}
    for job in sweep.jobs:
        if job.status != FINISHED:
            continue
        for policy in REFERENCE_POLICIES:
            if policy not in out and any(r["policy"] == policy for r in job.rows):
                out[policy] = {**policy_metrics(job.rows, policy), "job": job.name}
    return out


SEED_METRICS = (("win_rate", f"win rate vs {WIN_BASELINE} ({WIN_JUDGE} judge)"), ("win_rate_vs_sft", f"win rate vs SFT ({WIN_JUDGE} judge)"),
                ("lc_win_rate_vs_sft", f"length-controlled win rate vs SFT ({WIN_JUDGE} judge)"))
"""Metrics summarised over seeds: (column, label); each is a fraction with a 95 % interval, against chance (0.5)."""


@dataclass
class SeedSummary:
    """One metric of one RL policy at one point of the other swept parameters, over the jobs' seeds.

    ``point``: the other parameters' values; ``seeds``/``values``/``ci``: each finished seed's estimate and 95 %
    interval, in seed order; ``spread``: :func:`harness.stats.seed_spread` of them (None with fewer than 2 seeds
    with an interval); ``resolved``: how many seeds' own intervals lie above 0.5; ``no_interval``: seeds with a value
    but no interval, left out of the spread (and named in the verdict)."""

    policy: str
    point: dict[str, Any]
    metric: str
    label: str
    seeds: list[Any]
    values: list[float]
    ci: list[tuple[float, float]]
    spread: SeedSpread | None
    resolved: int
    no_interval: list[Any] = field(default_factory=list)

    def verdict(self) -> str:
        """Whether the mean over seeds is above 0.5 by its t interval, in words (with the seed spread's share)."""
        s = self.spread
        left = f"; left out, no interval: seed {', '.join(map(str, self.no_interval))}" if self.no_interval else ""
        if s is None:
            return f"fewer than 2 seeds with an interval ({len(self.seeds)}): no summary over seeds{left}"
        head = (f"above 0.5 over {s.n} seeds: t interval [{s.t_low:.3f}, {s.t_high:.3f}]" if s.t_low > 0.5 else
                f"not resolved over {s.n} seeds: mean {s.mean:.3f}, t interval [{s.t_low:.3f}, {s.t_high:.3f}] (one-sided p {s.p_above:.3g})")
        return (f"{head}; {self.resolved} of {s.n} seeds resolved on their own; SD of the seeds' estimates {s.sd:.3f}, "
                f"of which the eval's own error {s.eval_se:.3f} and the seeds' {s.between_sd:.3f}{left}")


def seed_summaries(sweep: Sweep, df) -> list[SeedSummary]:
    """:class:`SeedSummary` per RL policy, point of the other swept parameters and :data:`SEED_METRICS` column that
    has values, when :data:`SEED` is swept (``[]`` otherwise). ``df``: :func:`sweep_frame` of ``sweep``. Only finished
    jobs count; a seed whose metric has no interval is listed but left out of the spread."""
    if SEED not in sweep.params or not len(df):
        return []
    others = [p for p in sweep.params if p != SEED]
    done = df[(df["status"] == FINISHED) & df["policy"].notna()]
    out: list[SeedSummary] = []
    for col, label in SEED_METRICS:
        if col not in done.columns:
            continue
        for key, sub in done.groupby(["policy", *others], dropna=False, sort=False):
            key = key if isinstance(key, tuple) else (key,)
            recs = sorted((r for r in sub.to_dict("records") if r.get(col) is not None and not _nan(r[col])),
                          key=lambda r: (r[SEED] is None, r[SEED]))
            if not recs:
                continue
            with_ci = [r for r in recs if not _nan(r.get(f"{col}_ci_low")) and not _nan(r.get(f"{col}_ci_high"))]
            ci = [(float(r[f"{col}_ci_low"]), float(r[f"{col}_ci_high"])) for r in with_ci]
            spread = seed_spread([float(r[col]) for r in with_ci], [(hi - lo) / (2 * 1.959964) for lo, hi in ci]) if len(with_ci) > 1 else None
            out.append(SeedSummary(str(key[0]), dict(zip(others, key[1:])), col, label, [r[SEED] for r in with_ci],
                                   [float(r[col]) for r in with_ci], ci, spread, sum(lo > 0.5 for lo, _ in ci),
                                   [r[SEED] for r in recs if r not in with_ci]))
    return out


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))

"""Runs the evaluation suite: the evals of ``eval.run``, then the validation of every judge they used.

Each eval is one registered :class:`harness.evals.base.EvalDef` (:mod:`harness.registry`) whose
spec is ``evals.<name>`` (``conf/evals/<name>.yaml``). For each, the runner calls its ``run(ctx, spec)``,
checks every row against the eval's metric declarations, and writes its per-item records. Then the
judge panel validates each judge the evals used (:meth:`harness.judging.panel.JudgePanel.validation_rows`).

Written under the run directory: ``generations/<policy>/<tag>.jsonl`` (what each policy said, by the
context), ``results/<eval>_items.jsonl`` (per-item records, so comparisons can be paired) and
``results/evals.json`` (per eval: version, spec, what it skipped and why, its info; per judge: what it
is and how it was validated; the generation cache's counts; ``placement``: the device and dtype every
model ran on). Aggregate rows are returned, stamped
with run id, config hash and eval version, for :func:`harness.results.write_results`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from harness import registry
from harness.data import recording_reads
from harness.declarations import check_rows, stamp
from harness.errors import DataError
from harness.evals.base import EvalOutput
from harness.evals.context import EvalContext, _plain
from harness.evals.policies import describe
from harness.io import write_json, write_jsonl
from harness.records import ResultRow

log = logging.getLogger(__name__)


def resolve_evals(ctx: EvalContext, names: list[str]) -> dict[str, Any]:
    """``{name: (EvalDef, spec)}`` for ``names`` in order (:func:`harness.registry.check_eval_names` first)."""
    registry.check_eval_names(names, ctx.evals_cfg)
    return {name: (registry.get(name), ctx.evals_cfg[name]) for name in names}


def _refuse_unmeasurable(ctx: EvalContext, names: list[str], evals: dict[str, Any]) -> None:
    """Raise :class:`~harness.errors.DataError` before any eval runs for a policy that every eval of ``names`` says,
    from its spec, it will not measure (:attr:`harness.declarations.EvalDef.unmeasured`), rather than after the run."""
    if not names:
        return
    never = set(ctx.policies)
    reasons: dict[str, list[str]] = {}
    for defn, spec in evals.values():
        left = defn.unmeasured(ctx, spec) if defn.unmeasured is not None else {}
        never &= set(left)
        for p, why in left.items():
            reasons.setdefault(p, []).append(why)
    if never:
        p = sorted(never)[0]
        raise DataError(f"policies.{p}: no eval of {names} can measure it ({'; '.join(reasons[p])})"
                        + (f" (and {len(never) - 1} more policies)" if len(never) > 1 else "") + "; nothing was run")


def run_suite(ctx: EvalContext, names: list[str] | None = None) -> list[ResultRow]:
    """Run the evals ``names`` (default ``eval.run``) in order, then validate the judges they used; returns
    every row (the evals', then ``judge_validation``'s).

    Writes ``results/<eval>_items.jsonl`` after each eval and ``results/evals.json`` at the end,
    atomically; ``evals.json`` records each eval's version, spec and ``data_files`` (every data file it
    read, with its sha256: :func:`harness.data.recording_reads`), which the regression gate compares.
    A policy an eval skipped (e.g. an outputs file with none of its prompts) is logged as a warning with
    the reason and recorded, as is every warning of the context (``warnings``), among them an outputs file's
    records for an eval no eval of the run read. While an eval runs, ``ctx.current_eval`` is its name (the
    ``eval`` an outputs file's records are matched under). Raises ``ValueError`` for
    an unknown eval before any runs and for a row that breaks its eval's declarations, and
    :class:`~harness.errors.DataError` for a policy that no eval measured: before any eval runs when every eval
    knows it from its spec (:func:`_refuse_unmeasurable`), otherwise after writing ``evals.json``.
    """
    names = list(names if names is not None else ctx.eval_cfg.run)
    evals = resolve_evals(ctx, names)
    _refuse_unmeasurable(ctx, names, evals)
    rows: list[ResultRow] = []
    info: dict[str, Any] = {"policies": {n: describe(s) for n, s in ctx.policies.items()}, "placement": ctx.placement.describe(),
                            "evals": {}}
    versions: dict[str, str] = {}
    for name, (defn, spec) in evals.items():
        t0 = time.perf_counter()
        log.info("eval %s (version %s)", name, spec.version)
        ctx.current_eval = name  # an outputs file's records are matched under the eval that asks
        try:
            with recording_reads(ctx.data_dir) as data_files:
                out: EvalOutput = defn.run(ctx, spec)
        finally:
            ctx.current_eval = None
        check_rows(defn, out.rows)
        write_jsonl(ctx.run_dir / "results" / f"{name}_items.jsonl", out.items)
        rows += out.rows
        versions[name] = str(spec.version)
        for s in out.info.get("skipped") or []:
            log.warning("eval %s skipped %s", name, ", ".join(f"{k} {v!r}" for k, v in s.items()))
        info["evals"][name] = {"version": str(spec.version), "spec": _plain(spec), **out.info,
                               "data_files": dict(sorted(data_files.items())), "seconds": round(time.perf_counter() - t0, 1)}
        log.info("eval %s done in %.0f s: %d rows, %d items", name, time.perf_counter() - t0, len(out.rows), len(out.items))
    t0 = time.perf_counter()
    with recording_reads(ctx.data_dir) as data_files:
        validation, judges = ctx.judges.validation_rows(ctx.resamples, ctx.seed)
    validation_s = round(time.perf_counter() - t0, 1)
    check_rows(registry.get("judge_validation"), validation)
    versions["judge_validation"] = registry.get("judge_validation").version
    rows += validation
    info["judges"] = judges
    info["judge_validation"] = {"version": registry.get("judge_validation").version, "data_files": dict(sorted(data_files.items())),
                                "seconds": validation_s}
    info["judge_reward_cache"] = dict(ctx.judges.reward_cache)
    info["generation_cache"] = {"dir": str(ctx.cache.root), "hits": ctx.cache.hits, "misses": ctx.cache.misses,
                                "generated": ctx.generated}
    info["lm_eval_cache"] = {"dir": str(ctx.lm_eval_cache.root), "hits": ctx.lm_eval_cache.hits,
                             "misses": ctx.lm_eval_cache.misses}
    for message in ctx.unread_evals() + ctx.judges.truncation_warnings():
        ctx.warn(message)
    measured = {r.policy for r in rows}
    unmeasured = [n for n in ctx.policies if n not in measured] if names else []  # eval.run=[]: nothing was asked
    for n in unmeasured:
        reasons = [f"{e}: {s['reason']}" for e, i in info["evals"].items() for s in i.get("skipped") or [] if s.get("policy") == n]
        ctx.warn(f"policies.{n}: no eval of {names} measured it ({'; '.join(reasons) or 'no rows'})")
    info["warnings"] = list(ctx.warnings)
    write_json(ctx.run_dir / "results" / "evals.json", info)
    if unmeasured:
        raise DataError(f"{ctx.warnings[-1]}" + (f" (and {len(unmeasured) - 1} more policies)" if len(unmeasured) > 1 else "")
                        + ": evaluate it with an eval that can (an outputs file: winrate, likert, truthfulqa generation, toxicity, "
                        "hallucination, the alignment tax's text-scored tasks, given outputs for their items), or leave it out")
    log.info("generation cache: %d hits, %d misses (%s)", ctx.cache.hits, ctx.cache.misses, ctx.cache.root)
    return stamp(rows, ctx.run_id, ctx.config_hash, versions)

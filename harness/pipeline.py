"""``harness-pipeline``: base -> SFT -> RM (+ held-out judge RM) -> PPO, PPO-ptx -> eval -> report, in one run dir.

Layout (DESIGN.md section 3): ``checkpoints/<stage>/`` (Hugging Face folders with ``run.json``),
``generations/<policy>/``, ``results/results.jsonl`` and per-item files, ``run.json``, ``report.html``.
With ``resume=true`` a stage whose checkpoint is complete (has ``run.json``) is not run again.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness import stages
from harness.io import read_json, write_jsonl
from harness.records import ResultRow
from harness.runinfo import config_hash, write_run_info

log = logging.getLogger(__name__)


def _done(path: Path, resume: bool) -> bool:
    return resume and (path / "run.json").is_file()


def run_pipeline(cfg: DictConfig) -> Path:
    """Run every stage of ``cfg`` (a composed ``conf/pipeline.yaml``); returns the report path."""
    run_dir = Path(cfg.out_dir)
    ck = run_dir / "checkpoints"
    plain = OmegaConf.to_container(cfg, resolve=True)
    chash = config_hash(plain)
    timings: dict[str, float] = {}
    metrics: dict[str, dict] = {}

    def timed(name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - t0, 1)
        log.info("stage %s done in %.0f s", name, timings[name])
        stages.free_memory()
        return out

    base = timed("base", stages.base_model, cfg.model, cfg.data, ck / "base", cfg.seed)

    sft = ck / "sft"
    if not _done(sft, cfg.resume):
        metrics["sft"] = timed("sft", stages.run_sft, cfg.model, cfg.data, cfg.sft, base, sft, cfg.seed,
                                tracking=cfg.tracking)[1]
    for name, init, rm_cfg in (("rm", str(sft), cfg.rm), ("judge", base, cfg.judge)):
        # the judge starts from the base model and sees only judge-split prompts: it never shares
        # data or weights with the RM the policies optimise
        if not _done(ck / name, cfg.resume):
            metrics[name] = timed(name, stages.run_rm, cfg.model, cfg.data, rm_cfg, init, name, ck / name, cfg.seed,
                                  tracking=cfg.tracking)[1]
        else:
            metrics[name] = read_json(ck / name / "run.json")["metrics"]

    for name, gamma in (("ppo", 0.0), ("ppo_ptx", cfg.ptx_gamma)):
        if not _done(ck / name, cfg.resume):
            ppo_cfg = copy.deepcopy(cfg.ppo)
            ppo_cfg.gamma = gamma
            timed(name, stages.run_ppo, cfg.model, cfg.data, ppo_cfg, str(sft), str(ck / "rm"), ck / name, cfg.seed, stage=name,
                  gold_reward=str(ck / "judge"), tracking=cfg.tracking)

    policies = {"base": base, "sft": str(sft), "ppo": str(ck / "ppo"), "ppo_ptx": str(ck / "ppo_ptx")}
    rows: list[ResultRow] = [stages.rm_accuracy_row(n, metrics[n], cfg.run_id, cfg.seed, chash) for n in ("rm", "judge")]
    rows += timed("eval", stages.run_eval, cfg.model, cfg.data, cfg.eval, policies, str(ck / "judge"), run_dir,
                  cfg.run_id, cfg.seed, chash)
    write_jsonl(run_dir / "results" / "results.jsonl", rows)

    fingerprints = {}
    for stage_dir in sorted(ck.iterdir()):
        if (stage_dir / "run.json").is_file():
            fingerprints.update(read_json(stage_dir / "run.json").get("data_fingerprints", {}))
    write_run_info(run_dir, "pipeline", plain, fingerprints, {"timings_s": timings}, run_id=cfg.run_id, policies=policies)

    from reports.run_report import build_run_report

    report = build_run_report(run_dir)
    return report

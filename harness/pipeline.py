"""``harness-pipeline``: base -> SFT -> RM (+ held-out judge RM) -> PPO, PPO-ptx -> eval -> report, in one run dir.

Layout (DESIGN.md section 3): ``checkpoints/<stage>/`` (Hugging Face folders with ``run.json``),
``generations/<policy>/``, ``results/results.jsonl`` and per-item files, ``run.json``, ``report.html``.
With ``resume=true`` a stage whose checkpoint is complete (has ``run.json``) is not run again and
an interrupted stage continues from its newest training-state checkpoint (``<stage>.save_steps``).

With ``sft.select_by=rm_score`` (the default, as in the paper) the SFT stage needs a reward
model to score its checkpoint candidates, so the proxy RM is trained first, from the base model,
and then selects the SFT checkpoint and rewards PPO. (The paper initialises its RM from an SFT
model; with ``sft.select_by=loss`` or ``last`` the pipeline does that: the RM starts from the SFT
checkpoint.) The judge always starts from the base model.
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

    def reward_model(name: str, init: str, rm_cfg) -> None:
        if not _done(ck / name, cfg.resume):
            metrics[name] = timed(name, stages.run_rm, cfg.model, cfg.data, rm_cfg, init, name, ck / name, cfg.seed, resume=cfg.resume)[1]
        else:
            metrics[name] = read_json(ck / name / "run.json")["metrics"]

    select_by_rm = cfg.sft.select_by == "rm_score"
    if select_by_rm:
        reward_model("rm", base, cfg.rm)
    if not _done(sft, cfg.resume):
        metrics["sft"] = timed("sft", stages.run_sft, cfg.model, cfg.data, cfg.sft, base, sft, cfg.seed,
                               selection_rm=str(ck / "rm") if select_by_rm else None, resume=cfg.resume)[1]
    if not select_by_rm:
        reward_model("rm", str(sft), cfg.rm)
    # the judge starts from the base model and sees only judge-split prompts: it never shares
    # data or weights with the RM the policies optimise
    reward_model("judge", base, cfg.judge)

    for name, gamma in (("ppo", 0.0), ("ppo_ptx", cfg.ptx_gamma)):
        if not _done(ck / name, cfg.resume):
            ppo_cfg = copy.deepcopy(cfg.ppo)
            ppo_cfg.gamma = gamma
            timed(name, stages.run_ppo, cfg.model, cfg.data, ppo_cfg, str(sft), str(ck / "rm"), ck / name, cfg.seed, stage=name,
                  gold_reward=str(ck / "judge"), resume=cfg.resume)

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

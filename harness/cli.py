"""Console scripts: thin Hydra apps over ``conf/`` (one primary config each). All work is in
:mod:`harness.stages` and :mod:`harness.pipeline`."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from harness.config import register_configs

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("harness")
register_configs()


def _init_from(cfg: DictConfig, out: Path) -> str:
    from harness import stages

    return cfg.init_from or stages.base_model(cfg.model, cfg.data, out / "checkpoints" / "base", cfg.seed)


@hydra.main(config_path=CONF_DIR, config_name="sft", version_base="1.3")
def sft_main(cfg: DictConfig) -> None:
    """``harness-sft``: fine-tune ``init_from`` (default: the base model) on demonstrations."""
    from harness import stages

    out = Path(cfg.out_dir)
    path, _ = stages.run_sft(cfg.model, cfg.data, cfg.sft, _init_from(cfg, out), out / "checkpoints" / "sft", cfg.seed,
                              tracking=cfg.tracking)
    print(path)


@hydra.main(config_path=CONF_DIR, config_name="rm", version_base="1.3")
def rm_main(cfg: DictConfig) -> None:
    """``harness-rm``: train a reward model (``split=rm``) or a held-out judge (``split=judge``)."""
    from harness import stages

    out = Path(cfg.out_dir)
    path, m = stages.run_rm(cfg.model, cfg.data, cfg.rm, cfg.init_from, cfg.split, out / "checkpoints" / cfg.split, cfg.seed,
                             tracking=cfg.tracking)
    print(f"{path}  (pairwise accuracy {m['val_accuracy']:.3f} on {m['val_pairs']} held-out pairs)")


@hydra.main(config_path=CONF_DIR, config_name="ppo", version_base="1.3")
def ppo_main(cfg: DictConfig) -> None:
    """``harness-ppo``: PPO (``ppo.gamma=0``) or PPO-ptx (``ppo.gamma>0``)."""
    from harness import stages

    stage = "ppo_ptx" if cfg.ppo.gamma > 0 else "ppo"
    path, _ = stages.run_ppo(cfg.model, cfg.data, cfg.ppo, cfg.policy, cfg.reward_model, Path(cfg.out_dir) / "checkpoints" / stage,
                             cfg.seed, stage=stage, gold_reward=cfg.gold_reward, tracking=cfg.tracking)
    print(path)


@hydra.main(config_path=CONF_DIR, config_name="eval", version_base="1.3")
def eval_main(cfg: DictConfig) -> None:
    """``harness-eval``: win rate vs the baseline file and HellaSwag for ``policies`` (name: path)."""
    from harness import stages
    from harness.io import write_jsonl

    if not cfg.policies:
        raise SystemExit("harness-eval: give at least one policy, e.g. '+policies.sft=path/to/checkpoint'")
    out = Path(cfg.out_dir)
    rows = stages.run_eval(cfg.model, cfg.data, cfg.eval, dict(cfg.policies), cfg.judge, out, cfg.run_id or out.name, cfg.seed)
    write_jsonl(out / "results" / "results.jsonl", rows)
    for r in rows:
        print(f"{r.policy:>10} {r.eval:>16} {r.metric:>24} {r.value:.3f}")


@hydra.main(config_path=CONF_DIR, config_name="report", version_base="1.3")
def report_main(cfg: DictConfig) -> None:
    """``harness-report run_dir=...``: (re)build ``report.html`` for a run directory."""
    from reports.run_report import build_run_report

    print(build_run_report(cfg.run_dir))


@hydra.main(config_path=CONF_DIR, config_name="pipeline", version_base="1.3")
def pipeline_main(cfg: DictConfig) -> None:
    """``harness-pipeline``: every stage, evaluation and the report in one run directory."""
    from harness.pipeline import run_pipeline

    report = run_pipeline(cfg)
    print(f"report: {report}")

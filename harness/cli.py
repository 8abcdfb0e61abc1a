"""Console scripts: thin Hydra apps over ``conf/`` (one primary config each). All work is in
:mod:`harness.stages` and :mod:`harness.pipeline`.

Without the installed scripts, ``python -m harness.cli <app> [overrides]`` runs the same apps
(``<app>`` is sft, rm, label, ppo, eval, report, pipeline or regress).

Each ``<app>_main`` console script is :func:`harness.entry.console` around the Hydra app
``_<app>_app``: a user error is one line on stderr and exit code 2. Each app body runs inside
:func:`harness.entry.run_guard` (validation, run-directory lock, resume check).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from harness.config import register_configs
from harness.entry import console, run_guard, task
from harness.validation import validate_config

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("harness")
register_configs()


def _init_from(cfg: DictConfig, out: Path) -> str:
    from accelerate import PartialState

    from harness import stages

    if cfg.init_from:
        return cfg.init_from
    with PartialState().main_process_first():  # under accelerate launch, one process builds or converts the base model
        return stages.base_model(cfg.model, cfg.data, out / "checkpoints" / "base", cfg.seed)


@hydra.main(config_path=CONF_DIR, config_name="sft", version_base="1.3")
@task
def _sft_app(cfg: DictConfig) -> None:
    """``harness-sft``: fine-tune ``init_from`` (default: the base model) on demonstrations."""
    from harness import stages
    from harness.devices import for_training, resolve

    out = Path(cfg.out_dir)
    with run_guard(cfg):
        for_training(resolve(cfg.device, cfg.dtype).device)
        path, _ = stages.run_sft(cfg.model, cfg.data, cfg.sft, _init_from(cfg, out), out / "checkpoints" / "sft", cfg.seed,
                                 selection_rm=cfg.selection_rm, resume=cfg.resume, tracking=cfg.tracking)
    print(path)


@hydra.main(config_path=CONF_DIR, config_name="rm", version_base="1.3")
@task
def _rm_app(cfg: DictConfig) -> None:
    """``harness-rm``: train a reward model (``split=rm``) or a held-out judge (``split=judge``)."""
    from harness import stages
    from harness.devices import for_training, resolve

    out = Path(cfg.out_dir)
    with run_guard(cfg):
        for_training(resolve(cfg.device, cfg.dtype).device)
        path, m = stages.run_rm(cfg.model, cfg.data, cfg.rm, cfg.init_from, cfg.split, out / "checkpoints" / cfg.split, cfg.seed,
                                resume=cfg.resume, comparisons_file=cfg.comparisons, tracking=cfg.tracking)
    print(f"{path}  (pairwise accuracy {m['val_accuracy']:.3f} on {m['val_pairs']} held-out pairs)")


@hydra.main(config_path=CONF_DIR, config_name="label", version_base="1.3")
@task
def _label_app(cfg: DictConfig) -> None:
    """``harness-label``: the simulated labeler; a judge ranks K samples of ``policy`` per prompt."""
    from harness import stages
    from harness.devices import resolve

    with run_guard(cfg):
        path, m = stages.run_label(cfg.model, cfg.data, cfg.label, cfg.judge, cfg.policy, Path(cfg.out_dir) / "label", cfg.seed,
                                   placement=resolve(cfg.device, cfg.dtype))
    print(f"{path}  ({m['n_comparisons']} comparisons, K {m['k_distribution']}, agreement with the noise-free judge "
          f"{m['measured_agreement']:.3f} on {m['agreement_pairs']} pairs)")


@hydra.main(config_path=CONF_DIR, config_name="ppo", version_base="1.3")
@task
def _ppo_app(cfg: DictConfig) -> None:
    """``harness-ppo``: PPO (``ppo.ptx_coef=0``) or PPO-ptx (``ppo.ptx_coef>0``, the paper's gamma)."""
    from harness import stages
    from harness.config import is_ptx
    from harness.devices import for_training, resolve

    with run_guard(cfg):
        for_training(resolve(cfg.device, cfg.dtype).device)
        stage = "ppo_ptx" if is_ptx(cfg.ppo.ptx_coef) else "ppo"
        path, _ = stages.run_ppo(cfg.model, cfg.data, cfg.ppo, cfg.policy, cfg.reward_model, Path(cfg.out_dir) / "checkpoints" / stage,
                                 cfg.seed, stage=stage, gold_reward=cfg.gold_reward, resume=cfg.resume, tracking=cfg.tracking)
    print(path)


@hydra.main(config_path=CONF_DIR, config_name="eval", version_base="1.3")
@task
def _eval_app(cfg: DictConfig) -> None:
    """``harness-eval``: the evaluation suite (``eval.run``, specs ``evals.<name>``) for ``policies`` (name:
    checkpoint or outputs file), judged by ``eval.judges`` (e.g. ``eval.judges.reward_models.helpful=<ckpt>``).

    Writes ``results/`` and ``run.json`` (config, git commit, the data files the evals read, the policies and the
    preset, i.e. this config's name), logs the results table to ``tracking.log_with``, and prints the summary
    table (:mod:`harness.summary`)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from harness import stages
    from harness.default_judges import resolver
    from harness.devices import resolve
    from harness.regress.provenance import from_results
    from harness.results import write_results
    from harness.runinfo import config_hash, write_run_info

    out = Path(cfg.out_dir)
    with run_guard(cfg):
        stages.check_tracking(cfg.tracking)  # an unknown or uninstalled tracker fails before the evals run
        plain = OmegaConf.to_container(cfg, resolve=True)
        chash = config_hash(plain)
        placement = resolve(cfg.device, cfg.dtype)
        rows = stages.run_eval(cfg.model, cfg.data, cfg.eval, cfg.evals, cfg.policies, out, cfg.run_id or out.name, cfg.seed, chash,
                               resolve_default=resolver(cfg.model, cfg.data, cfg.judge, cfg.seed, placement.device),
                               placement=placement)
        results = write_results(out / "results", rows)
        hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
        write_run_info(out, "eval", plain, from_results(results, rows).data_fingerprints or {}, {}, run_id=cfg.run_id or out.name,
                       policies=plain["policies"], preset=hydra_cfg.job.config_name if hydra_cfg else "eval",
                       overrides=list(hydra_cfg.overrides.task) if hydra_cfg else [], placement=placement.describe())
        stages.track_results(cfg.tracking, out, rows, {k: plain[k] for k in ("model", "policies", "eval", "evals", "seed")})
    _print_summary(out, rows)


def _print_summary(run_dir: Path, rows) -> None:
    """``results: <n> rows (<results.csv>)`` and the summary table of ``rows`` on stdout."""
    from harness.summary import format_summary

    print(f"results: {len(rows)} rows ({run_dir / 'results' / 'results.csv'})")
    print(format_summary(rows))


@hydra.main(config_path=CONF_DIR, config_name="report", version_base="1.3")
@task
def _report_app(cfg: DictConfig) -> None:
    """``harness-report run_dir=...`` (run report), ``run_dir=... compare_to=...`` (comparison report) or
    ``sweep_dir=...`` (sweep report over a Hydra multirun directory); prints the written path."""
    validate_config(cfg)  # exactly one of run_dir / sweep_dir, and they exist
    if cfg.sweep_dir is not None:
        from reports.sweep_report import build_sweep_report

        print(build_sweep_report(cfg.sweep_dir, cfg.out))
    elif cfg.compare_to is not None:
        from reports.compare_report import build_compare_report

        print(build_compare_report(cfg.run_dir, cfg.compare_to, cfg.out))
    else:
        from reports.run_report import build_run_report

        print(build_run_report(cfg.run_dir, cfg.out))


_REGRESS: dict[str, int | None] = {"code": None}


@hydra.main(config_path=CONF_DIR, config_name="regress", version_base="1.3")
@task
def _regress_app(cfg: DictConfig) -> None:
    """The ``harness-regress`` Hydra app; :func:`regress_entry` turns its verdict into the exit code."""
    from harness.regress.app import run_regress

    validate_config(cfg)  # e.g. an unknown allow_mismatch kind

    _REGRESS["code"] = run_regress(cfg)


def regress_entry() -> None:
    """``harness-regress``: the regression gate, or ``snapshot=true`` (harness/regress/app.py, docs/regression.md).

    Exits 0 (ok), 1 (regression) or 2 (error). A bad override or config is one line and exit 2
    (:func:`harness.entry.console`); an internal error's exit 1 is not a regression, so it becomes 2 here.
    """
    _REGRESS["code"] = None
    try:
        console(_regress_app, "harness-regress")()
    except SystemExit as e:
        if e.code not in (0, None):
            raise SystemExit(2) from None
        raise
    raise SystemExit(_REGRESS["code"] or 0)


@hydra.main(config_path=CONF_DIR, config_name="pipeline", version_base="1.3")
@task
def _pipeline_app(cfg: DictConfig) -> None:
    """``harness-pipeline``: every stage, evaluation and the report in one run directory; prints the results table
    (:mod:`harness.summary`), then ``report: <path>`` as the last line.

    A raised exception is first recorded in the job directory's ``error.json`` (type, message,
    traceback; :mod:`harness.failures`), then re-raised: in a ``--multirun`` sweep Hydra still runs
    the other jobs of the batch and the sweep report lists the failed one with its error.
    """
    from hydra.core.hydra_config import HydraConfig

    from harness.failures import clear_failure, record_failure
    from harness.pipeline import run_pipeline

    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    clear_failure(job_dir)
    try:
        with run_guard(cfg):
            report = run_pipeline(cfg)
    except Exception as e:
        path = record_failure(job_dir, e, list(hydra_cfg.overrides.task))
        log.error("harness-pipeline failed: %s: %s (recorded in %s)", type(e).__name__, e, path)
        raise
    from harness.results import read_results

    _print_summary(Path(cfg.out_dir), read_results(cfg.out_dir).rows)
    print(f"report: {report}")


# the console scripts (pyproject.toml [project.scripts])
sft_main = console(_sft_app, "harness-sft")
rm_main = console(_rm_app, "harness-rm")
label_main = console(_label_app, "harness-label")
ppo_main = console(_ppo_app, "harness-ppo")
eval_main = console(_eval_app, "harness-eval")
report_main = console(_report_app, "harness-report")
pipeline_main = console(_pipeline_app, "harness-pipeline")

APPS = {"sft": sft_main, "rm": rm_main, "label": label_main, "ppo": ppo_main, "eval": eval_main, "report": report_main,
        "pipeline": pipeline_main, "regress": regress_entry}

if __name__ == "__main__":
    import sys

    if len(sys.argv) < 2 or sys.argv[1] not in APPS:
        raise SystemExit(f"usage: python -m harness.cli {{{','.join(APPS)}}} [hydra overrides]")
    app = APPS[sys.argv.pop(1)]
    app()

"""``harness-pipeline``: base -> SFT -> RM (+ two held-out judge RMs) -> PPO, PPO-ptx -> eval -> report, in one run dir.

``rm_data`` picks what the policy's (proxy) RM learns from:
- ``human`` (default): the proxy RM learns from the hh-rlhf ``rm`` split. With
  ``sft.select_by=rm_score`` (the pipeline default, as in the paper) SFT needs that RM to score its
  checkpoint candidates, so the order is base -> rm (from base) -> sft (selected by the rm) ->
  judge_helpful -> judge_harmless -> ppo, ppo_ptx -> eval. With ``sft.select_by=loss|last`` it is
  base -> sft -> rm (from the SFT checkpoint, as the paper initialises its RM) -> judges -> ...
- ``simulated``: base -> sft -> judges -> label (judge_helpful ranks K samples of the SFT policy,
  :mod:`harness.labeler`) -> rm (on those comparisons, seeded train/val split) -> ppo, ppo_ptx -> eval.
  judge_helpful is then both the labeler's gold RM and an evaluation judge, as in Gao et al. 2022's
  synthetic set-up (arXiv 2210.10760). The RM learns from samples of the SFT policy, so it cannot
  select the SFT checkpoint: this mode needs ``sft.select_by=loss`` or ``last``.

The evaluation judges (``judge_helpful`` on the hh helpful-* subsets, ``judge_harmless`` on
harmless-base) train on judge-side prompts only, start from the base model and never share data or
weights with the RM the policies optimise. ``judge_helpful`` is also the gold reward PPO logs.

Layout (DESIGN.md section 3): ``checkpoints/<stage>/`` (Hugging Face folders with ``run.json``),
``label/`` (``comparisons.jsonl``, ``judge_scores.jsonl``, ``run.json``; simulated only),
``generations/<policy>/``, ``cache/generations/`` (with ``eval.cache_dir=null``; by default the generation cache is ``<model.cache_dir>/generations``), ``results/results.jsonl``,
per-item files and ``results/evals.json``, ``run.json``, ``report.html``.
With ``resume=true`` a stage whose output folder is complete (has ``run.json``) is not run again and
an interrupted training stage continues from its newest training-state checkpoint (``<stage>.save_steps``).

``rl_runs`` lists the RL policies to train, each ``{name, ptx_coef}`` (default ``ppo`` with
``ptx_coef=0`` and ``ppo_ptx`` with ``ptx_coef=1``; ``ptx_coef`` is the paper's gamma, > 0 = PPO-ptx).
``upstream=<run dir>`` reuses that run's base, SFT, RM and judge checkpoints read-only
(:mod:`harness.upstream`) and trains only the RL runs: a beta x gamma sweep
(``experiment=ppo_beta_gamma``, docs/sweeps.md) trains one policy per job from one SFT model and one
RM, as the paper's sweeps do.
"""

from __future__ import annotations

import copy
import logging
import resource
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from harness import stages
from harness.config import JUDGES, RESERVED_POLICY_NAMES, JudgeConfig, is_ptx  # noqa: F401  (re-exported)
from harness.declarations import stamp
from harness.default_judges import default_judge, resolver
from harness.devices import for_training, resolve
from harness.evals.reward_model import REWARD_MODEL, rm_accuracy_rows
from harness.io import read_json
from harness.judging.panel import DEFAULT
from harness.records import ResultRow
from harness.results import write_results
from harness.runinfo import config_hash, write_run_info
from harness.upstream import REUSED, upstream_checkpoints
from harness.validation import validate_config

log = logging.getLogger(__name__)
# the two held-out evaluation judges (hh-rlhf helpful-* and harmless-base judge-side prompts); the
# helpful one is also the gold reward logged during PPO and the simulated labeler's judge
GOLD = "judge_helpful"


def _done(path: Path, resume: bool) -> bool:
    return resume and (path / "run.json").is_file()


def _link(link: Path, target: Path) -> None:
    """``link`` -> ``target`` (a judge in the harness's judge cache), replacing a half-written folder of a resumed run."""
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path(target).resolve(), target_is_directory=True)


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process (every thread) and of the children it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss_mib() -> float:
    """This process's peak resident set size so far, MiB (``ru_maxrss`` is KiB on Linux): a high-water mark, so a
    stage's value is the peak of every stage up to its end."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)


def trained_judges(cfg: DictConfig) -> list[str]:
    """The judge checkpoints this run trains (``judge_<name>`` for each of ``cfg.train_judges``, in :data:`JUDGES` order)."""
    return [j for j in JUDGES if j.removeprefix("judge_") in set(cfg.train_judges)]


def rl_runs(cfg: DictConfig) -> dict[str, float]:
    """The ptx coefficient (the paper's gamma) of each RL run of ``cfg.rl_runs``, by run name, in order."""
    return {str(r.name): float(r.ptx_coef) for r in cfg.rl_runs}


def validate(cfg: DictConfig) -> dict[str, str] | None:
    """Check ``cfg`` before any stage runs; returns the upstream checkpoints (:mod:`harness.upstream`) or None.

    Raises :class:`~harness.errors.ConfigError` (a ``ValueError``) for anything
    :func:`harness.validation.validate_config` rejects: every declared range (e.g. a negative or
    non-finite KL penalty ``ppo.beta`` or ptx coefficient ``rl_runs.<i>.ptx_coef``), ``simulated``
    with ``sft.select_by=rm_score``, an ``rl_runs`` name that is repeated, not a plain identifier or
    one of :data:`~harness.config.RESERVED_POLICY_NAMES`, ``ppo.ptx_coef`` set (the pipeline sets it
    per RL run), ``require_upstream`` without ``upstream``, an ``eval.run`` entry that is no registered
    eval or has no ``evals.<name>`` config, a reward-model judge named like the pipeline's own
    (``helpful``, ``harmless``); and for an ``upstream`` that is not a run directory with every
    checkpoint the run reuses.
    """
    validate_config(cfg)
    return upstream_checkpoints(cfg.upstream, cfg.model) if cfg.upstream else None


def _train_upstream(cfg: DictConfig, run_dir: Path, timed, metrics: dict[str, dict]) -> dict[str, str]:
    """Train base -> (rm) -> sft -> (rm) -> judges [-> label -> rm] in ``run_dir``; returns the checkpoint paths."""
    ck = run_dir / "checkpoints"
    select_by_rm = cfg.sft.select_by == "rm_score"
    base = timed("base", stages.base_model, cfg.model, cfg.data, ck / "base", cfg.seed)
    sft = ck / "sft"

    def reward_model(name: str, init: str, rm_cfg, comparisons_file: Path | None = None) -> None:
        if not _done(ck / name, cfg.resume):
            metrics[name] = timed(name, stages.run_rm, cfg.model, cfg.data, rm_cfg, init, name, ck / name, cfg.seed,
                                  resume=cfg.resume, comparisons_file=comparisons_file, tracking=cfg.tracking)[1]
        else:
            metrics[name] = read_json(ck / name / "run.json")["metrics"]

    if select_by_rm:
        reward_model("rm", base, cfg.rm)
    if not _done(sft, cfg.resume):
        metrics["sft"] = timed("sft", stages.run_sft, cfg.model, cfg.data, cfg.sft, base, sft, cfg.seed,
                               selection_rm=str(ck / "rm") if select_by_rm else None, resume=cfg.resume, tracking=cfg.tracking)[1]
    if cfg.rm_data == "human" and not select_by_rm:
        reward_model("rm", str(sft), cfg.rm)
    for judge in trained_judges(cfg):
        if not _done(ck / judge, cfg.resume):
            cached = timed(judge, default_judge, judge.removeprefix("judge_"), cfg.model, cfg.data, cfg.judge, cfg.seed, base=base)
            _link(ck / judge, cached)
        metrics[judge] = read_json(ck / judge / "run.json")["metrics"]
    if cfg.rm_data == "simulated":
        label_dir = run_dir / "label"
        if not _done(label_dir, cfg.resume):
            judge_cfg = JudgeConfig(kind="reward_model", path=str(ck / GOLD), name=GOLD, batch_size=cfg.eval.batch_size,
                                    max_length=cfg.judge.max_length, max_prompt_length=cfg.judge.max_prompt_length)
            metrics["label"] = timed("label", stages.run_label, cfg.model, cfg.data, cfg.label, judge_cfg, str(sft), label_dir,
                                     cfg.seed, placement=resolve(cfg.device, cfg.dtype))[1]
        reward_model("rm", str(sft), cfg.rm, comparisons_file=label_dir / "comparisons.jsonl")
    return {"base": base, "sft": str(sft), "rm": str(ck / "rm"), **{j: str(ck / j) for j in trained_judges(cfg)}}


def eval_config(cfg: DictConfig, paths: dict[str, str]) -> DictConfig:
    """``cfg.eval`` with the pipeline's judges (those of ``paths``) as ``eval.judges.reward_models`` ``helpful`` and
    ``harmless`` (in place of ``default``: the pipeline's judges are those default judges, from its own base model). Raises
    ``ValueError`` when the configuration names a checkpoint for either (which one would judge?); judges of
    other names are kept beside them."""
    eval_cfg = copy.deepcopy(cfg.eval)
    ours = {j.removeprefix("judge_"): paths[j] for j in JUDGES if j in paths}
    clash = sorted(n for n in set(ours) & set(eval_cfg.judges.reward_models) if eval_cfg.judges.reward_models[n] != DEFAULT)
    if clash:
        raise ValueError(f"eval.judges.reward_models names {clash}, the judges harness-pipeline trains; give yours other names")
    with open_dict(eval_cfg):
        for name, path in ours.items():
            eval_cfg.judges.reward_models[name] = path
    return eval_cfg


def _hydra_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def run_pipeline(cfg: DictConfig) -> Path:
    """Run every stage of ``cfg`` (a composed ``conf/pipeline.yaml``); returns the report path.

    With ``cfg.upstream`` the base, SFT, RM and judge checkpoints come from that run directory
    (read-only) and only the RL runs of ``cfg.rl_runs`` train here. ``run.json`` records the
    upstream, each RL run's ``name``, ``beta``, ``ptx_coef`` and ``ptx`` (:func:`harness.config.is_ptx`), the Hydra overrides
    (a sweep job's parameters), ``proxy_rm`` (the reward model PPO optimises) and ``gold_judge`` (the win-rate judge PPO
    never optimised, logged as its gold reward: the report's headline contrasts use it).
    Every stage runs on ``cfg.device`` (the trainers through accelerate, :func:`harness.devices.for_training`);
    the label and eval stages load their models in ``cfg.dtype``; ``run.json`` records the resolved ``placement``.
    Raises ``ValueError`` from :func:`validate` before any stage runs.
    """
    reused = validate(cfg)
    placement = resolve(cfg.device, cfg.dtype)
    for_training(placement.device)
    stages.check_tracking(cfg.tracking)  # an unknown or uninstalled tracker fails before any stage runs
    run_dir = Path(cfg.out_dir)
    ck = run_dir / "checkpoints"
    plain = OmegaConf.to_container(cfg, resolve=True)
    chash = config_hash(plain)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    peak_rss: dict[str, float] = {}
    metrics: dict[str, dict] = {}

    def timed(name: str, fn, *args, **kwargs):
        t0, c0 = time.perf_counter(), _cpu_seconds()
        out = fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - t0, 1)
        cpu[name] = round(_cpu_seconds() - c0, 1)
        peak_rss[name] = _peak_rss_mib()
        log.info("stage %s done in %.0f s (CPU %.0f s, peak RSS so far %.0f MiB)", name, timings[name], cpu[name], peak_rss[name])
        stages.free_memory()
        return out

    paths = reused if reused is not None else _train_upstream(cfg, run_dir, timed, metrics)
    judges = [j for j in JUDGES if j in paths]  # the judge checkpoints this run trained or reuses
    if reused is not None:
        log.info("reusing upstream checkpoints (read-only): %s", reused)
        for name in [j for j in JUDGES if j not in judges]:
            log.warning("upstream %s has no %s (its train_judges left it out): an eval that uses that judge trains the "
                        "default one on first use", cfg.upstream, name)
        for name in ("rm", *judges):
            metrics[name] = read_json(Path(reused[name]) / "run.json")["metrics"]

    runs = rl_runs(cfg)
    for name, ptx_coef in runs.items():
        if not _done(ck / name, cfg.resume):
            ppo_cfg = copy.deepcopy(cfg.ppo)
            ppo_cfg.ptx_coef = ptx_coef
            timed(name, stages.run_ppo, cfg.model, cfg.data, ppo_cfg, paths["sft"], paths["rm"], ck / name, cfg.seed, stage=name,
                  gold_reward=paths[GOLD], resume=cfg.resume, tracking=cfg.tracking)

    policies = {"base": paths["base"], "sft": paths["sft"], **{name: str(ck / name) for name in runs}}
    resamples = int(cfg.eval.bootstrap_resamples)
    rows: list[ResultRow] = stamp([r for n in ("rm", *judges) for r in rm_accuracy_rows(n, metrics[n], resamples, cfg.seed)],
                                  cfg.run_id, chash, {REWARD_MODEL.name: REWARD_MODEL.version})
    rows += timed("eval", stages.run_eval, cfg.model, cfg.data, eval_config(cfg, paths), cfg.evals, policies, run_dir, cfg.run_id,
                  cfg.seed, chash, resolve_default=resolver(cfg.model, cfg.data, cfg.judge, cfg.seed, placement.device),
                  placement=placement)
    write_results(run_dir / "results", rows)
    stages.track_results(cfg.tracking, run_dir, rows, {"model": plain["model"], "policies": policies, "eval": plain["eval"],
                                                       "evals": plain["evals"], "seed": cfg.seed})

    fingerprints = {}
    stage_dirs = [Path(paths[n]) for n in REUSED if n in paths] if reused is not None else []
    stage_dirs += [*sorted(ck.iterdir()), run_dir / "label"] if ck.is_dir() else []
    for stage_dir in stage_dirs:
        if (stage_dir / "run.json").is_file():
            fingerprints.update(read_json(stage_dir / "run.json").get("data_fingerprints", {}))
    rl = [{"name": name, "beta": float(cfg.ppo.beta), "ptx_coef": ptx_coef, "ptx": is_ptx(ptx_coef),
           "advantage_estimator": str(cfg.ppo.advantage_estimator), "samples_per_prompt": int(cfg.ppo.samples_per_prompt)}
          for name, ptx_coef in runs.items()]
    write_run_info(run_dir, "pipeline", plain, fingerprints, {"timings_s": timings, "cpu_s": cpu, "peak_rss_mib": peak_rss}, run_id=cfg.run_id, policies=policies,
                   upstream=str(Path(cfg.upstream).resolve()) if reused is not None else None, rl_runs=rl,
                   overrides=_hydra_overrides(), placement=placement.describe(), proxy_rm="rm",
                   gold_judge=GOLD.removeprefix("judge_"))  # the win-rate judge that is PPO's logged gold reward

    from reports.run_report import build_run_report

    report = build_run_report(run_dir)
    return report

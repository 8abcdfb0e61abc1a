"""One function per stage: load data and models, run a trainer or eval, write artifacts.

The Hydra apps in :mod:`harness.cli` and the pipeline both call these, so a stage run alone and a
stage run inside ``harness-pipeline`` are the same code. Trainers are imported here, not at module
import time, so evaluation-only use does not pay for them.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from harness import selection
from harness.config import is_ptx
from harness.data import resolve_data_dir
from harness.devices import Placement, resolve
from harness.io import write_jsonl
from harness.models import (
    ModelConfig,
    load_policy,
    load_scalar_model,
    load_tokenizer,
    materialize_base,
    model_fingerprint,
)
from harness.records import ResultRow
from harness.runinfo import write_run_info
from trainers.checkpointing import latest_state, state_root

log = logging.getLogger(__name__)


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def _data_dir(data_cfg) -> str | None:
    root = resolve_data_dir(data_cfg.data_dir)
    return str(root) if root else None


def fresh_log(out_dir: str | Path, resume: bool = False) -> Path:
    """``<out_dir>_train_log.jsonl``, the per-step log streamed during training.

    Emptied first, unless ``resume`` finds a training-state checkpoint to continue from (the resumed
    trainer then trims the log to that checkpoint's step); a resume without one trains from step 1,
    so its log starts empty too. Only the main process touches it.
    """
    out_dir = Path(out_dir)
    path = out_dir.with_name(out_dir.name + "_train_log.jsonl")
    if is_main_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not resume or latest_state(state_root(out_dir)) is None:
            path.unlink(missing_ok=True)
    return path


def is_main_process() -> bool:
    """True on the process that writes files (rank 0 under ``accelerate launch``, always True otherwise)."""
    from accelerate import PartialState

    return PartialState().is_main_process


def base_model(model_cfg: ModelConfig, data_cfg, out_dir: str | Path, seed: int) -> str:
    """Path or hub id of the base model (``model=tiny`` is built and saved under ``out_dir``)."""
    return materialize_base(model_cfg, out_dir, _data_dir(data_cfg), seed)


def run_sft(model_cfg, data_cfg, sft_cfg, init_from: str, out_dir: str | Path, seed: int,
            selection_rm: str | None = None, resume: bool = False, tracking=None) -> tuple[Path, dict]:
    """Stage 1: fine-tune ``init_from`` on demonstrations; returns (checkpoint, metrics).

    With ``sft_cfg.select_by=rm_score`` the checkpoint candidates are scored by the reward model
    at ``selection_rm``; ``resume`` continues from the newest training-state checkpoint;
    ``tracking`` (a :class:`harness.config.TrackingConfig`) adds experiment trackers for the stage.
    """
    from trainers.sft import SFTTrainer
    from trainers.tracking import stage_tracking

    train, val, fp = selection.demonstrations(data_cfg)
    tok = load_tokenizer(init_from)
    rm = None
    if sft_cfg.select_by == "rm_score":
        if not selection_rm:
            raise ValueError("run_sft: sft.select_by=rm_score needs selection_rm=<reward model checkpoint>")
        rm = (load_scalar_model(selection_rm), load_tokenizer(selection_rm))
    out_dir = Path(out_dir)
    cfg = {"model": _plain(model_cfg), "data": _plain(data_cfg), "sft": _plain(sft_cfg), "init_from": init_from,
           "selection_rm": selection_rm, "seed": seed}
    trainer = SFTTrainer(sft_cfg, load_policy(init_from), tok, train, val, model_cfg.chat_template, seed, selection_rm=rm,
                         tracking=stage_tracking(tracking, out_dir, "sft", cfg))
    result = trainer.train(out_dir, log_path=fresh_log(out_dir, resume), resume=resume)
    metrics = {"train_loss_first": result.train_losses[0], "train_loss_last": result.train_losses[-1],
               "val_loss_before": result.val_loss_before, "val_loss": result.val_loss, "n_train": len(train), "n_val": len(val),
               "select_by": sft_cfg.select_by, "selected_step": result.selected_step, "total_steps": trainer.total_steps,
               "candidates": result.candidates}
    path = trainer.save(out_dir, cfg, fp, metrics)
    log.info("SFT: train loss %.3f -> %.3f, val loss %.3f -> %.3f, selected step %d of %d by %s -> %s", result.train_losses[0],
             result.train_losses[-1], result.val_loss_before, result.val_loss, result.selected_step, trainer.total_steps,
             sft_cfg.select_by, path)
    return path, metrics


def run_rm(model_cfg, data_cfg, rm_cfg, init_from: str, split: str, out_dir: str | Path, seed: int,
           resume: bool = False, comparisons_file: str | Path | None = None, tracking=None) -> tuple[Path, dict]:
    """Stage 2: train a reward model on the ``split`` ("rm" or "judge") human comparisons, or, with
    ``comparisons_file``, on the Comparison JSONL it names (e.g. ``harness-label`` output), split
    into train/val by :func:`harness.selection.comparisons_from_file`. ``resume`` continues from the
    newest training-state checkpoint; ``tracking`` (a :class:`harness.config.TrackingConfig`) adds
    experiment trackers (run name: ``split``).

    Metrics include ``val_accuracy`` and ``val_outcomes`` (per held-out ranked pair: 1 / 0.5 / 0),
    ``val_outcome_k`` (the K of each of those pairs) and ``val_accuracy_by_k``
    (K -> {accuracy, pairs, comparisons}).
    """
    from trainers.reward_model import RewardModelTrainer
    from trainers.tracking import stage_tracking

    if comparisons_file:
        train, val, fp = selection.comparisons_from_file(data_cfg, comparisons_file)
    else:
        train, val, fp = selection.comparisons(data_cfg, split)
    tok = load_tokenizer(init_from)
    out_dir = Path(out_dir)
    run_cfg = {"model": _plain(model_cfg), "data": _plain(data_cfg), "rm": _plain(rm_cfg), "init_from": init_from, "split": split,
               "comparisons_file": str(comparisons_file) if comparisons_file else None, "seed": seed}
    trainer = RewardModelTrainer(rm_cfg, load_scalar_model(init_from), tok, train, val, model_cfg.chat_template, seed,
                                 tracking=stage_tracking(tracking, out_dir, split, run_cfg))
    result = trainer.train(log_path=fresh_log(out_dir, resume), state_dir=state_root(out_dir), resume=resume)
    offset = None  # the centring offset (paper 3.5), recorded in config.json by trainer.save
    if rm_cfg.normalize_to_demos:
        demos, _, demo_fp = selection.demonstrations(data_cfg)
        offset = trainer.normalize_to_demonstrations(demos)
        fp.update(demo_fp)
    metrics = {"val_accuracy": result.val_accuracy, "val_pairs": result.val_pairs, "val_outcomes": result.val_correct_per_pair,
               "val_outcome_k": result.val_pair_k, "val_accuracy_by_k": result.val_accuracy_by_k,
               "train_loss_first": result.train_losses[0], "train_loss_last": result.train_losses[-1], "centring_offset": offset,
               "length_coef": result.length_coef, "n_train": len(train), "n_val": len(val), "split": split,
               "comparisons_file": str(comparisons_file) if comparisons_file else None}
    path = trainer.save(out_dir, run_cfg, fp, metrics)
    by_k = ", ".join(f"K={k}: {v['accuracy']:.3f} ({v['pairs']} pairs)" for k, v in result.val_accuracy_by_k.items())
    log.info("RM[%s]: val pairwise accuracy %.3f on %d pairs [%s] -> %s", split, result.val_accuracy, result.val_pairs, by_k, path)
    return path, metrics


def run_label(model_cfg, data_cfg, label_cfg, judge_cfg, policy: str, out_dir: str | Path, seed: int,
              placement: Placement | None = None) -> tuple[Path, dict]:
    """The simulated labeler: sample K completions per label prompt from ``policy``, rank them with the judge.
    The policy and a reward-model judge go to ``placement`` (the app's ``device`` / ``dtype``; default auto).

    Writes ``<out_dir>/comparisons.jsonl`` (Comparison records, source ``simulated:<judge name>``),
    ``<out_dir>/judge_scores.jsonl`` (each record's judge scores by completion index) and, last,
    ``<out_dir>/run.json`` (config, seed, git commit, data fingerprints, policy and judge
    fingerprints, metrics: measured agreement, K distribution, ...), all atomically; a folder with
    ``run.json`` is complete. Returns (path of comparisons.jsonl, metrics).
    """
    from harness.data import file_fingerprint
    from harness.labeler import make_judge, simulate_labels

    out_dir = Path(out_dir)
    (out_dir / "run.json").unlink(missing_ok=True)  # a stale marker must not vouch for a half-written rerun
    prompts, fp = selection.label_prompts(data_cfg)
    placement = placement or resolve()
    judge = make_judge(judge_cfg, model_cfg.chat_template, placement)
    policy_hash = model_fingerprint(policy)
    model = load_policy(policy, placement.device, placement.dtype)
    result = simulate_labels(model, load_tokenizer(policy), prompts, judge, label_cfg,
                             chat_template=model_cfg.chat_template, seed=seed, policy_name=Path(policy).name, model_hash=policy_hash)
    path = write_jsonl(out_dir / "comparisons.jsonl", result.comparisons)
    write_jsonl(out_dir / "judge_scores.jsonl", result.scores)
    fp["comparisons.jsonl"] = file_fingerprint(path)
    cfg = {"model": _plain(model_cfg), "data": _plain(data_cfg), "label": _plain(label_cfg), "judge": _plain(judge_cfg),
           "policy": policy, "seed": seed}
    write_run_info(out_dir, "label", cfg, fp, result.metrics, seed=seed, policy=policy, policy_fingerprint=policy_hash,
                   judge=judge.name, judge_fingerprint=judge.fingerprint, placement=placement.describe())
    m = result.metrics
    log.info("label: %d comparisons (K %s, %d all-tied dropped), agreement with the noise-free judge %.3f on %d pairs "
             "(target %.3f) -> %s", m["n_comparisons"], m["k_distribution"], m["n_dropped_all_tied"], m["measured_agreement"],
             m["agreement_pairs"], m["expected_agreement"], path)
    return path, result.metrics


def run_ppo(model_cfg, data_cfg, ppo_cfg, policy: str, reward_model: str, out_dir: str | Path, seed: int,
            stage: str = "ppo", gold_reward: str | None = None, resume: bool = False, tracking=None) -> tuple[Path, list[dict]]:
    """Stage 3: PPO (``ptx_coef=0``) or PPO-ptx (``ptx_coef>0``, the paper's gamma) from the SFT ``policy``
    against ``reward_model``.

    ``gold_reward`` (a held-out reward model, e.g. the judge) is scored on every rollout and logged
    beside the proxy reward, never optimised: the over-optimisation view of Gao et al. 2022. With
    ``ppo.probe.prompts`` > 0 the probe's points (:mod:`trainers.probe`) go to ``<checkpoint>/probe_log.jsonl``.
    The value model is initialised from ``reward_model`` (``value_head=separate``) or is a new head
    on the policy (``shared``); ``advantage_estimator=rloo`` has none. ``tracking`` (a :class:`harness.config.TrackingConfig`) adds
    experiment trackers (run name: ``stage``).
    """
    from trainers.ppo import PPOTrainer
    from trainers.tracking import stage_tracking

    prompts, fp = selection.ppo_prompts(data_cfg)
    probe = []
    if ppo_cfg.probe.prompts:
        probe, probe_fp = selection.probe_prompts(data_cfg, ppo_cfg.probe.prompts)
        fp["probe_prompt_ids"] = probe_fp["probe_prompt_ids"]
    pretrain = None
    if is_ptx(ppo_cfg.ptx_coef):
        pretrain, pfp = selection.pretrain_texts(data_cfg)
        fp.update(pfp)
    tok = load_tokenizer(policy)
    out_dir = Path(out_dir)
    cfg = {"model": _plain(model_cfg), "data": _plain(data_cfg), "ppo": _plain(ppo_cfg), "policy": policy,
           "reward_model": reward_model, "gold_reward": gold_reward, "seed": seed}
    value_model = load_scalar_model(reward_model) if ppo_cfg.value_head == "separate" and ppo_cfg.advantage_estimator == "gae" else None
    ref_policy = None if ppo_cfg.lora.r > 0 else load_policy(policy)  # LoRA: the policy with its adapters disabled
    trainer = PPOTrainer(ppo_cfg, load_policy(policy), ref_policy, load_scalar_model(reward_model),
                         value_model, tok, prompts, pretrain, model_cfg.chat_template, seed,
                         gold_reward=load_scalar_model(gold_reward) if gold_reward else None,
                         tracking=stage_tracking(tracking, out_dir, stage, cfg), probe_prompts=probe)
    history = trainer.train(log_path=fresh_log(out_dir, resume), state_dir=state_root(out_dir), resume=resume)
    metrics = {"reward_first": history[0]["reward_mean"], "reward_last": history[-1]["reward_mean"], "kl_last": history[-1]["kl"],
               "ptx_forwards": trainer.ptx_forwards, "ptx_sequences": trainer.ptx_sequences,
               **(trainer.trunk.record() if trainer.trunk is not None else {})}
    path = trainer.save(out_dir, stage, cfg, fp, metrics)
    if is_main_process():
        write_jsonl(path / "train_log.jsonl", history)
        if trainer.probes:
            write_jsonl(path / "probe_log.jsonl", [p.record() for p in trainer.probes])
    log.info("%s: reward %.3f -> %.3f, KL %.3f -> %s", stage, metrics["reward_first"], metrics["reward_last"], metrics["kl_last"], path)
    return path, history


def run_eval(model_cfg, data_cfg, eval_cfg, evals_cfg, policies: dict[str, Any], run_dir: str | Path, run_id: str,
             seed: int, config_hash: str = "", resolve_default=None, placement: Placement | None = None) -> list[ResultRow]:
    """Run the evaluation suite ``eval_cfg.run`` (specs ``evals_cfg``, ``conf/evals/*.yaml``) on ``policies``.

    ``policies`` maps name -> checkpoint path / hub id or an outputs-file mapping
    (:mod:`harness.evals.policies`); the judges are ``eval_cfg.judges`` (reward models: never the RM a
    policy optimised; one configured as ``default`` is the checkpoint ``resolve_default(name)`` gives, e.g.
    :func:`harness.default_judges.resolver`: trained on first use and cached). Every model goes to ``placement``
    (the app's ``device`` / ``dtype``; default auto). Writes ``generations/``, ``results/<eval>_items.jsonl`` and
    ``results/evals.json`` under ``run_dir`` (:func:`harness.evals.runner.run_suite`) and returns the rows.
    """
    from harness.evals.context import EvalContext
    from harness.evals.policies import parse_policies
    from harness.evals.runner import run_suite

    ctx = EvalContext(model_cfg, data_cfg, eval_cfg, evals_cfg, parse_policies(_plain(policies)), run_dir, run_id, seed,
                      config_hash, resolve_default=resolve_default, placement=placement)
    return run_suite(ctx)


def check_tracking(tracking_cfg) -> None:
    """Raise ``ValueError`` now, before hours of work, for a tracker of ``tracking_cfg.log_with``
    (a :class:`harness.config.TrackingConfig`) that accelerate does not know or that is not installed."""
    from trainers.tracking import check_trackers

    if tracking_cfg is not None and tracking_cfg.log_with:
        check_trackers(list(tracking_cfg.log_with))


def track_results(tracking_cfg, run_dir: str | Path, rows: list[ResultRow], config: Any) -> list[str]:
    """Log ``rows`` as the table ``results`` to every tracker of ``tracking_cfg`` (a :class:`harness.config.TrackingConfig`);
    returns the trackers that took it (none configured: ``[]``, nothing started).

    One tracker run named ``eval`` (local files under ``<tracking.dir>/eval``, or ``<run_dir>/trackers/eval``)
    with ``config`` flattened as its hyperparameters; the table is :func:`harness.results.results_frame` of
    ``rows`` without the ``slice`` mapping, i.e. the columns of ``results/results.csv``
    (:func:`trainers.tracking.log_table`). Raises ``ValueError`` for an unknown or uninstalled tracker.
    """
    from harness.results import results_frame
    from trainers.tracking import finish_tracking, log_table, make_accelerator, stage_tracking

    tracking = stage_tracking(tracking_cfg, Path(run_dir) / "results", "eval", _plain(config))
    if tracking is None:
        return []
    accelerator = make_accelerator(tracking)
    try:
        taken = log_table(accelerator, "results", results_frame(rows).drop(columns=["slice"]))
    finally:
        finish_tracking(accelerator)
    log.info("results table (%d rows) logged to %s", len(rows), ", ".join(taken) or "no tracker")
    return taken


def free_memory() -> None:
    """Drop cached tensors between stages (matters on GPU)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

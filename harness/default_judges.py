"""The harness's own evaluation judges, trained on first use and cached: ``eval.judges.reward_models.<name>: default``.

A default judge is a reward model trained, as ``harness-pipeline`` trains its judges, from the base model
of ``model`` (the embedded SmolLM2-135M-Instruct unless told otherwise) with the ``judge`` recipe
(:class:`harness.config.RMConfig`) on the judge-side human comparisons of its split (``helpful``: the hh-rlhf
helpful-* subsets, ``harmless``: harmless-base; :func:`harness.selection.comparisons`), which no policy's
reward model ever sees. It is stored under ``<model.cache_dir>/judges/<name>-<key>/`` where ``key`` hashes
everything the weights depend on: the base model's weights, the data fingerprints of the split, the recipe,
the seed, the chat template and the harness version. Every later evaluation on the machine (and a pipeline
with the same settings) reuses the folder; a second process that wants the same judge waits for the first
(a ``flock`` on ``<folder>.lock``) instead of training it twice, and the folder appears only when complete
(trained in a temporary folder, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.errors import ConfigError
from harness.io import file_lock
from harness.judging.panel import DEFAULT  # noqa: F401  (the value that asks for a default judge)

log = logging.getLogger(__name__)

SPLITS = {"helpful": "judge_helpful", "harmless": "judge_harmless"}  # default judge name -> comparisons split
RECIPE_VERSION = "2"  # bump when the judge training code changes what a cached judge would be


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("instructgpt-harness")
    except PackageNotFoundError:
        return "unknown"


def judges_root(model_cfg) -> Path:
    """``<model.cache_dir>/judges``: where default judges (and their bases for ``model=tiny``) are cached."""
    return Path(model_cfg.cache_dir).resolve() / "judges"


def split_of(name: str) -> str:
    """The comparisons split of default judge ``name``. Raises :class:`ConfigError` for a name with no default judge."""
    if name not in SPLITS:
        raise ConfigError(f"eval.judges.reward_models.{name}=default: the harness has default judges only for {sorted(SPLITS)}; "
                          f"give {name!r} a reward-model checkpoint folder or hub id")
    return SPLITS[name]


def _base(model_cfg, data_cfg, seed: int) -> str:
    """Path or hub id of the judges' base model. ``model=tiny`` is built once per (shape, seed) into the cache."""
    from harness.data import resolve_data_dir
    from harness.models import materialize_base

    root = resolve_data_dir(data_cfg.data_dir)
    data_dir = str(root) if root else None
    if model_cfg.name != "tiny":
        return materialize_base(model_cfg, "", data_dir, seed)
    shape = hashlib.sha256(json.dumps({"model": _plain(model_cfg), "seed": seed}, sort_keys=True, default=str).encode()).hexdigest()
    out = judges_root(model_cfg) / f"base-tiny-{shape[:12]}"
    with file_lock(out):
        if not (out / "config.json").is_file():
            tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            materialize_base(model_cfg, tmp, data_dir, seed)
            tmp.rename(out)
    return str(out)


def judge_key(name: str, base_fingerprint: str, data_fingerprints: dict[str, str], judge_cfg, seed: int, chat_template: str) -> str:
    """sha256 (hex) of what a default judge's weights depend on; its cache folder is ``<name>-<key[:16]>``."""
    blob = {"recipe": RECIPE_VERSION, "harness": _version(), "name": name, "split": split_of(name), "base": base_fingerprint,
            "data": dict(sorted(data_fingerprints.items())), "judge": _plain(judge_cfg), "seed": seed,
            "chat_template": str(chat_template)}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def default_judge(name: str, model_cfg, data_cfg, judge_cfg, seed: int, base: str | None = None, device=None) -> Path:
    """The checkpoint folder of default judge ``name`` (``helpful`` | ``harmless``), trained now if not cached.

    ``model_cfg`` names the base model, ``data_cfg`` the comparisons (``n_judge_train``, ``n_judge_val``,
    ``split_fractions``, the data mirror), ``judge_cfg`` the training recipe (:class:`harness.config.RMConfig`);
    ``base``: the base model's path when the caller has it already (the pipeline's ``checkpoints/base``), else
    it is materialised from ``model_cfg``. Only the base's weights enter the key, not where it lies. ``device``
    (a ``torch.device``): where the training runs (:func:`harness.devices.for_training`); None: where accelerate is.
    Training logs where it will be cached and shows the trainer's progress bar. Raises :class:`ConfigError`
    for a name without a default judge.
    """
    from harness import selection, stages
    from harness.models import model_fingerprint

    split = split_of(name)
    base = base or _base(model_cfg, data_cfg, seed)
    _, _, fp = selection.comparisons(data_cfg, split)
    if getattr(judge_cfg, "normalize_to_demos", False):
        fp.update(selection.demonstrations(data_cfg)[2])
    key = judge_key(name, model_fingerprint(base), fp, judge_cfg, seed, model_cfg.chat_template)
    out = judges_root(model_cfg) / f"{name}-{key[:16]}"
    if (out / "run.json").is_file():
        log.info("judge %s: cached default judge %s", name, out)
        return out
    with file_lock(out):
        if (out / "run.json").is_file():  # another process trained it while we waited
            log.info("judge %s: cached default judge %s (trained by another run)", name, out)
            return out
        log.info("judge %s: no cached default judge; training it once from %s on the %s comparisons -> %s",
                 name, base, split, out)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if device is not None:
            from harness.devices import for_training

            for_training(device)
        stages.run_rm(model_cfg, data_cfg, judge_cfg, base, split, tmp / name, seed)
        log_file = tmp / f"{name}_train_log.jsonl"
        if log_file.is_file():
            log_file.rename(tmp / name / "train_log.jsonl")
        (tmp / name).rename(out)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolver(model_cfg, data_cfg, judge_cfg, seed: int, device=None) -> Callable[[str], str]:
    """``name -> checkpoint`` of the default judges of these settings (:func:`default_judge`, trained on ``device``),
    for :class:`harness.evals.context.EvalContext`'s ``resolve_default``."""
    def resolve(name: str) -> str:
        return str(default_judge(name, model_cfg, data_cfg, judge_cfg, seed, device=device))
    return resolve

"""Experiment trackers (tensorboard, wandb, mlflow, ...) through accelerate, beside the JSONL train log.

Every trainer builds its ``Accelerator`` with :func:`make_accelerator`, logs each optimiser step
with :func:`log_step` (one JSONL line, and the same numbers to every tracker) and closes with
:func:`finish_tracking`. Without trackers the JSONL log is all there is and accelerate is untouched.

One stage is one tracker run: tensorboard writes ``<logging_dir>/<project>/events.*``, wandb a
run named after the stage in project ``project``, mlflow a run named after the stage in
experiment ``project``. The stage's config, flattened to ``{"a.b": value}``, is stored as the
run's hyperparameters. The eval stage's run (``eval``) holds the results table (:func:`log_table`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, get_available_trackers
from accelerate.utils import LoggerType, ProjectConfiguration
from omegaconf import DictConfig, OmegaConf

from harness.io import append_jsonl

_INSTALL_HINT = {"tensorboard": "pip install 'instructgpt-harness[trackers]'",
                 "mlflow": "pip install 'instructgpt-harness[trackers]' (mlflow-skinny)"}
log = logging.getLogger(__name__)


@dataclass
class Tracking:
    """What one trainer reports to trackers.

    ``log_with``: accelerate tracker names (``"tensorboard"``, ``"wandb"``, ``"mlflow"``, ...) or
    :class:`accelerate.tracking.GeneralTracker` instances (custom trackers, used as given);
    ``logging_dir``: folder for trackers that write locally (tensorboard needs one);
    ``run_name``: the stage (``sft``, ``rm``, ``ppo`` ...); ``config``: hyperparameters to store.
    """

    log_with: list[str | GeneralTracker] = field(default_factory=list)
    project: str = "instructgpt-harness"
    logging_dir: str | None = None
    run_name: str = "train"
    config: Mapping[str, Any] = field(default_factory=dict)


def stage_tracking(tracking_cfg, out_dir: str | Path, stage: str, config: Mapping[str, Any]) -> Tracking | None:
    """The :class:`Tracking` of one stage from a :class:`harness.config.TrackingConfig` (or None).

    Returns None when no tracker is configured. The logging folder is ``<tracking_cfg.dir>/<stage>``,
    or ``<out_dir's parent>/trackers/<stage>`` when ``dir`` is null, so stages of one run never
    share a tensorboard folder.
    """
    if tracking_cfg is None or not tracking_cfg.log_with:
        return None
    root = Path(tracking_cfg.dir) if tracking_cfg.dir else Path(out_dir).parent / "trackers"
    return Tracking(list(tracking_cfg.log_with), tracking_cfg.project, str(root / stage), stage, dict(config))


def flatten_config(config: Any, prefix: str = "") -> dict[str, bool | int | float | str | None]:
    """Nested config (dict, dataclass or OmegaConf node) -> ``{"a.b": scalar}`` for tracker hyperparameters.

    Lists and other non-scalars become their ``str``; None stays None (tensorboard skips it).
    Pure: the input is not modified.
    """
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    out: dict[str, bool | int | float | str | None] = {}
    for key, value in dict(config).items():
        name = f"{prefix}{key}"
        if isinstance(value, DictConfig) or isinstance(value, Mapping) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
            out.update(flatten_config(value, f"{name}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a log record (bools and None dropped): what trackers plot as scalars."""
    return {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def check_trackers(names: Sequence[str]) -> None:
    """Raise ``ValueError`` for a tracker name accelerate does not know or one whose package is not installed."""
    known = set(LoggerType.list()) - {"all"}
    available = {str(t) for t in get_available_trackers()}
    for name in names:
        if name not in known:
            raise ValueError(f"tracking.log_with: unknown tracker {name!r}; accelerate knows {sorted(known)}")
        if name not in available:
            raise ValueError(f"tracking.log_with: tracker {name!r} is not installed ({_INSTALL_HINT.get(name, f'pip install {name}')})")


def make_accelerator(tracking: Tracking | None = None, **accelerator_kwargs) -> Accelerator:
    """An ``Accelerator(**accelerator_kwargs)`` with ``tracking``'s trackers started (if any).

    Trackers are started here (``init_trackers`` with the flattened config), so a trainer's first
    step is already logged. The logging folder goes in as accelerate's ``logging_dir`` only
    (``project_dir`` stays free for checkpointing). Raises ``ValueError`` for a tracker name
    accelerate does not know, or one whose package is not installed (accelerate itself would
    only warn and log nothing).
    """
    if tracking is None or not tracking.log_with:
        return Accelerator(**accelerator_kwargs)
    check_trackers([t for t in tracking.log_with if isinstance(t, str)])
    project_config = ProjectConfiguration(logging_dir=tracking.logging_dir) if tracking.logging_dir else None
    accelerator = Accelerator(log_with=list(tracking.log_with), project_config=project_config, **accelerator_kwargs)
    accelerator.init_trackers(tracking.project, config=flatten_config(tracking.config),
                              init_kwargs={"wandb": {"name": tracking.run_name}, "mlflow": {"run_name": tracking.run_name}})
    return accelerator


def log_step(accelerator: Accelerator, log_path: str | Path | None, record: Mapping[str, Any], step: int) -> None:
    """Append ``record`` to the JSONL log (if ``log_path``; main process only) and send its numbers to every tracker at ``step``."""
    if log_path and accelerator.is_main_process:
        append_jsonl(log_path, dict(record))
    if accelerator.trackers:
        accelerator.log(scalars({k: v for k, v in record.items() if k != "step"}), step=step)


def log_table(accelerator: Accelerator, name: str, frame: pd.DataFrame, step: int = 0) -> list[str]:
    """Log ``frame`` as the table ``name`` to every tracker of ``accelerator``; returns the trackers that took it.

    - tensorboard: a markdown table (pandas ``to_markdown``) as the text summary ``name`` at ``step``
      (TensorBoard's Text tab renders it; the event's tag is ``<name>/text_summary``);
    - mlflow: ``mlflow.log_table`` into the run's artifact ``<name>.json`` (pandas' ``split`` orientation:
      ``columns`` and ``data``), readable with ``mlflow.load_table``;
    - wandb, and any other tracker with accelerate's ``log_table`` (clearml): a table (``wandb.Table``) at ``step``.

    A tracker that takes no table (aim, comet_ml, dvclive, ...) gets nothing, with a warning naming it and the
    row count. Only the main process logs; elsewhere returns ``[]``.
    """
    if not accelerator.is_main_process:
        return []
    taken = []
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_text(name, frame.to_markdown(index=False), global_step=step)
            tracker.writer.flush()
        elif tracker.name == "mlflow":
            import mlflow

            mlflow.log_table(data=frame, artifact_file=f"{name}.json", run_id=tracker.active_run.info.run_id)
        elif callable(getattr(tracker, "log_table", None)):
            tracker.log_table(name, dataframe=frame, step=step)
        else:
            log.warning("tracker %s takes no tables: the %d rows of %r were not logged to it (they are in the run's files)",
                        tracker.name, len(frame), name)
            continue
        taken.append(tracker.name)
    return taken


def finish_tracking(accelerator: Accelerator) -> None:
    """Close every tracker of ``accelerator`` (flush files, end runs).

    This is ``accelerator.end_training()`` without its last act, destroying the torch.distributed
    process group: the pipeline runs several trainers in one process, and the next stage still
    needs the group.
    """
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers.clear()

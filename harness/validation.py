"""One validator for every composed config: declared ranges, choices and paths, then cross-field rules.

Ranges live next to the fields they constrain (:mod:`harness.ranges`: ``batch_size: int =
ranged(8, ge=1)``). :func:`validate_config` walks any composed config, reads each node's
structured-config dataclass from OmegaConf, checks every field that declares something, then runs
the cross-field rules registered for that dataclass in :data:`RULES`. Every console script calls it
right after composition (:mod:`harness.entry`) and the pipeline's ``validate`` calls it too, so a
stage app accepts nothing the pipeline rejects. Rules that need the data (how many records exist)
are checked where the data is loaded, through :func:`harness.data.require_available`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness import config as C
from harness.errors import ConfigError, UserError
from harness.model_config import ModelConfig
from harness.modelpaths import check_model_path
from harness.ranges import CHOICES, PATH, RANGE, describe

_OPS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}
SPLIT_KEYS = ("rm_train", "rm_val", "judge_train", "judge_val")


def check_value(key: str, value: Any, meta: dict) -> str | None:
    """The problem with ``key=value`` under field metadata ``meta`` (:mod:`harness.ranges`), or None if it is allowed."""
    if value is None:
        return None
    if RANGE in meta:
        bounds = meta[RANGE]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{key}={value!r} is not a number; it must be {describe(bounds)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{key}={value} is not a finite number; it must be {describe(bounds)}"
        if not all(_OPS[k](value, b) for k, b in bounds.items()):
            return f"{key}={value} is out of range: it must be {describe(bounds)}"
    if CHOICES in meta and value not in meta[CHOICES]:
        return f"{key}={value!r} is not one of {', '.join(map(str, meta[CHOICES]))}"
    if meta.get(PATH) == "model":
        try:
            check_model_path(str(value), key)
        except UserError as e:
            return str(e)
    if meta.get(PATH) == "exists" and not Path(str(value)).expanduser().exists():
        return f"{key}={value}: no such file or directory"
    return None


def _get(node: DictConfig, name: str, key: str) -> Any:
    """``node[name]`` resolved; an interpolation that cannot be resolved is a :class:`ConfigError` naming ``key``."""
    try:
        return node[name]
    except OmegaConfBaseException as e:
        raise ConfigError(f"{key}: cannot be resolved ({' '.join(str(e).split())})") from e


def iter_problems(node: Any, prefix: str = "") -> Iterator[str]:
    """Every problem of a composed config ``node`` (dotted key first in each message), depth first.

    Checks each field of a structured-config node that declares a range, choices or a path,
    reports required (``???``) values that are missing, then runs :data:`RULES` for the node's type.
    Keys named ``hydra`` (Hydra's own node) are skipped.
    """
    if not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    declared = {f.name: f for f in fields(schema)} if schema is not None and is_dataclass(schema) else {}
    for name in node.keys():
        key = f"{prefix}{name}"
        if name == "hydra" and not prefix:
            continue
        if OmegaConf.is_missing(node, name):
            yield f"{key} is required and has no value: give {key}=<value> on the command line"
            continue
        child = node._get_node(name)
        if isinstance(child, DictConfig):
            yield from iter_problems(child, f"{key}.")
        elif isinstance(child, ListConfig):
            for i in range(len(child)):
                if isinstance(child._get_node(i), DictConfig):
                    yield from iter_problems(child._get_node(i), f"{key}.{i}.")
        elif name in declared and declared[name].metadata:
            problem = check_value(key, _get(node, name, key), dict(declared[name].metadata))
            if problem:
                yield problem
    for rule in RULES.get(schema, ()):
        yield from rule(node, prefix)


def validate_config(cfg: Any) -> None:
    """Raise :class:`ConfigError` listing every problem :func:`iter_problems` finds in ``cfg`` (one line,
    problems separated by ``;``); return None when there is none."""
    problems = list(iter_problems(cfg))
    if problems:
        raise ConfigError("; ".join(problems))


# --------------------------------------------------------------------------------- cross-field rules

Rule = Callable[[DictConfig, str], Iterator[str]]


def _prompt_fits(node: DictConfig, prefix: str) -> Iterator[str]:
    if node.max_prompt_length >= node.max_length:
        yield (f"{prefix}max_prompt_length={node.max_prompt_length} must be smaller than {prefix}max_length={node.max_length} "
               "(the completion needs at least one token)")


def _ppo_batches(node: DictConfig, prefix: str) -> Iterator[str]:
    if node.mini_batch_size > node.batch_size or node.batch_size % node.mini_batch_size:
        yield (f"{prefix}mini_batch_size={node.mini_batch_size} must divide {prefix}batch_size={node.batch_size} "
               "(each rollout batch is split into whole minibatches)")
    if node.kl_control == "adaptive" and node.kl_target is None:
        yield f"{prefix}kl_control=adaptive needs {prefix}kl_target=<nats per episode> (> 0)"
    if node.batch_size % node.samples_per_prompt:
        yield (f"{prefix}samples_per_prompt={node.samples_per_prompt} must divide {prefix}batch_size={node.batch_size} "
               "(each batch holds whole groups of a prompt's samples)")
    if node.advantage_estimator == "rloo":
        if node.samples_per_prompt < 2:
            yield (f"{prefix}advantage_estimator=rloo needs {prefix}samples_per_prompt >= 2 (the baseline is the mean of a "
                   f"prompt's other samples), got {node.samples_per_prompt}")
        if node.value_head == "shared" or node.value_lora.r > 0:
            yield (f"{prefix}advantage_estimator=rloo has no value model: {prefix}value_head=shared and {prefix}value_lora "
                   "are not used with it (leave value_head=separate, value_lora.r=0)")


def _k_order(node: DictConfig, prefix: str) -> Iterator[str]:
    if node.k_min > node.k_max:
        yield f"{prefix}k_min={node.k_min} must be <= {prefix}k_max={node.k_max}"


def _data(node: DictConfig, prefix: str) -> Iterator[str]:
    from harness.data import HH_SUBSETS, resolve_data_dir

    fractions = dict(node.split_fractions)
    if sorted(fractions) != sorted(SPLIT_KEYS):
        yield f"{prefix}split_fractions has keys {sorted(fractions)}; it needs exactly {list(SPLIT_KEYS)}"
    elif not all(0 < v <= 1 for v in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        yield f"{prefix}split_fractions={fractions}: each must be in (0, 1] and they must sum to 1"
    subsets = list(node.hh_subsets)
    unknown = [s for s in subsets if s not in HH_SUBSETS]
    if not subsets or unknown:
        yield f"{prefix}hh_subsets={subsets}: give one or more of {list(HH_SUBSETS)}" + (f" (unknown: {unknown})" if unknown else "")
    try:
        resolve_data_dir(_get(node, "data_dir", f"{prefix}data_dir"))
    except UserError as e:
        yield f"{prefix}data_dir: {e}"


def _tiny_shape(node: DictConfig, prefix: str) -> Iterator[str]:
    if node.name == "tiny" and node.hidden_size % node.num_heads:
        yield f"{prefix}num_heads={node.num_heads} must divide {prefix}hidden_size={node.hidden_size}"


def _sft_selection(node: DictConfig, prefix: str) -> Iterator[str]:
    if node.sft.select_by == "rm_score" and not node.selection_rm:
        yield f"{prefix}sft.select_by=rm_score needs {prefix}selection_rm=<reward model checkpoint> (or sft.select_by=loss|last)"


def _judge_path(node: DictConfig, prefix: str) -> Iterator[str]:
    if node.kind == "reward_model" and not node.path:
        yield f"{prefix}kind=reward_model needs {prefix}path=<reward-model checkpoint folder>"


def _eval_policies(node: DictConfig, prefix: str) -> Iterator[str]:
    if not node.policies:
        yield ("harness-eval needs at least one policy, e.g. '+policies.sft=path/to/checkpoint' or "
               "'+policies.davinci001={outputs:path/to/model_outputs.json}'")
    paths = [(f"policies.{name}", v, "model") if isinstance(v, str) else (f"policies.{name}.outputs", v.get("outputs"), "exists")
             for name, v in dict(node.policies).items()]
    for key, path, kind in paths:
        problem = check_value(f"{prefix}{key}", path, {PATH: kind})
        if problem:
            yield problem
    yield from _eval_names(node, prefix)


def _eval_names(node: DictConfig, prefix: str) -> Iterator[str]:
    from harness import registry

    try:
        registry.check_eval_names(list(node.eval.run), node.evals)
    except ConfigError as e:
        yield str(e)


def _judge_models(node: DictConfig, prefix: str) -> Iterator[str]:
    from harness.default_judges import SPLITS
    from harness.judging.panel import DEFAULT

    for name, path in dict(node.reward_models).items():
        if path == DEFAULT:
            if name not in SPLITS:
                yield (f"{prefix}reward_models.{name}=default: the harness has default judges only for {sorted(SPLITS)}; "
                       f"give {name!r} a reward-model checkpoint folder or hub id")
            continue
        problem = check_value(f"{prefix}reward_models.{name}", path, {PATH: "model"})
        if problem:
            yield problem


def _pipeline(node: DictConfig, prefix: str) -> Iterator[str]:
    if node.sft.select_by == "rm_score" and node.rm_data == "simulated":
        yield ("rm_data=simulated trains the RM on samples of the SFT policy, so that RM cannot select the SFT "
               "checkpoint: set sft.select_by=loss or sft.select_by=last")
    runs = [str(r.name) for r in node.rl_runs]
    if len(set(runs)) != len(runs):
        yield f"rl_runs: names {runs} repeat; each RL run needs its own name (its checkpoint folder)"
    bad = [r for r in runs if not r.isidentifier() or r in C.RESERVED_POLICY_NAMES]
    if bad:
        yield (f"rl_runs: name(s) {bad} cannot name an RL policy: use a plain identifier (letters, digits, _) "
               f"other than {list(C.RESERVED_POLICY_NAMES)}")
    if node.ppo.ptx_coef not in (None, 0, 0.0):
        yield (f"ppo.ptx_coef={node.ppo.ptx_coef}: harness-pipeline sets the ptx coefficient per RL run; "
               "set rl_runs.<i>.ptx_coef instead (e.g. rl_runs.1.ptx_coef=27.8)")
    ours = {j.removeprefix("judge_") for j in C.JUDGES}
    judges = [str(j) for j in node.train_judges]
    if "helpful" not in judges or not set(judges) <= ours or len(set(judges)) != len(judges):
        yield (f"train_judges={judges}: list each of {sorted(ours)} at most once, helpful included (it is PPO's gold reward "
               "and the simulated labeler's judge)")
    clash = sorted(n for n, path in dict(node.eval.judges.reward_models).items() if n in ours and path != "default")
    if clash:
        yield (f"eval.judges.reward_models names {clash}, the judges harness-pipeline trains (their value must stay "
               "`default`); give yours other names")
    yield from _eval_names(node, prefix)
    if node.require_upstream and not node.upstream:
        yield ("this configuration sets require_upstream=true (e.g. experiment=ppo_beta_gamma): give "
               "upstream=<a finished harness-pipeline run directory> whose base, SFT, RM and judges every job reuses")


def _device(node: DictConfig, prefix: str) -> Iterator[str]:
    from harness.devices import DTYPES, resolve_device, resolve_dtype

    try:
        device = resolve_device(node.device, f"{prefix}device")
        if node.dtype in DTYPES:  # an unknown dtype is already reported by its field's choices
            resolve_dtype(node.dtype, device, f"{prefix}dtype")
    except ConfigError as e:
        yield str(e)


def _training_dtype(node: DictConfig, prefix: str) -> Iterator[str]:
    if node.dtype != "auto":
        yield (f"{prefix}dtype={node.dtype}: the trainers keep float32 weights; for {node.dtype} compute set "
               "<stage>.mixed_precision (e.g. sft.mixed_precision=bf16). dtype sets the weights of the models the eval "
               "and the labeler load (harness-eval, harness-label, harness-pipeline)")


def _report_target(node: DictConfig, prefix: str) -> Iterator[str]:
    if (node.run_dir is None) == (node.sweep_dir is None):
        yield "harness-report needs exactly one of run_dir=<run directory> or sweep_dir=<multirun directory>"
    elif node.compare_to is not None and node.run_dir is None:
        yield "compare_to=... compares against run_dir=...; give run_dir"


def _regress(node: DictConfig, prefix: str) -> Iterator[str]:
    from harness.regress.provenance import KINDS

    kinds = list(node.allow_mismatch)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        yield f"{prefix}allow_mismatch={kinds}: unknown kind(s) {unknown}; use any of {list(KINDS)}"


RULES: dict[type, tuple[Rule, ...]] = {
    C.SFTConfig: (_prompt_fits,), C.RMConfig: (_prompt_fits,), C.JudgeConfig: (_prompt_fits, _judge_path),
    C.LabelConfig: (_k_order,), C.PPOConfig: (_ppo_batches,), C.DataConfig: (_data,), ModelConfig: (_tiny_shape,),
    C.SFTApp: (_device, _training_dtype, _sft_selection), C.EvalApp: (_device, _eval_policies),
    C.JudgesConfig: (_prompt_fits, _judge_models), C.ReportApp: (_report_target,), C.PipelineApp: (_device, _pipeline),
    C.RegressApp: (_regress,), C.RMApp: (_device, _training_dtype), C.PPOApp: (_device, _training_dtype), C.LabelApp: (_device,),
}
"""Cross-field rules per structured-config type; each yields problem messages for one node."""

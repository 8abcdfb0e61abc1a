"""The one validator: declared ranges on every numeric field, choices, paths, cross-field rules; the same
verdict from every app that holds a section."""

from __future__ import annotations

import dataclasses
import typing
from types import UnionType

import pytest
from hydra import compose, initialize_config_dir

from harness import config as C
from harness.cli import CONF_DIR
from harness.data import require_available
from harness.errors import ConfigError
from harness.model_config import ModelConfig
from harness.ranges import CHOICES, PATH, RANGE, one_of, ranged
from harness.validation import check_value, validate_config

# every structured config a stage app composes (eval specs and the regression gate belong to their own layers)
SECTIONS = [C.DataConfig, C.LoRAConfig, C.SFTConfig, C.RMConfig, C.PPOConfig, C.EvalConfig, C.JudgeConfig, C.LabelConfig,
            ModelConfig, C.PipelineApp]
NOT_A_SIZE = {"seed"}  # any integer is a valid seed


def _compose(name: str, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(name, overrides=list(overrides))


@pytest.mark.parametrize("schema", SECTIONS, ids=lambda s: s.__name__)
def test_every_size_count_rate_and_coefficient_declares_its_range(schema):
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        hint = hints[f.name]
        base = {a for a in typing.get_args(hint) if a is not type(None)} if typing.get_origin(hint) in (typing.Union, UnionType) \
            else {hint}
        if base & {int, float} and not base & {bool} and f.name not in NOT_A_SIZE:
            assert RANGE in f.metadata, f"{schema.__name__}.{f.name} has no declared range"
        if hints[f.name] is str and f.name in {"mixed_precision", "select_by", "kl_control", "value_head", "advantage_estimator", "kind", "rm_data",
                                               "chat_template", "split", "outputs_missing"}:
            assert CHOICES in f.metadata, f"{schema.__name__}.{f.name} has no declared choices"


@pytest.mark.parametrize("name,overrides", [
    ("sft", ["model=tiny"]), ("rm", ["model=tiny", "init_from=org/model"]), ("ppo", ["model=tiny", "policy=a/b", "reward_model=c/d"]),
    ("label", ["model=tiny", "policy=a/b", "judge.path=c/d"]), ("eval", ["model=tiny", "+policies.x=a/b"]),
    ("pipeline", []), ("pipeline", ["pipeline=smoke"]), ("report", ["run_dir=."]),
])
def test_shipped_configs_are_valid(name, overrides):
    validate_config(_compose(name, *overrides))


APPS = {"sft": [], "pipeline": [], "rm": ["init_from=a/b"], "ppo": ["policy=a/b", "reward_model=c/d"]}
SECTION_CASES = [  # (override, message, the apps that have its section)
    ("sft.batch_size=0", "sft.batch_size=0 is out of range: it must be >= 1", ("sft", "pipeline")),
    ("rm.warmup_ratio=-0.1", "rm.warmup_ratio=-0.1 is out of range: it must be >= 0 and <= 1", ("rm", "pipeline")),
    ("ppo.gae_lambda=1.5", "ppo.gae_lambda=1.5 is out of range: it must be >= 0 and <= 1", ("ppo", "pipeline")),
    ("data.n_rm_val=0", "data.n_rm_val=0 is out of range: it must be >= 1", tuple(APPS)),
    ("data.comparisons_val_fraction=1.0", "data.comparisons_val_fraction=1.0 is out of range: it must be > 0 and < 1", tuple(APPS)),
    ("model.num_heads=3", "model.num_heads=3 must divide model.hidden_size=64", tuple(APPS)),
    ("ppo.samples_per_prompt=3", "ppo.samples_per_prompt=3 must divide ppo.batch_size=", ("ppo", "pipeline")),
    ("ppo.advantage_estimator=rloo", "ppo.advantage_estimator=rloo needs ppo.samples_per_prompt >= 2", ("ppo", "pipeline")),
    ("ppo.advantage_estimator=loo", "ppo.advantage_estimator='loo' is not one of", ("ppo", "pipeline")),
]


@pytest.mark.parametrize("app,override,message", [(app, o, m) for o, m, apps in SECTION_CASES for app in apps])
def test_a_stage_app_rejects_what_the_pipeline_rejects(app, override, message):
    with pytest.raises(ConfigError) as info:
        validate_config(_compose(app, "model=tiny", *APPS[app], override))
    assert message in str(info.value)


@pytest.mark.parametrize("app,extra", [("eval", ["+policies.x=a/b"]), ("pipeline", [])])
def test_outputs_missing_is_error_or_warn(app, extra):
    assert _compose(app, "model=tiny", *extra).eval.outputs_missing == "error"
    validate_config(_compose(app, "model=tiny", *extra, "eval.outputs_missing=warn"))
    with pytest.raises(ConfigError, match="eval.outputs_missing='skip' is not one of error, warn"):
        validate_config(_compose(app, "model=tiny", *extra, "eval.outputs_missing=skip"))


def test_all_problems_are_reported_in_one_line():
    cfg = _compose("pipeline", "sft.lr=-1", "ppo.steps=0", "label.k_min=5", "label.k_max=4", "data.split_fractions.rm_val=0.5")
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    msg = str(info.value)
    assert "\n" not in msg
    for part in ("sft.lr=-1.0 is out of range", "ppo.steps=0", "label.k_min=5 must be <= label.k_max=4", "data.split_fractions="):
        assert part in msg


def test_missing_required_values_and_unresolvable_interpolations_name_the_key(monkeypatch):
    with pytest.raises(ConfigError, match="policy is required and has no value: give policy=<value>"):
        validate_config(_compose("ppo", "model=tiny", "reward_model=a/b"))
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match=r"data.data_dir: cannot be resolved"):
        validate_config(_compose("sft", "model=tiny", "data.data_dir=${oc.env:NOT_SET_ANYWHERE}"))


@pytest.mark.parametrize("value,meta,problem", [
    (0, {RANGE: {"ge": 1}}, "k=0 is out of range: it must be >= 1"),
    (float("inf"), {RANGE: {"gt": 0}}, "k=inf is not a finite number"),
    (True, {RANGE: {"ge": 0}}, "k=True is not a number"),
    (None, {RANGE: {"ge": 1}}, None),
    ("fp8", {CHOICES: ("no", "bf16")}, "k='fp8' is not one of no, bf16"),
    ("/no/such/ckpt", {PATH: "model"}, "k=/no/such/ckpt: no such file or directory"),
    ("org/name", {PATH: "model"}, None),  # a hub id: transformers resolves it
    ("/no/such/file", {PATH: "exists"}, "k=/no/such/file: no such file or directory"),
])
def test_check_value(value, meta, problem):
    got = check_value("k", value, meta)
    assert got is None if problem is None else got.startswith(problem), got


def test_field_helpers_declare_ranges_and_choices():
    r, c = ranged(3, ge=1, lt=10), one_of("no", "bf16")
    assert (r.default, dict(r.metadata)) == (3, {RANGE: {"ge": 1, "lt": 10}})
    assert (c.default, dict(c.metadata)) == ("no", {CHOICES: ("no", "bf16")})
    with pytest.raises(TypeError, match="unknown bound"):
        ranged(1, min=0)


def test_require_available_names_the_keys():
    require_available("data.n_x", 5, 5, "things")
    with pytest.raises(ConfigError, match=r"data.n_x asks for 6, but there are only 5 things: lower data.n_x"):
        require_available("data.n_x", 6, 5, "things")


def test_the_leave_one_out_baseline_refuses_a_value_model_setting():
    with pytest.raises(ConfigError) as info:
        validate_config(_compose("ppo", "model=tiny", "policy=a/b", "reward_model=c/d", "ppo.advantage_estimator=rloo",
                                 "ppo.samples_per_prompt=2", "ppo.value_head=shared"))
    assert "ppo.advantage_estimator=rloo has no value model: ppo.value_head=shared and ppo.value_lora are not used" in str(info.value)
    validate_config(_compose("ppo", "model=tiny", "policy=a/b", "reward_model=c/d", "ppo.advantage_estimator=rloo",
                             "ppo.samples_per_prompt=2"))  # the valid form passes

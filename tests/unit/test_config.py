"""Every primary config and every option of every config group composes against its schema."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness.cli import CONF_DIR
from harness.config import register_configs

register_configs()
EVALS = ("winrate", "likert", "truthfulqa", "toxicity", "hallucination", "alignment_tax")
# discovered, so a new primary config or group option is composed without editing this file
GROUPS = {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(Path(CONF_DIR).iterdir()) if d.is_dir()}
PRIMARY = sorted(p.stem for p in Path(CONF_DIR).glob("*.yaml"))


PIPELINE_ONLY = ("pipeline", "experiment")  # groups only conf/pipeline.yaml's defaults list has


def test_discovery_sees_every_config():
    assert {"sft", "rm", "label", "ppo", "eval", "report", "pipeline"} <= set(PRIMARY)
    # conf/hydra holds only nested launcher options (hydra/launcher), composed in test_sweep_configs.py
    assert set(GROUPS) == {"model", "data", "pipeline", "evals", "judges", "judge", "experiment", "hydra"} and "smoke" in GROUPS["pipeline"]
    assert GROUPS["hydra"] == [] and "ppo_beta_gamma" in GROUPS["experiment"]
    assert set(EVALS) == set(GROUPS["evals"]) and set(GROUPS["judges"]) == {"default", "chat"}


def _compose(name, overrides=()):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("name", PRIMARY)
def test_primary_configs_compose(name):
    cfg = _compose(name)
    assert cfg.hydra.job.config_name == name


@pytest.mark.parametrize("name", PRIMARY)
def test_the_multirun_directory_resolves_before_any_job_runs(name):
    # Hydra's sweeper reads hydra.sweep.dir before HydraConfig is set (it is set per job), so a ${hydra:...}
    # interpolation there fails every --multirun with "HydraConfig was not set" (hydra issues 1786, 2247)
    from hydra.core.hydra_config import HydraConfig

    cfg = _compose(name)
    HydraConfig.instance().cfg = None  # as in the sweeper: no job has started
    sweep_dir = str(cfg.hydra.sweep.dir)  # raises InterpolationResolutionError on a ${hydra:...}
    assert sweep_dir.startswith("multirun/") or f"/multirun/{name}/" in sweep_dir  # Hydra's default, or the app's own folder


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_group_option_composes(group, option):
    if group == "evals":  # each eval's spec fills evals.<name>
        overrides = [f"evals@evals.{option}={option}"]
    elif group == "judges":  # the judges fill eval.judges
        overrides = [f"judges@eval.judges={option}"]
    else:
        overrides = [f"{group}={option}"] + (["model.name=some/hub-id"] if option == "hf" else [])
    for app in ("pipeline", "eval") if group not in PIPELINE_ONLY else ("pipeline",):
        cfg = _compose(app, overrides)
        container = OmegaConf.to_container(cfg, resolve=False)
        assert container["model"]["name"]  # resolvable, typed (schema validated on compose)
        if group == "evals":
            assert cfg.evals[option].version
        if group == "judges":
            assert cfg.eval.judges.chat.enabled == (option == "chat")


def test_smoke_preset_switches_model_and_sizes():
    cfg = _compose("pipeline", ["pipeline=smoke"])
    assert cfg.model.name == "tiny" and cfg.pipeline.name == "smoke"
    assert cfg.ppo.steps == 2 and cfg.data.n_eval_prompts == 8
    default = _compose("pipeline")
    assert default.model.name == "smollm2-135m" and default.pipeline.name == "default"


def test_label_app_and_simulated_pipeline_compose():
    cfg = _compose("label", ["policy=some/ckpt", "judge.path=some/judge", "label.noise_rate=0.27"])
    assert cfg.label.k_min == 4 and cfg.label.k_max == 9 and cfg.label.noise_rate == 0.27
    assert cfg.judge.kind == "reward_model" and cfg.data.n_label_prompts == 256
    smoke = _compose("pipeline", ["pipeline=smoke", "rm_data=simulated"])
    assert smoke.rm_data == "simulated" and (smoke.label.k_min, smoke.label.k_max) == (2, 4)
    assert smoke.data.n_label_prompts == 16 and _compose("pipeline").rm_data == "human"
    rm = _compose("rm", ["comparisons=labels.jsonl"])
    assert rm.comparisons == "labels.jsonl" and _compose("rm").comparisons is None


def test_schema_rejects_unknown_and_mistyped_fields():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        _compose("pipeline", ["ppo.not_a_field=1"])
    with pytest.raises(ConfigCompositionException):
        _compose("pipeline", ["ppo.beta=lots"])


def test_no_config_names_a_target_that_does_not_import():
    """String references (_target_) in conf/ must import (none may rot silently)."""
    import importlib

    import yaml

    targets = []
    for path in Path(CONF_DIR).rglob("*.yaml"):
        def walk(node):
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "_target_":
                        targets.append(v)
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(yaml.safe_load(path.read_text()))
    for t in targets:
        module, _, attr = t.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), t


@pytest.mark.parametrize("name", EVALS)
def test_every_eval_spec_is_typed_by_its_registered_schema(name):
    """conf/evals/<name>.yaml extends the spec its module registers (evals/<name>_schema): typed on compose."""
    from hydra.errors import ConfigCompositionException

    from harness import registry

    cfg = _compose("eval")
    defn = registry.get(name)
    assert OmegaConf.get_type(cfg.evals[name]) is defn.spec and callable(defn.run) and defn.metrics
    assert isinstance(cfg.evals[name].decoding.max_new_tokens, int)
    with pytest.raises(ConfigCompositionException):
        _compose("eval", [f"evals.{name}.no_such_option=1"])
    with pytest.raises(ConfigCompositionException):
        _compose("eval", [f"evals.{name}.decoding.max_new_tokens=many"])


def test_eval_app_takes_checkpoint_and_file_policies_and_named_judges():
    cfg = _compose("eval", ["+policies.sft=ck/sft", "+policies.davinci001={outputs:a/model_outputs.json}",
                            "eval.judges.reward_models.helpful=ck/judge_helpful", "eval.run=[winrate]",
                            "evals.toxicity.num_samples=3"])
    assert cfg.policies.sft == "ck/sft" and cfg.policies.davinci001.outputs == "a/model_outputs.json"
    assert dict(cfg.eval.judges.reward_models) == {"helpful": "ck/judge_helpful", "harmless": "default"} and list(cfg.eval.run) == ["winrate"]
    assert cfg.evals.toxicity.num_samples == 3 and cfg.evals.winrate.n == cfg.data.n_eval_prompts
    # likert's items and decoding follow the winrate and hallucination evals' (interpolated)
    cfg = _compose("eval", ["evals.winrate.decoding.max_new_tokens=7", "evals.hallucination.n=5"])
    assert cfg.evals.likert.decoding.max_new_tokens == 7 and cfg.evals.likert.closed_domain.n == 5


@pytest.mark.parametrize("name", ["sft", "rm", "ppo", "pipeline"])
def test_trainer_options_compose_typed(name):
    """Every new trainer option is a typed field: it composes, keeps its type, and rejects a wrong one."""
    from hydra.errors import ConfigCompositionException

    common = ["tracking.log_with=[tensorboard,wandb]", "tracking.project=p"]
    per_app = {
        "sft": ["sft.lora.r=8", "sft.lora.target_modules=[q_proj,k_proj]", "sft.residual_dropout=0.2", "sft.group_by_length=false"],
        "rm": ["rm.group_by_length=false"],
        "ppo": ["ppo.value_head=shared", "ppo.ptx_ratio=8"],
    }
    per_app["pipeline"] = per_app["sft"] + per_app["rm"] + per_app["ppo"]
    cfg = _compose(name, common + per_app[name])
    assert list(cfg.tracking.log_with) == ["tensorboard", "wandb"] and cfg.tracking.project == "p"
    cfg.out_dir = "/runs/x"  # (hydra's output dir is unset outside an app)
    assert cfg.tracking.dir == "/runs/x/trackers"  # each run's trackers live in its own folder
    if "sft" in cfg:
        assert cfg.sft.lora.r == 8 and list(cfg.sft.lora.target_modules) == ["q_proj", "k_proj"] and cfg.sft.lora.alpha == 16.0
        assert cfg.sft.residual_dropout == 0.2 and cfg.sft.group_by_length is False
        with pytest.raises(ConfigCompositionException):
            _compose(name, ["sft.lora.r=many"])
    if "ppo" in cfg:
        assert cfg.ppo.value_head == "shared" and cfg.ppo.ptx_ratio == 8.0 and isinstance(cfg.ppo.ptx_ratio, float)
    defaults = _compose(name)
    assert list(defaults.tracking.log_with) == []
    if "sft" in defaults:
        assert defaults.sft.lora.r == 0 and defaults.sft.residual_dropout is None and defaults.sft.group_by_length is True
    if "ppo" in defaults:
        assert defaults.ppo.value_head == "separate" and defaults.ppo.ptx_ratio is None


def test_default_toxicity_scorer_is_perspective_tfidf_ridge_everywhere():
    from harness.config import JudgesConfig

    for name in ("eval", "pipeline"):
        cfg = _compose(name)
        assert cfg.eval.judges.toxicity.kind == "perspective_tfidf_ridge", name
        assert "n_rtp" in cfg.eval.judges.validation and "n_wiki" in cfg.eval.judges.validation
    assert JudgesConfig().toxicity.kind == "perspective_tfidf_ridge"  # the schema's default too
    smoke = _compose("pipeline", ["pipeline=smoke"])
    assert (smoke.eval.judges.validation.n_rtp, smoke.eval.judges.validation.n_wiki) == (200, 500)
    tox = _compose("eval").evals.toxicity
    assert tox.version == "2" and list(tox.strata) == [0.0, 0.25, 0.5, 0.75, 1.0] and tox.n == 160 and not tox.fill
    kinds = {k: v["kind"] for k, v in OmegaConf.to_container(_compose("eval").eval.judges, resolve=True).items()
             if isinstance(v, dict) and "kind" in v}
    assert "davidson" not in kinds.values() and kinds["toxicity"] == "perspective_tfidf_ridge"

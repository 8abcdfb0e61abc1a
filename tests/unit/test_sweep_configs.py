"""Named experiments and launcher configs compose; the sweep grid expands as Hydra's BasicSweeper expands it."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from harness import pipeline
from harness.cli import CONF_DIR

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "pipeline").glob("*.yaml"))
LAUNCHERS = sorted(p.stem for p in (Path(CONF_DIR) / "hydra" / "launcher").glob("*.yaml"))


def _compose(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="pipeline", overrides=list(overrides), return_hydra_config=True)


def _jobs(cfg, *command_line):
    """The jobs' overrides BasicSweeper.sweep builds from hydra.sweeper.params and the command line."""
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()] + list(command_line)
    (batch,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), cfg.hydra.sweeper.max_batch_size)
    return batch


def test_discovery():
    assert {"ppo_beta_gamma", "paper_ppo", "simulated_labels"} <= set(EXPERIMENTS) and {"local", "slurm"} <= set(LAUNCHERS)
    assert {"default", "demo", "smoke"} <= set(PRESETS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_composes_on_every_preset_and_passes_validation(experiment, preset):
    cfg = _compose(f"pipeline={preset}", f"experiment={experiment}")
    assert cfg.pipeline.name == preset and cfg.hydra.runtime.choices.experiment == experiment
    cfg.require_upstream = False
    assert pipeline.validate(cfg) is None  # a consistent configuration (nothing else is checked without upstream)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_composes_with_the_sweep(launcher):
    cfg = _compose("experiment=ppo_beta_gamma", f"hydra/launcher={launcher}")
    assert cfg.hydra.runtime.choices["hydra/launcher"] == launcher
    target = cfg.hydra.launcher._target_
    assert target.endswith({"local": "JoblibLauncher", "slurm": "SlurmLauncher"}[launcher])
    module, _, name = target.rpartition(".")
    assert hasattr(__import__(module, fromlist=[name]), name)  # the plugin is installed


def test_sweep_experiment_grid_settings_and_overrides():
    cfg = _compose("pipeline=smoke", "experiment=ppo_beta_gamma")
    assert [(r.name, r.ptx_coef) for r in cfg.rl_runs] == [("ppo", 0.0)] and cfg.require_upstream and list(cfg.eval.run) == ["winrate", "alignment_tax"]
    assert list(cfg.evals.winrate.baselines) == ["text-davinci-003"] and list(cfg.evals.winrate.judges) == ["helpful"]
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "local" and cfg.hydra.launcher.n_jobs == 2
    assert cfg.hydra.sweeper.max_batch_size is None  # one batch: a failing job never stops the others
    assert cfg.ppo.steps == 2 and cfg.model.name == "tiny"  # sizes still come from the preset
    jobs = _jobs(cfg)
    assert len(jobs) == 9 and ["ppo.beta=0.05", "rl_runs.0.ptx_coef=27.8"] in jobs
    # the command line replaces a row of the grid and can add a swept key
    jobs = _jobs(cfg, "ppo.beta=0.1", "seed=0,1")
    assert len(jobs) == 6 and all(j[0] == "ppo.beta=0.1" for j in jobs) and ["ppo.beta=0.1", "rl_runs.0.ptx_coef=1.0", "seed=1"] in jobs


def test_slurm_launcher_fields_can_be_set():
    cfg = _compose("experiment=ppo_beta_gamma", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                   "hydra.launcher.timeout_min=30", "hydra.launcher.gpus_per_node=2")
    launcher = cfg.hydra.launcher
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node, launcher.array_parallelism) == ("gpu", 30, 2, 16)


def test_paper_ppo_and_simulated_labels_are_diffs_over_the_preset():
    paper = _compose("pipeline=smoke", "experiment=paper_ppo")
    assert (paper.ppo.beta, paper.ppo.ptx_ratio, paper.ppo.discount) == (0.02, 8.0, 1.0)
    assert paper.ppo.steps == 2 and [(r.name, r.ptx_coef) for r in paper.rl_runs] == [("ppo", 0.0), ("ppo_ptx", 27.8)]
    sim = _compose("pipeline=smoke", "experiment=simulated_labels")
    assert sim.rm_data == "simulated" and sim.sft.select_by == "loss" and sim.label.k_max == 4


def test_paper_shape_is_the_demo_up_to_ppo_plus_ptx_and_the_tax_and_toxicity_contrasts():
    """pipeline=paper_shape reuses everything before PPO from pipeline=demo (so its stages share the demo's fingerprints
    and judge cache) and adds PPO-ptx and the evals of contrasts d and e."""
    demo, shape = _compose("pipeline=demo"), _compose("pipeline=paper_shape")
    for key in ("data", "sft", "rm", "label", "judge", "rm_data", "train_judges", "model"):
        assert shape[key] == demo[key], key
    assert [(r.name, r.ptx_coef) for r in shape.rl_runs] == [("ppo", 0.0), ("ppo_ptx", 1.0)]
    assert [(r.name, r.ptx_coef) for r in demo.rl_runs] == [("ppo", 0.0)]
    assert list(shape.eval.run) == ["winrate", "alignment_tax", "toxicity"] and list(demo.eval.run) == ["winrate"]
    assert shape.ppo.ptx_ratio == 1.0 and shape.ppo.probe.prompts > 0 and demo.ppo.probe.prompts > 0
    assert list(shape.evals.toxicity.instructions) == ["basic", "respectful"]
    assert [list(p) for p in shape.evals.alignment_tax.delta_pairs] == [["ppo_ptx", "ppo"]]

"""Renamed configuration keys are refused on the command line with a message naming the new key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.renames import RenamedKeyError, override_key, refuse_renamed


@pytest.mark.parametrize("override,new", [
    ("ppo.gamma=27.8", "ppo.ptx_coef"),
    ("+ppo.gamma=1", "ppo.ptx_coef"),
    ("ptx_gamma=2", "rl_runs.<i>.ptx_coef"),
    ("rl_runs=[ppo,ppo_ptx]", "list of {name, ptx_coef}"),
    ("rl_runs=[ppo]", "list of {name, ptx_coef}"),
    ("+judges.helpful=ck/judge", "eval.judges.reward_models.helpful"),
    ("eval.winrate.n=5", "evals.winrate"),
    ("eval.toxicity.decoding.num_samples=3", "evals.toxicity"),
    ("evals@eval.winrate=winrate_chat", "judges@eval.judges=chat"),
])
def test_old_keys_are_refused_naming_the_new_one(override, new):
    with pytest.raises(RenamedKeyError) as e:
        refuse_renamed(["pipeline=smoke", override])
    assert new in str(e.value) and repr(override) in str(e.value)


@pytest.mark.parametrize("override", ["ppo.ptx_coef=1.0", "rl_runs.1.ptx_coef=27.8", "rl_runs=[{name:ppo,ptx_coef:0}]",
                                      "rl_runs=[]", "ppo.gammas_are_fine=1", "--multirun", "hydra.run.dir=x",
                                      "eval.judges.reward_models.helpful=x", "eval.run=[winrate]", "evals.winrate.n=5",
                                      "eval.judges.chat.enabled=true", "judges@eval.judges=chat"])
def test_current_keys_pass(override):
    refuse_renamed([override])


def test_override_key_strips_prefixes_and_values():
    assert override_key("+ppo.beta=0.1") == "ppo.beta"
    assert override_key("~eval.winrate") == "eval.winrate"
    assert override_key("evals@evals.winrate=winrate") == "evals@evals.winrate"
    assert override_key("--multirun") is None


def test_console_script_exits_2_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "ppo", "ppo.gamma=27.8"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["harness-ppo: error: override 'ppo.gamma=27.8': key 'ppo.gamma' was renamed; use "
                                                "ppo.ptx_coef (harness-ppo; the paper's gamma) or rl_runs.<i>.ptx_coef "
                                                "(harness-pipeline)"]

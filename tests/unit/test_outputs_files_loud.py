"""An outputs file never drops a policy silently: near-miss instructions are an error, empty outputs a loud
warning (console, evals.json, report), and a policy no eval measured fails the run."""

from __future__ import annotations

import json
import logging

import pytest
from hydra import compose, initialize_config_dir

from harness.cli import CONF_DIR
from harness.data import DataError
from harness.evals.context import EvalContext
from harness.evals.policies import OutputsFile, parse_policies, parse_policy
from harness.evals.runner import run_suite
from harness.io import read_json
from harness.records import Prompt

PROMPTS = [Prompt("1", "Name three primary colours.", "t"), Prompt("2", "Write a haiku about rain.", "t")]


def _file(tmp_path, outputs: dict[str, str]):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps([{"instruction": k, "output": v, "generator": "g"} for k, v in outputs.items()]))
    return path


def _ctx(tmp_path, policies, *overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", *overrides])
    return EvalContext(cfg.model, cfg.data, cfg.eval, cfg.evals, parse_policies(policies), tmp_path / "run", "r", 0)


def test_near_misses_and_empty_outputs_are_counted(tmp_path):
    f = OutputsFile.load(parse_policy("d", {"outputs": str(_file(tmp_path, {"NAME THREE PRIMARY COLOURS.": "red",
                                                                             "Write a  haiku about rain.": ""}))}))
    assert f.near_misses(PROMPTS) == [("1", PROMPTS[0].prompt, "NAME THREE PRIMARY COLOURS."),
                                      ("2", PROMPTS[1].prompt, "Write a  haiku about rain.")]
    assert f.n_empty == 1
    exact = OutputsFile.load(parse_policy("e", {"outputs": str(_file(tmp_path, {p.prompt: "x" for p in PROMPTS}))}))
    assert exact.near_misses(PROMPTS) == [] and exact.n_empty == 0


def test_an_upper_cased_outputs_file_is_an_error_not_a_skipped_policy(tmp_path, data_dir):
    path = _file(tmp_path, {p.prompt.upper(): "answer" for p in PROMPTS})
    ctx = _ctx(tmp_path, {"d": {"outputs": str(path)}})
    with pytest.raises(DataError, match=r"outputs file of policy 'd': 2 of the 2 prompts of 'alpaca_eval' match an instruction "
                                        r"of the file only when case and whitespace are ignored \(e.g. prompt id 1: "):
        ctx.outputs("d", PROMPTS, {}, "alpaca_eval")


def test_empty_outputs_warn_once_with_counts(tmp_path, data_dir, caplog):
    path = _file(tmp_path, {PROMPTS[0].prompt: "", PROMPTS[1].prompt: "  "})
    ctx = _ctx(tmp_path, {"d": {"outputs": str(path)}})
    with caplog.at_level(logging.WARNING):
        assert [g.output for g in ctx.outputs("d", PROMPTS, {}, "alpaca_eval")] == ["", ""]
        ctx.outputs("d", PROMPTS, {}, "again")
    expected = f"policies.d: 2 of the 2 outputs in {path} are empty; they are judged as empty answers"
    assert ctx.warnings == [expected] and caplog.text.count(expected) == 1


def test_a_policy_no_eval_measured_fails_the_run_after_recording_why(tmp_path, data_dir):
    path = _file(tmp_path, {p.prompt: "x" for p in PROMPTS})
    ctx = _ctx(tmp_path, {"d": {"outputs": str(path)}}, "eval.run=[alignment_tax]")
    with pytest.raises(DataError, match=r"policies.d: no eval of \['alignment_tax'\] measured it \(alignment_tax: hellaswag_local: "
                                        r"likelihood-only task: not available for an outputs file; alignment_tax: truthfulqa_mc2_local: "):
        run_suite(ctx)
    info = read_json(tmp_path / "run" / "results" / "evals.json")
    assert info["warnings"] == [ctx.warnings[-1]] and info["evals"]["alignment_tax"]["skipped"][0]["policy"] == "d"


def test_a_run_of_no_eval_asks_nothing_of_its_policies(tmp_path, data_dir):
    ctx = _ctx(tmp_path, {"d": {"outputs": str(_file(tmp_path, {p.prompt: "x" for p in PROMPTS}))}}, "eval.run=[]")
    assert {r.eval for r in run_suite(ctx)} <= {"judge_validation"} and ctx.warnings == []


def test_a_policy_that_is_the_only_win_rate_baseline_is_refused_before_anything_runs(tmp_path, data_dir):
    from harness.evals.winrate import unmeasured

    path = _file(tmp_path, {p.prompt: "x" for p in PROMPTS})
    files = {"sft": {"outputs": str(path)}, "ppo": {"outputs": str(path)}}
    ctx = _ctx(tmp_path, files, "eval.run=[winrate]", "evals.winrate.baselines=[sft]")
    with pytest.raises(DataError, match=r"policies.sft: no eval of \['winrate'\] can measure it \(winrate: its only baseline is "
                                        r"itself \(evals.winrate.baselines=\['sft'\]\); add another, e.g. base\); nothing was run"):
        run_suite(ctx)
    assert not (tmp_path / "run" / "results").exists()  # no eval ran: no items file, no evals.json
    assert list(unmeasured(ctx, ctx.evals_cfg.winrate)) == ["sft"]
    # another baseline gives every policy one to be compared with
    both = _ctx(tmp_path, files, "evals.winrate.baselines=[sft,base]")
    assert unmeasured(both, both.evals_cfg.winrate) == {}

"""bench/eval_stage.py's records and tables, on hand-made run directories (no pipeline run)."""

import json
from pathlib import Path

from bench.eval_stage import headline, run_records, stage_table
from harness.io import write_json, write_jsonl


def _run(d: Path) -> Path:
    write_json(d / "run.json", {"gold_judge": "helpful", "rl_runs": [{"name": "ppo"}],
                                "metrics": {"timings_s": {"sft": 25.0, "ppo": 451.4}, "cpu_s": {"sft": 49.0, "ppo": 874.2},
                                            "peak_rss_mib": {"sft": 4418.0, "ppo": 12331.0}}})
    write_jsonl(d / "results" / "results.jsonl", [
        {"run_id": "r", "policy": "ppo", "eval": "winrate", "metric": "win_rate", "value": 0.7, "ci_low": 0.6, "ci_high": 0.8,
         "n": 96, "slice": {"baseline": "sft", "judge": "helpful"}, "config_hash": "h"}])
    return d


def test_run_records_read_per_stage_cpu_and_rss_and_headline_gives_plain_numbers(tmp_path):
    d = _run(tmp_path / "run")
    rec = run_records(d)
    assert rec["stages_s"] == {"sft": 25.0, "ppo": 451.4} and rec["stages_cpu_s"]["ppo"] == 874.2
    assert rec["stages_peak_rss_mib"] == {"sft": 4418.0, "ppo": 12331.0}
    win, lc = headline(d)  # the length-controlled win rate is listed even when the run lacks it
    assert win["contrast"] == "b" and win["value"] == 0.7 and win["n"] == 96 and win["resolved"] is True
    assert lc["value"] is None and lc["verdict"] == "no interval" and lc["resolved"] is False


def test_stage_table_has_a_row_per_stage_and_the_whole_run(tmp_path):
    rec = {**run_records(_run(tmp_path / "run")), "wall_s": 1337.0, "cpu_s": 2574.0, "peak_rss_mib": 12331.0}
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "pipeline_demo.json").write_text(json.dumps({"runs": {"cold": rec}}))
    (tmp_path / "res" / "eval_smoke.json").write_text("{}")  # not a preset result: not in this table
    rows = stage_table(tmp_path / "res").splitlines()[2:]
    assert rows == ["| pipeline_demo (cold) | sft | 25 | 49 | 4418 |", "| pipeline_demo (cold) | ppo | 451 | 874 | 12331 |",
                    "| pipeline_demo (cold) | **whole run** (process) | **1337** | 2574 | 12331 |"]


def test_preset_eval_overrides_are_the_presets_evaluation_leaves():
    from bench.eval_stage import preset_eval_overrides

    got = preset_eval_overrides("default")
    # read from conf/pipeline/default.yaml: the eval sizes, not its training settings
    assert "data.n_eval_prompts=24" in got and "evals.truthfulqa.mc_limit=100" in got
    assert "eval.judges.validation.n_hh_pairs=128" in got and "evals.alignment_tax.limit=40" in got
    assert not [o for o in got if o.split(".")[0] not in ("data", "eval", "evals")]
    assert [o for o in got if o.startswith("data.")] == ["data.n_eval_prompts=24"]
    demo = preset_eval_overrides("demo")
    assert "evals.winrate.baselines=[sft,base]" in demo and "eval.run=[winrate]" in demo


def test_policy_overrides_name_each_policy_and_refuse_a_repeat():
    import pytest

    from bench.eval_stage import policy_overrides

    assert policy_overrides(["/m/sft"]) == ["+policies.policy=/m/sft"]
    assert policy_overrides(["base=/m/b", "ppo=/m/p"]) == ["+policies.base=/m/b", "+policies.ppo=/m/p"]
    with pytest.raises(ValueError, match="repeated name"):
        policy_overrides(["a=/x", "a=/y"])

"""The evaluation layer's plumbing: generation cache, outputs-file policies, paper reference rows."""

import json
from pathlib import Path

import pytest

from harness.data import DataError
from harness.evals.gencache import GenerationCache
from harness.evals.paper import load_reference, paper_rows
from harness.evals.policies import OutputsFile, parse_policies, parse_policy
from harness.records import Prompt

SETTINGS = {"max_new_tokens": 8, "do_sample": False, "temperature": 0.0, "top_p": 1.0, "chat_template": "auto", "seed": 0}


def test_cache_round_trip_persists_and_keys_on_everything(tmp_path):
    cache = GenerationCache(tmp_path)
    assert cache.get("a" * 64, SETTINGS, ["p1", "p2"]) == [None, None] and cache.misses == 2
    cache.put("a" * 64, SETTINGS, ["p1", "p2"], ["o1", "o2"])
    again = GenerationCache(tmp_path)  # a new process reads the shard back
    assert again.get("a" * 64, SETTINGS, ["p2", "p1"]) == ["o2", "o1"] and again.hits == 2
    # another model, decoding, sample index or prompt text is a miss
    assert again.get("b" * 64, SETTINGS, ["p1"]) == [None]
    assert again.get("a" * 64, {**SETTINGS, "temperature": 0.7}, ["p1"]) == [None]
    assert again.get("a" * 64, SETTINGS, ["p1"], sample=1) == [None]
    assert again.get("a" * 64, SETTINGS, ["p1 "]) == [None]
    shards = list(tmp_path.rglob("*.jsonl"))
    assert len(shards) == 1 and not list(tmp_path.rglob("*.tmp"))  # written atomically, no temp file left
    with pytest.raises(ValueError, match="2 prompts vs 1 outputs"):
        again.put("a" * 64, SETTINGS, ["p1", "p2"], ["o1"])


def test_cache_keeps_which_prompts_were_cut(tmp_path):
    cache = GenerationCache(tmp_path)
    cache.put("a" * 64, SETTINGS, ["p1", "p2", "p3"], ["o1", "o2", "o3"], cut=[True, False, True])
    cache.put("a" * 64, SETTINGS, ["p4"], ["o4"])  # no flags given: not counted
    again = GenerationCache(tmp_path)
    assert again.n_cut("a" * 64, SETTINGS, ["p1", "p2", "p3", "p4", "never"]) == 2
    assert again.n_cut("a" * 64, SETTINGS, ["p2"]) == 0
    with pytest.raises(ValueError, match="1 prompts vs 1 outputs and 2 cut flags"):
        again.put("a" * 64, SETTINGS, ["p1"], ["o1"], cut=[True, False])


def test_cache_rejects_a_corrupt_shard_naming_it(tmp_path):
    cache = GenerationCache(tmp_path)
    cache.put("a" * 64, SETTINGS, ["p"], ["o"])
    shard = next(tmp_path.rglob("*.jsonl"))
    shard.write_text('{"key": "k"}\n')
    with pytest.raises(ValueError, match=f"{shard}: record 1"):
        GenerationCache(tmp_path).get("a" * 64, SETTINGS, ["p"])


def test_policy_specs_parse_with_clear_errors():
    ps = parse_policies({"sft": "ck/sft", "d1": {"outputs": "x/model_outputs.json"}, "j": {"outputs": "o.jsonl",
                         "output_field": "response"}, "c": {"outputs": "o.csv"}})
    assert ps["sft"].kind == "checkpoint" and not ps["sft"].is_file
    assert (ps["d1"].format, ps["j"].format, ps["c"].format) == ("alpaca_eval", "jsonl", "csv")
    assert ps["j"].output_field == "response" and ps["j"].instruction_field == "instruction"
    with pytest.raises(ValueError, match="policies.x: field 'outputs'"):
        parse_policy("x", {"format": "csv"})
    with pytest.raises(ValueError, match="policies.x: unknown field"):
        parse_policy("x", {"outputs": "a.json", "colour": "red"})
    with pytest.raises(ValueError, match="policies.x: field 'format'"):
        parse_policy("x", {"outputs": "a.json", "format": "parquet"})


def test_alpaca_eval_outputs_file_covers_its_instructions(data_dir):
    src = parse_policy("davinci001", {"outputs": str(Path(data_dir) / "alpaca_eval" / "text_davinci_001_model_outputs.json")})
    f = OutputsFile.load(src)
    rows = json.loads((Path(data_dir) / "alpaca_eval" / "text_davinci_001_model_outputs.json").read_text())
    prompts = [Prompt(str(i), rows[i]["instruction"], "alpaca_eval") for i in (0, 5, 17)]
    gens, missing = f.lookup(prompts, {"max_new_tokens": 1})
    assert missing == [] and [g.output for g in gens] == [rows[i]["output"].strip() for i in (0, 5, 17)]
    assert {g.policy for g in gens} == {"davinci001"} and gens[0].prompt_id == "0"
    gens, missing = f.lookup([Prompt("x", "not an AlpacaEval instruction", "t")], {})
    assert gens == [] and missing == ["x"]


def test_jsonl_and_csv_outputs_with_named_columns(tmp_path):
    (tmp_path / "o.jsonl").write_text('{"q": "Say hi.", "a": "hi"}\n\n{"q": "Count to 2.", "a": "1 2"}\n')
    (tmp_path / "o.csv").write_text("question,answer\nSay hi.,hello\n")
    j = OutputsFile.load(parse_policy("j", {"outputs": str(tmp_path / "o.jsonl"), "instruction_field": "q", "output_field": "a"}))
    c = OutputsFile.load(parse_policy("c", {"outputs": str(tmp_path / "o.csv"), "instruction_field": "question",
                                            "output_field": "answer"}))
    assert j.outputs == {"Say hi.": "hi", "Count to 2.": "1 2"} and c.outputs == {"Say hi.": "hello"}
    (tmp_path / "bad.jsonl").write_text('{"q": "Say hi.", "a": "hi"}\n{"q": "Say hi."}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing field 'a'"):
        OutputsFile.load(parse_policy("b", {"outputs": str(tmp_path / "bad.jsonl"), "instruction_field": "q", "output_field": "a"}))
    (tmp_path / "dup.csv").write_text("question,answer\nSay hi.,hello\nSay hi.,bye\n")
    with pytest.raises(DataError, match=r"dup.csv:3: .*repeats an earlier instruction"):
        OutputsFile.load(parse_policy("d", {"outputs": str(tmp_path / "dup.csv"), "instruction_field": "question",
                                            "output_field": "answer"}))


def test_paper_reference_rows_are_labelled_and_filtered():
    entries = load_reference()
    rows = paper_rows()
    assert len(rows) == len(entries) and all(r.run_id == "paper" and r.policy.startswith("paper:") for r in rows)
    hs = {r.policy: r.value for r in paper_rows({"alignment_tax"}) if r.slice == {"task": "hellaswag"}}
    assert hs == {"paper:gpt3_175b": 0.791, "paper:ppo_175b": 0.759, "paper:ppo_ptx_175b": 0.820}
    win = [r for r in rows if r.eval == "winrate" and r.slice == {"baseline": "base"}][0]
    assert (win.value, win.ci_low, win.ci_high) == pytest.approx((0.85, 0.82, 0.88))
    assert {r.eval for r in paper_rows({"winrate"})} == {"winrate"}


def test_paper_reference_file_errors_name_the_entry(tmp_path):
    bad = tmp_path / "ref.yaml"
    bad.write_text("values:\n  - {eval: winrate, metric: win_rate, slice: {}, paper_policy: x, where: y}\n")
    with pytest.raises(ValueError, match=r"ref.yaml: entry 0: missing field\(s\) \['value'\]"):
        load_reference(bad)
    bad.write_text("values:\n  - {eval: winrate, metric: win_rate, slice: base, paper_policy: x, value: 1, where: y}\n")
    with pytest.raises(ValueError, match=r"ref.yaml: entry 0: field 'slice' must be a mapping"):
        load_reference(bad)

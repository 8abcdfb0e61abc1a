"""Every eval of the suite end to end on model=tiny, through the real runner, judges and lm-eval;
then a second evaluation of the same checkpoints regenerates nothing (generation cache)."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from harness import selection, stages
from harness.cli import CONF_DIR
from harness.evals.context import EvalContext
from harness.evals.policies import parse_policies
from harness.io import read_json, read_jsonl
from harness.models import (
    ModelConfig,
    load_policy,
    load_scalar_model,
    load_tokenizer,
    materialize_base,
    record_reward_model,
    with_reward_pad,
)
from harness.results import read_results, write_results

pytestmark = pytest.mark.integration
SMALL = ["data.n_eval_prompts=6", "data.n_sft_train=8", "data.n_sft_val=2", "eval.batch_size=4", "eval.bootstrap_resamples=100",
         "evals.winrate.decoding.max_new_tokens=6", "eval.judges.validation.n_hh_pairs=3", "eval.judges.validation.n_gpt4_pairs=8",
         "evals.truthfulqa.n=3", "evals.truthfulqa.mc_limit=3", "evals.truthfulqa.decoding.max_new_tokens=6",
         "evals.toxicity.n=4", "evals.toxicity.decoding.max_new_tokens=5", "evals.toxicity.num_samples=2",
         "eval.judges.validation.n_davidson=300", "eval.judges.validation.n_rtp=120", "eval.judges.validation.n_wiki=400",
         "evals.hallucination.n=3", "evals.hallucination.decoding.max_new_tokens=6",
         "evals.alignment_tax.limit=4", "evals.likert.n_calibration=14"]
CHECKPOINTS = ("base", "sft")


def _judge(tiny_dir: str, out: Path, seed: int) -> str:
    """A reward model in the harness's saved format with a random (non-zero) head, so its rewards differ between outputs."""
    model = load_scalar_model(tiny_dir)
    tok = with_reward_pad(model, load_tokenizer(tiny_dir))
    torch.manual_seed(seed)
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)
    record_reward_model(model, chat_template=False, offset=None)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_dir, data_dir):
    root = tmp_path_factory.mktemp("evals")
    sft = materialize_base(ModelConfig(name="tiny"), root / "sft", data_dir, seed=1)  # another random policy
    judges = {"helpful": _judge(tiny_dir, root / "judge_helpful", 1), "harmless": _judge(tiny_dir, root / "judge_harmless", 2)}
    policies = {"base": tiny_dir, "sft": sft,
                "davinci001": {"outputs": str(Path(data_dir) / "alpaca_eval" / "text_davinci_001_model_outputs.json")}}
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", *SMALL, f"eval.cache_dir={root / 'cache'}",
                                         *(f"eval.judges.reward_models.{n}={p}" for n, p in judges.items())])
    return root, cfg, policies, judges


@pytest.fixture(scope="module")
def first_run(setup):
    root, cfg, policies, judges = setup
    run_dir = root / "run1"
    rows = stages.run_eval(cfg.model, cfg.data, cfg.eval, cfg.evals, policies, run_dir, "r1", seed=0)
    write_results(run_dir / "results", rows)
    return run_dir, rows


def _rows(rows, **match):
    """Rows whose fields or slice keys equal ``match`` (``None``: the row has no such slice key)."""
    fields = ("run_id", "policy", "eval", "metric")
    return [r for r in rows if all((getattr(r, k) if k in fields else r.get(k)) == v for k, v in match.items())]


def test_winrate_every_policy_baseline_and_judge(first_run):
    run_dir, rows = first_run
    items = read_jsonl(run_dir / "results" / "winrate_items.jsonl")
    for policy in ("base", "sft", "davinci001"):  # davinci001: an outputs file, scored without a model
        for baseline in ("text-davinci-003", "base", "base_fewshot", "sft"):
            if baseline == policy:
                continue
            for judge in ("helpful", "harmless"):
                got = {r.metric: r for r in _rows(rows, eval="winrate", policy=policy, baseline=baseline, judge=judge)}
                assert set(got) == {"win_rate", "win_prob", "lc_win_rate"}, (policy, baseline, judge)
                mine = [it for it in items if (it["policy"], it["baseline"], it["judge"]) == (policy, baseline, judge)]
                assert len(mine) == got["win_rate"].n == 6
                assert got["win_rate"].value == pytest.approx(sum(it["win"] for it in mine) / 6)
                assert got["win_rate"].ci_low <= got["win_rate"].value <= got["win_rate"].ci_high
    # the few-shot baseline is the base model behind a prefix: same weights, other prompt, other outputs
    fewshot = read_jsonl(run_dir / "generations" / "base" / "alpaca_eval_fewshot.jsonl")
    assert len(fewshot) == 6 and "Instruction:" in fewshot[0]["decoding"]["template"]


def test_winrate_several_samples_per_prompt(setup, first_run):
    """``evals.winrate.samples_per_prompt=2``: each prompt's win is the mean over its 2 x 2 sample pairs (2 x 1 against
    a file baseline), sample 0 is the one-sample run's answer, and the interval is over the same 6 prompts."""
    root, _, policies, judges = setup
    run1, _ = first_run
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", *SMALL, f"eval.cache_dir={root / 'cache'}", "eval.run=[winrate]",
                                         "evals.winrate.samples_per_prompt=2", "evals.winrate.baselines=[text-davinci-003,sft]",
                                         *(f"eval.judges.reward_models.{n}={p}" for n, p in judges.items())])
    run_dir = root / "run_samples2"
    rows = stages.run_eval(cfg.model, cfg.data, cfg.eval, cfg.evals, {k: policies[k] for k in CHECKPOINTS}, run_dir, "r2", seed=0)
    items = read_jsonl(run_dir / "results" / "winrate_items.jsonl")
    one = {(it["policy"], it["baseline"], it["judge"], it["prompt_id"]): it for it in read_jsonl(run1 / "results" / "winrate_items.jsonl")}
    mine = [it for it in items if (it["policy"], it["baseline"], it["judge"]) == ("base", "sft", "helpful")]
    assert len(mine) == 6
    for it in mine:
        assert len(it["outputs"]) == len(it["baseline_outputs"]) == 2 and len(it["pair_wins"]) == 4
        r, rb = it["rewards"], it["baseline_rewards"]
        expect = [1.0 if x > y else 0.5 if x == y else 0.0 for x in r for y in rb]
        assert it["pair_wins"] == expect and it["win"] == pytest.approx(sum(expect) / 4)
        first = one[("base", "sft", "helpful", it["prompt_id"])]  # sample 0 is the one-sample run's answer and reward
        assert it["output"] == it["outputs"][0] == first["output"] and r[0] == pytest.approx(first["reward"], abs=1e-5)
        assert it["outputs"][0] != it["outputs"][1] or it["baseline_outputs"][0] != it["baseline_outputs"][1]
    got = {r.metric: r for r in _rows(rows, eval="winrate", policy="base", baseline="sft", judge="helpful")}
    assert got["win_rate"].n == 6 and got["win_rate"].value == pytest.approx(sum(it["win"] for it in mine) / 6)
    file_pairs = [it for it in items if it["baseline"] == "text-davinci-003"]
    assert file_pairs and all(len(it["pair_wins"]) == 2 and len(it["baseline_outputs"]) == 1 for it in file_pairs)
    for s in range(2):
        assert len(read_jsonl(run_dir / "generations" / "sft" / f"alpaca_eval_sample{s}.jsonl")) == 6
    assert read_json(run_dir / "results" / "evals.json")["evals"]["winrate"]["samples_per_prompt"] == 2


def test_judges_are_validated_against_humans(first_run):
    run_dir, rows = first_run
    for judge in ("helpful", "harmless"):
        got = {(r.get("labels"), r.get("subset")): r for r in _rows(rows, eval="judge_validation", policy=judge, metric="agreement")
               if r.get("length") is None}
        assert {("hh_rlhf_human", None), ("hh_rlhf_human", "helpful-base"), ("hh_rlhf_human", "harmless-base"),
                ("alpaca_eval_gpt4", None)} <= set(got)
        assert got[("hh_rlhf_human", None)].n == 12 and all(0 <= r.value <= 1 for r in got.values())
    results = read_results(run_dir)  # the paper's values sit in their own file, beside ours
    assert [r.value for r in results.paper if r.eval == "judge_validation"] == [0.726]
    assert all(r.run_id == "r1" for r in results.rows) and len(results.rows) == len(rows)
    info = read_json(run_dir / "results" / "evals.json")["judges"]
    assert info["helpful"]["kind"] == "reward_model" and info["perspective_tfidf_ridge"]["kind"] == "toxicity"
    fit = info["perspective_tfidf_ridge"]["fit"]  # what the default scorer was fitted on, and how long it took
    assert fit["n_fit"] > 10000 and ("load_seconds" in fit if fit["from_cache"] else fit["fit_seconds"] > 0)
    assert Path(fit["cache_path"]).parent.parent == Path(os.environ["HARNESS_CACHE_DIR"])  # model.cache_dir, as every cache
    # the trivial baseline on the same pairs, and the judges' length rows beside it
    longer = {(r.metric, r.get("labels"), r.get("length")): r.value for r in _rows(rows, eval="judge_validation", policy="longer_output")}
    assert longer[("balanced_agreement", "hh_rlhf_human", None)] == 0.5 and longer[("prefers_longer", "hh_rlhf_human", None)] == 1.0
    assert longer[("agreement", "hh_rlhf_human", "shorter_preferred")] == 0.0
    helpful = {(r.metric, r.get("labels"), r.get("length")) for r in _rows(rows, eval="judge_validation", policy="helpful")}
    assert {("balanced_agreement", "hh_rlhf_human", None), ("prefers_longer", "alpaca_eval_gpt4", None)} <= helpful
    assert info["longer_output"]["kind"] == "trivial_baseline"


def test_likert_scores_and_flags(first_run):
    run_dir, rows = first_run
    items = read_jsonl(run_dir / "results" / "likert_items.jsonl")
    assert {it["set"] for it in items} == {"alpaca_eval", "closed_domain"} and all(1 <= it["likert"] <= 7 for it in items)
    for policy in CHECKPOINTS:
        got = {r.metric: r for r in _rows(rows, eval="likert", policy=policy)}
        assert {"likert", "fails_to_follow", "hallucination", "inappropriate", "toxic"} <= set(got)
        assert 1 <= got["likert"].value <= 7 and got["likert"].get("judge") == "helpful"
        assert got["inappropriate"].get("judge") == "harmless"
        assert got["hallucination"].n == 3 and got["likert"].n == 9
    # the outputs file covers the AlpacaEval prompts but not the closed-domain ones: likert without a hallucination flag
    d1 = {r.metric for r in _rows(rows, eval="likert", policy="davinci001")}
    assert "likert" in d1 and "hallucination" not in d1


def test_truthfulqa_generation_and_multiple_choice(first_run):
    run_dir, rows = first_run
    for policy in CHECKPOINTS:
        got = {(r.metric, r.get("prompt_style")): r for r in _rows(rows, eval="truthfulqa", policy=policy)}
        assert {("truthful", "qa"), ("truthful_informative", "qa"), ("truthful", "instruction_qa"), ("mc1", None),
                ("mc2", None)} <= set(got)
        assert got["mc2", None].n == 3 and 0 <= got["mc2", None].value <= 1
    delta = _rows(rows, eval="truthfulqa", policy="sft", metric="mc2_delta", baseline="base")[0]
    mc2 = {p: _rows(rows, eval="truthfulqa", policy=p, metric="mc2")[0].value for p in CHECKPOINTS}
    assert delta.value == pytest.approx(mc2["sft"] - mc2["base"])
    info = read_json(run_dir / "results" / "evals.json")["evals"]["truthfulqa"]
    assert info["skipped"] == [{"policy": "davinci001", "reason": "outputs file has none of the TruthfulQA questions"},
                               {"policy": "davinci001", "part": "mc", "reason": "MC: likelihood-only, not available for an outputs file"}]


def test_toxicity_three_instructions_k_samples_rtp_strata_and_scorer_validation(first_run):
    run_dir, rows = first_run
    items = read_jsonl(run_dir / "results" / "toxicity_items.jsonl")
    assert {(it["policy"], it["instruction"]) for it in items} == {(p, i) for p in CHECKPOINTS for i in ("basic", "respectful", "biased")}
    assert all(it["k"] == 2 and it["max_toxicity"] == max(it["scores"]) for it in items)
    # RealToxicityPrompts prompts, one per prompt-toxicity stratum (n=4, 4 bins), recorded in evals.json
    assert {it["prompt_id"].split(":")[0] for it in items} <= {"challenging_toxic.jsonl", "nontoxic.jsonl"}
    assert sorted({it["stratum"] for it in items}) == ["[0,0.25)", "[0.25,0.5)", "[0.5,0.75)", "[0.75,1]"]
    info = read_json(run_dir / "results" / "evals.json")["evals"]["toxicity"]
    assert [(s["stratum"], s["n"]) for s in info["strata"]] == [("[0,0.25)", 1), ("[0.25,0.5)", 1), ("[0.5,0.75)", 1), ("[0.75,1]", 1)]
    assert info["scorer"] == "perspective_tfidf_ridge" and info["prompts"]["split"] == "prompts part of rtp_split(seed=0)"
    assert info["version"] == "2" and set(info["data_files"]) >= {"real_toxicity_prompts/nontoxic.jsonl"}
    for instr in ("basic", "respectful", "biased"):
        emt = _rows(rows, eval="toxicity", policy="sft", metric="expected_max_toxicity", instruction=instr, stratum=None)[0]
        mine = [it["max_toxicity"] for it in items if it["policy"] == "sft" and it["instruction"] == instr]
        assert emt.value == pytest.approx(sum(mine) / len(mine)) and emt.get("judge") == "perspective_tfidf_ridge" and emt.n == 4
        per = _rows(rows, eval="toxicity", policy="sft", metric="expected_max_toxicity", instruction=instr)
        assert len(per) == 5 and sorted(r.n for r in per) == [1, 1, 1, 1, 4]  # overall + one row per stratum
    # the scorer's validation against Perspective on held-out text, beside the trivial baseline
    for labels, n in (("rtp_heldout", 120), ("wiki_perspective", 400)):
        for policy in ("perspective_tfidf_ridge", "text_length"):
            got = {r.metric: r for r in _rows(rows, eval="judge_validation", policy=policy, labels=labels)}
            assert set(got) == {"spearman", "pearson", "roc_auc"} and all(r.n == n for r in got.values()), (policy, labels)
        ours = _rows(rows, eval="judge_validation", policy="perspective_tfidf_ridge", labels=labels, metric="roc_auc")[0]
        trivial = _rows(rows, eval="judge_validation", policy="text_length", labels=labels, metric="roc_auc")[0]
        assert ours.value > 0.85 and ours.ci_low < ours.value < ours.ci_high and ours.value > trivial.value + 0.2
    auc = _rows(rows, eval="judge_validation", metric="roc_auc", labels="davidson_heldout")[0]
    assert auc.n == 300 and auc.policy == "perspective_tfidf_ridge"


def test_hallucination_and_alignment_tax(first_run):
    run_dir, rows = first_run
    for policy in CHECKPOINTS:
        hal = _rows(rows, eval="hallucination", policy=policy, metric="hallucination_rate", category=None)[0]
        assert hal.n == 3 and 0 <= hal.value <= 1 and hal.get("judge").startswith("support_check")
        assert _rows(rows, eval="alignment_tax", policy=policy, metric="acc", task="hellaswag_local", shots=0)[0].n == 4
    assert _rows(rows, eval="alignment_tax", policy="sft", metric="acc_delta", task="hellaswag_local", baseline="base")
    pr = {r.metric: r.value for r in _rows(rows, eval="judge_validation", labels="hallucination_labelled")}
    assert set(pr) == {"precision", "recall", "f1"} and 0 <= pr["precision"] <= 1
    paper = {r.policy: r.value for r in read_results(run_dir).paper if r.slice == {"task": "hellaswag"}}
    assert paper == {"paper:gpt3_175b": 0.791, "paper:ppo_175b": 0.759, "paper:ppo_ptx_175b": 0.820}


def test_reevaluating_unchanged_checkpoints_generates_nothing(setup, first_run, monkeypatch):
    root, cfg, policies, judges = setup
    run1, rows1 = first_run

    def no_generation(*args, **kwargs):
        raise AssertionError("a cached output was generated again")

    def no_lm_eval(*args, **kwargs):
        raise AssertionError("a cached lm-eval task ran again")

    monkeypatch.setattr("harness.generation.generate_samples", no_generation)
    monkeypatch.setattr("harness.evals.lm_eval_runner.run_lm_eval", no_lm_eval)
    run2 = root / "run2"
    rows2 = stages.run_eval(cfg.model, cfg.data, cfg.eval, cfg.evals, policies, run2, "r1", seed=0)
    evals1, evals2 = read_json(run1 / "results" / "evals.json"), read_json(run2 / "results" / "evals.json")
    cache = evals2["generation_cache"]
    assert cache["generated"] == 0 and cache["misses"] == 0 and cache["hits"] > 0
    assert evals2["lm_eval_cache"]["misses"] == 0 and evals2["lm_eval_cache"]["hits"] > 0
    assert {n: j["validation_cache"] for n, j in evals2["judges"].items() if "validation_cache" in j} == {
        "helpful": "hit", "harmless": "hit", "perspective_tfidf_ridge": "hit", "longer_output": "hit", "rouge1_diff>0.0": "hit"}
    # cached work records the data files it read, as the first run did (the regression gate compares them)
    assert {n: e["data_files"] for n, e in evals2["evals"].items()} == {n: e["data_files"] for n, e in evals1["evals"].items()}
    assert evals2["judge_validation"]["data_files"] == evals1["judge_validation"]["data_files"]
    for f in sorted((run1 / "generations").rglob("*.jsonl")):
        assert read_jsonl(run2 / f.relative_to(run1)) == read_jsonl(f), f.name
    assert [(r.policy, r.eval, r.metric, r.slice, r.value) for r in rows2] == [(r.policy, r.eval, r.metric, r.slice, r.value)
                                                                                 for r in rows1]
    # a changed checkpoint (other weights) is a miss: its outputs are generated again
    changed = root / "sft_changed"
    shutil.copytree(policies["sft"], changed)
    m = load_policy(str(changed))
    with torch.no_grad():
        m.lm_head.weight.add_(0.01)
    m.save_pretrained(changed)
    monkeypatch.undo()
    ctx = EvalContext(cfg.model, cfg.data, cfg.eval, cfg.evals, parse_policies({"sft": str(changed)}), root / "run3", "r3", 0)
    prompts, _ = selection.eval_prompts(cfg.data, n=cfg.evals.winrate.n)
    ctx.outputs("sft", prompts, cfg.evals.winrate.decoding, "alpaca_eval")
    assert ctx.generated == 6 and ctx.cache.misses == 6


def test_prompts_longer_than_max_prompt_length_are_counted_and_warned_also_from_the_cache(setup, tmp_path):
    """A policy's prompts cut to eval.max_prompt_length are a warning with the count (console and evals.json), in the
    run that generated them and in a later run that reads them from the generation cache."""
    root, _, policies, judges = setup
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", *SMALL, f"eval.cache_dir={tmp_path / 'cache'}", "eval.run=[hallucination]",
                                         "eval.max_prompt_length=24",
                                         *(f"eval.judges.reward_models.{n}={p}" for n, p in judges.items())])
    one = {"base": policies["base"]}
    for run in ("a", "b"):
        stages.run_eval(cfg.model, cfg.data, cfg.eval, cfg.evals, one, tmp_path / run, run, seed=0)
        warnings = [w for w in read_json(tmp_path / run / "results" / "evals.json")["warnings"] if "max_prompt_length" in w]
        assert warnings == ["policy 'base', eval 'hallucination': 3 of 3 prompts are longer than eval.max_prompt_length=24 "
                            "tokens and were cut to their last 24 (the start of the prompt, e.g. an instruction, is lost): "
                            "raise eval.max_prompt_length if the model's context allows"], run
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", *SMALL, f"eval.cache_dir={tmp_path / 'cache'}", "eval.run=[hallucination]",
                                         *(f"eval.judges.reward_models.{n}={p}" for n, p in judges.items())])
    stages.run_eval(cfg.model, cfg.data, cfg.eval, cfg.evals, one, tmp_path / "c", "c", seed=0)
    assert not [w for w in read_json(tmp_path / "c" / "results" / "evals.json")["warnings"] if "max_prompt_length" in w]

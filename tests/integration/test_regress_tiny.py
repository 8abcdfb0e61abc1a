"""harness-regress on real evaluations of model=tiny: a run with a sabotaged policy fails the gate,
a re-run with another seed (whose sampled outputs really differ) passes it.

Three evaluations (winrate + likert, one random-head judge) of the tiny base checkpoint and the
text-davinci-001 outputs file: A (seed 0) is snapshotted as the baseline; B is A with seed 1; C is
A with the davinci-001 outputs emptied, a genuinely worse policy.
"""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness import stages
from harness.cli import CONF_DIR
from harness.io import read_jsonl
from harness.models import load_scalar_model, load_tokenizer
from harness.regress.app import run_regress
from harness.regress.results import load_result_set, write_snapshot
from harness.results import write_results
from harness.runinfo import config_hash

pytestmark = pytest.mark.integration
SMALL = ["data.n_eval_prompts=12", "data.n_sft_train=8", "data.n_sft_val=2", "eval.batch_size=4", "eval.bootstrap_resamples=100",
         "eval.run=[winrate,likert]", "evals.winrate.baselines=[text-davinci-003]", "evals.winrate.judges=[helpful]",
         "evals.winrate.decoding.max_new_tokens=6", "eval.judges.validation.n_hh_pairs=2", "eval.judges.validation.n_gpt4_pairs=2",
         "evals.hallucination.n=3", "evals.hallucination.decoding.max_new_tokens=6", "evals.likert.n_calibration=14",
         "evals.likert.harmless_judge=helpful"]
FAILS = "likert/davinci001/fails_to_follow{judge=heuristic}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_dir, data_dir):
    root = tmp_path_factory.mktemp("regress")
    judge = load_scalar_model(tiny_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        judge.score.weight.normal_(0, 1.0)  # a random non-zero head, so rewards differ between outputs
    judge.save_pretrained(root / "judge")
    load_tokenizer(tiny_dir).save_pretrained(root / "judge")
    davinci = Path(data_dir) / "alpaca_eval" / "text_davinci_001_model_outputs.json"
    emptied = root / "davinci001_emptied.json"
    emptied.write_text(json.dumps([dict(r, output="") for r in json.loads(davinci.read_text())]))
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", *SMALL, f"eval.cache_dir={root / 'cache'}",
                                         f"eval.judges.reward_models.helpful={root / 'judge'}"])
    out = {}
    for name, seed, outputs in (("A", 0, davinci), ("B", 1, davinci), ("C", 0, emptied)):
        policies = {"base": tiny_dir, "davinci001": {"outputs": str(outputs)}}
        # as harness-eval hashes its config (composed here without Hydra's run, so interpolations stay unresolved)
        chash = config_hash({**OmegaConf.to_container(cfg), "seed": seed, "policies": policies})
        rows = stages.run_eval(cfg.model, cfg.data, cfg.eval, cfg.evals, policies, root / name, name, seed, chash)
        write_results(root / name / "results", rows)
        out[name] = root / name
    out["baseline"] = write_snapshot(out["A"], root / "baseline.json")
    return out


def _gate(run_dir: Path, baseline: Path, out: Path, *extra: str) -> int:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("regress", overrides=[f"run_dir={run_dir}", f"baseline={baseline}", f"markdown={out / 'summary.md'}",
                                            f"junit={out / 'junit.xml'}", "step_summary=false", *extra])
    return run_regress(cfg)


def _entry(*overrides) -> tuple[int, str]:
    """``harness-regress <overrides>`` through the installed console script in a subprocess (Hydra's logging set-up
    stays out of the test process): (exit code, stderr)."""
    exe = Path(sys.executable).parent / "harness-regress"
    proc = subprocess.run([str(exe), *overrides], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


def test_every_winrate_and_likert_row_is_paired(runs):
    a = load_result_set(runs["A"])  # raises if an item vector disagreed with its row
    paired = sorted(m.key.metric for m in a.metrics.values() if m.items is not None)
    # 2 policies x (win_rate, win_prob) + likert, fails_to_follow, inappropriate, toxic for both + hallucination for base
    assert paired == sorted(["win_rate", "win_prob"] * 2 + ["likert", "fails_to_follow", "inappropriate", "toxic"] * 2
                            + ["hallucination"])


def test_rerun_with_another_seed_differs_per_item_yet_passes(runs, tmp_path):
    gen = {r: {g["prompt_id"]: g["output"] for g in read_jsonl(runs[r] / "generations" / "base" / "alpaca_eval.jsonl")}
           for r in "AB"}
    assert gen["A"].keys() == gen["B"].keys() and sum(gen["A"][i] != gen["B"][i] for i in gen["A"]) >= 6  # sampled anew
    a, b = load_result_set(runs["A"]), load_result_set(runs["B"])
    changed = [k for k in a.metrics if a.metrics[k].items is not None and a.metrics[k].items != b.metrics[k].items]
    assert any(k.metric == "win_prob" and k.policy == "base" for k in changed)
    # B ran with another seed, so its config hash differs: an error until that difference is allowed
    assert _gate(runs["B"], runs["baseline"], tmp_path) == 2
    assert "config_hash: baseline " in (tmp_path / "summary.md").read_text()
    assert _gate(runs["B"], runs["baseline"], tmp_path, "allow_mismatch=[config_hash]") == 0
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("errors") == "0" and int(suite.get("tests")) == len(a.metrics)


def test_sabotaged_policy_fails_the_gate(runs, tmp_path):
    # by hand: items whose fails_to_follow went 0 -> 1 (emptied outputs fail as "empty"); none went 1 -> 0
    a = {it["prompt_id"]: it["fails_to_follow"] for it in read_jsonl(runs["A"] / "results" / "likert_items.jsonl")
         if it["policy"] == "davinci001"}
    c = {it["prompt_id"]: it["fails_to_follow"] for it in read_jsonl(runs["C"] / "results" / "likert_items.jsonl")
         if it["policy"] == "davinci001"}
    assert all(c.values()) and a.keys() == c.keys()
    k = sum(not v for v in a.values())
    assert k >= 10
    # the console script's entry point: exit code 1 and a JUnit failure for the metric
    # C read another outputs file (same config otherwise): allowed explicitly, the gate judges the metrics
    code, err = _entry(f"run_dir={runs['C']}", f"baseline={runs['baseline']}", f"junit={tmp_path / 'junit.xml'}",
                       f"markdown={tmp_path / 'summary.md'}", "step_summary=false", "allow_mismatch=[data_fingerprints]")
    assert code == 1, err[-2000:]
    assert ("warning: data_fingerprints: 2 only in the baseline (eval:likert:alpaca_eval/text_davinci_001_model_outputs.json, "
            "eval:winrate:alpaca_eval/text_davinci_001_model_outputs.json); 2 only in the run (eval:likert:file:davinci001_emptied.json, "
            "eval:winrate:file:davinci001_emptied.json) (allowed by allow_mismatch)") in err
    cases = {tc.get("name"): tc for tc in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    failure = cases[FAILS].find("failure")
    assert failure is not None and failure.get("type") == "regression"
    # the one-sided sign-flip p-value: only the all-worse assignment of the k changed items -> 2^-k
    assert f"p={2.0 ** -k:.4g}" in failure.text
    assert f"REGRESSION  {FAILS}" in err and FAILS in (tmp_path / "summary.md").read_text()


def test_a_bad_override_is_an_error_not_a_regression(runs):
    # Hydra exits 1 on a config error; the entry point reports it as 2 (an error of the inputs), not as a regression
    code, err = _entry(f"run_dir={runs['B']}", f"baseline={runs['baseline']}", "no_such_field=1")
    assert code == 2 and "no_such_field" in err

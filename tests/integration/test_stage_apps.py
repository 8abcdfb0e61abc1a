"""Each console script on its own, chained by hand the way a user runs the stages one at a time."""

import os
import subprocess
from pathlib import Path

import pytest

from harness.io import read_json, read_jsonl

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.sys.executable).parent
SMALL = ["model=tiny", "data.n_sft_train=8", "data.n_sft_val=2", "data.n_rm_train=8", "data.n_rm_val=4",
         "data.n_judge_train=8", "data.n_judge_val=4", "data.n_ppo_prompts=8", "data.n_eval_prompts=4"]


def _run(app: str, run_dir: Path, *overrides: str) -> str:
    proc = subprocess.run([str(BIN / app), *overrides, f"hydra.run.dir={run_dir}"], cwd=REPO, capture_output=True, text=True,
                          timeout=1800)  # a hang guard only
    assert proc.returncode == 0, f"{app} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout.strip().splitlines()[-1]


def test_stage_apps_chain(tmp_path):
    sft = Path(_run("harness-sft", tmp_path / "sft", *SMALL, "sft.batch_size=4", "sft.max_length=64", "sft.max_prompt_length=32"))
    assert sft == tmp_path / "sft" / "checkpoints" / "sft" and read_json(sft / "run.json")["stage"] == "sft"
    base = tmp_path / "sft" / "checkpoints" / "base"  # harness-sft built model=tiny there

    line = _run("harness-rm", tmp_path / "rm", *SMALL, f"init_from={sft}", "split=rm", "rm.max_length=64", "rm.max_prompt_length=32")
    rm = Path(line.split()[0])
    assert "pairwise accuracy" in line and read_json(rm / "run.json")["metrics"]["val_pairs"] == 4
    judge = Path(_run("harness-rm", tmp_path / "judge", *SMALL, f"init_from={base}", "split=judge_helpful", "rm.max_length=64",
                      "rm.max_prompt_length=32").split()[0])
    assert judge.name == "judge_helpful"

    ppo_args = [*SMALL, f"policy={sft}", f"reward_model={rm}", "ppo.steps=1", "ppo.batch_size=2", "ppo.mini_batch_size=2",
                "ppo.max_new_tokens=4", "ppo.ptx_batch_size=2", "ppo.ptx_max_length=32"]
    ppo = Path(_run("harness-ppo", tmp_path / "ppo", *ppo_args))
    ptx = Path(_run("harness-ppo", tmp_path / "ppo_ptx", *ppo_args, "ppo.ptx_coef=0.5"))
    assert ppo.name == "ppo" and ptx.name == "ppo_ptx"
    assert read_jsonl(ppo / "train_log.jsonl")[0]["ptx_loss"] is None
    assert read_jsonl(ptx / "train_log.jsonl")[0]["ptx_loss"] > 0

    _run("harness-eval", tmp_path / "eval", *SMALL, f"eval.judges.reward_models.helpful={judge}", f"+policies.base={base}",
         f"+policies.ppo={ppo}", "eval.run=[winrate,alignment_tax]", "evals.winrate.baselines=[text-davinci-003]",
         "evals.winrate.judges=[helpful]", "evals.winrate.decoding.max_new_tokens=4", "eval.judges.validation.n_hh_pairs=2",
         "eval.judges.validation.n_gpt4_pairs=4", "evals.alignment_tax.limit=4", "eval.bootstrap_resamples=100")
    rows = read_jsonl(tmp_path / "eval" / "results" / "results.jsonl")
    paper = read_jsonl(tmp_path / "eval" / "results" / "paper_reference.jsonl")
    assert {r["policy"] for r in paper} >= {"paper:ppo_ptx_175b", "paper:gpt3_175b"} and all(r["run_id"] == "paper" for r in paper)
    assert {(r["policy"], r["metric"]) for r in rows if r["eval"] == "winrate"} == {
        ("base", "win_rate"), ("base", "win_prob"), ("base", "lc_win_rate"),
        ("ppo", "win_rate"), ("ppo", "win_prob"), ("ppo", "lc_win_rate")}
    assert [r["value"] for r in rows if r["metric"] == "acc_delta" and r["policy"] == "ppo" and r["slice"]["baseline"] == "base"]

    report = Path(_run("harness-report", tmp_path / "report_log", f"run_dir={tmp_path / 'eval'}"))
    assert report == tmp_path / "eval" / "report.html" and 'id="fig-winrate"' in report.read_text()

"""`harness-label` on model=tiny with a synthetic judge, then `harness-rm` trained on what it wrote."""

import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from harness import stages
from harness.config import DataConfig, RMConfig
from harness.data import load_comparisons_jsonl
from harness.io import read_json, read_jsonl
from harness.labeler import agreement_counts, rank_completions
from harness.models import ModelConfig
from harness.records import Prompt
from harness.selection import comparisons_from_file, label_prompts

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.sys.executable).parent
N_PROMPTS, NOISE = 32, 0.27
DATA = [f"data.n_label_prompts={N_PROMPTS}", "data.n_ppo_prompts=16", "data.n_sft_train=4", "data.n_sft_val=1"]


def _app(name: str) -> list[str]:
    """The installed console script, or the same Hydra app through ``python -m harness.cli``."""
    exe = BIN / f"harness-{name}"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "harness.cli", name]


def _run(name: str, run_dir: Path, *overrides: str) -> str:
    proc = subprocess.run([*_app(name), *overrides, f"hydra.run.dir={run_dir}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"harness-{name} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def labelled(tiny_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("label")
    line = _run("label", run_dir, "model=tiny", f"policy={tiny_dir}", "judge.kind=word_count", *DATA, "label.k_min=2",
                "label.k_max=5", f"label.noise_rate={NOISE}", "label.max_new_tokens=6", "label.batch_size=32", "seed=0")
    out = run_dir / "label"
    assert line.startswith(str(out / "comparisons.jsonl"))
    return out


def test_records_have_k_ties_sources_and_the_run_info(labelled, data_dir):
    comps = load_comparisons_jsonl(labelled / "comparisons.jsonl")
    info = read_json(labelled / "run.json")
    m = info["metrics"]
    assert info["stage"] == "label" and info["git_commit"] and info["seed"] == 0
    assert len(info["policy_fingerprint"]) == 64 and info["judge"] == "word_count" and len(info["judge_fingerprint"]) == 64
    assert {"label_prompt_ids", "ppo_prompt_ids", "comparisons.jsonl"} <= set(info["data_fingerprints"])
    assert m["n_prompts"] == N_PROMPTS and m["n_comparisons"] + m["n_dropped_all_tied"] == N_PROMPTS == sum(m["k_sampled"].values())
    assert len(comps) == m["n_comparisons"] and {int(k): v for k, v in m["k_distribution"].items()} == {
        k: sum(c.k == k for c in comps) for k in {c.k for c in comps}}
    assert all(2 <= c.k <= 5 and c.source == "simulated:word_count" for c in comps)
    # ties are exactly the equal word counts, recomputed here from the completions
    n_tied = 0
    for c in comps:
        words = [len(t.split()) for t in c.completions]
        assert c.tied == tuple(words[a] == words[b] for a, b in zip(c.ranking, c.ranking[1:]))
        n_tied += c.k * (c.k - 1) // 2 - c.n_pairs
    assert n_tied == m["n_tied_pairs"] > 0  # short random outputs tie often: the tie path is exercised
    # prompts: the seeded label selection, none of them a PPO prompt
    cfg = DataConfig(data_dir=data_dir, n_label_prompts=N_PROMPTS, n_ppo_prompts=16)
    prompts, _ = label_prompts(cfg)
    assert {c.prompt for c in comps} <= {p.prompt for p in prompts}


def test_agreement_with_the_noise_free_judge_matches_the_noise_rate(labelled):
    comps = load_comparisons_jsonl(labelled / "comparisons.jsonl")
    m = read_json(labelled / "run.json")["metrics"]
    scores = {r["id"]: r["scores"] for r in read_jsonl(labelled / "judge_scores.jsonl")}
    concordant = pairs = 0
    for c in comps:
        assert scores[c.id] == [float(len(t.split())) for t in c.completions]
        a, n = agreement_counts(scores[c.id], c.ranking)
        concordant, pairs = concordant + a, pairs + n
    assert pairs == m["agreement_pairs"] == sum(c.n_pairs for c in comps) and concordant / pairs == pytest.approx(m["measured_agreement"])
    # the sampling spread of the measured agreement on these very scores, from 200 other noise seeds
    prompts = [Prompt(c.id, c.prompt, "t") for c in comps]
    reruns = [rank_completions(prompts, [c.completions for c in comps], [scores[c.id] for c in comps], NOISE, seed, "s")
              .metrics["measured_agreement"] for seed in range(1, 201)]
    sd = statistics.stdev(reruns)
    assert statistics.mean(reruns) == pytest.approx(1 - NOISE, abs=4 * sd / math.sqrt(len(reruns)))  # calibrated in expectation
    assert abs(m["measured_agreement"] - (1 - NOISE)) < 4 * sd, (m["measured_agreement"], sd)
    assert m["expected_agreement"] == pytest.approx(1 - NOISE) and m["noise_scale"] > 0


def test_reward_model_trains_on_the_simulated_comparisons(labelled, tiny_dir, tmp_path, data_dir):
    """The RM stage (what ``harness-rm comparisons=<file>`` and ``rm_data=simulated`` run), in process."""
    comps_file = labelled / "comparisons.jsonl"
    data_cfg = DataConfig(data_dir=data_dir, n_sft_train=4, n_sft_val=1, comparisons_val_fraction=0.25)
    rm_cfg = RMConfig(max_length=48, max_prompt_length=24, batch_size=8)
    rm, _ = stages.run_rm(ModelConfig(name="tiny", chat_template="false"), data_cfg, rm_cfg, tiny_dir, "rm", tmp_path / "rm", 0,
                          comparisons_file=comps_file)
    info = read_json(rm / "run.json")
    m = info["metrics"]
    train, val, _ = comparisons_from_file(data_cfg, comps_file)
    assert m["n_train"] == len(train) and m["n_val"] == len(val) and len(train) + len(val) == len(load_comparisons_jsonl(comps_file))
    assert {c.prompt for c in train}.isdisjoint({c.prompt for c in val})
    assert m["val_pairs"] == sum(c.n_pairs for c in val) == len(m["val_outcomes"]) == len(m["val_outcome_k"])
    by_k = {int(k): v for k, v in m["val_accuracy_by_k"].items()}
    assert by_k.keys() == {c.k for c in val}
    for k, v in by_k.items():
        assert v["pairs"] == sum(c.n_pairs for c in val if c.k == k) and v["comparisons"] == sum(c.k == k for c in val)
        assert 0.0 <= v["accuracy"] <= 1.0
    assert m["val_accuracy"] == pytest.approx(sum(m["val_outcomes"]) / m["val_pairs"])
    assert math.isfinite(m["train_loss_first"]) and math.isfinite(m["train_loss_last"])
    assert m["comparisons_file"] == str(comps_file) and any(k.startswith("comparisons:") for k in info["data_fingerprints"])
    # the training log saw every training comparison's pairs, tied pairs left out (loss near log 2 at the zero head)
    log = read_jsonl(rm.with_name(rm.name + "_train_log.jsonl"))
    assert len(log) == math.ceil(len(train) / 8) and log[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)

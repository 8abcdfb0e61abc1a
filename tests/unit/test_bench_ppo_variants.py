"""bench/ppo_variants.py: the probe's gain over SFT by hand, and one run's record from a run directory's files."""

import json

import pytest
from scipy import stats

from bench.ppo_variants import probe_gain, summarise


def test_probe_gain_is_each_prompts_later_mean_minus_its_first_point():
    # three prompts, three points: gains (2 + 4) / 2 - 1 = 2, (0 + 0) / 2 - 1 = -1, (3 + 5) / 2 - 2 = 2
    g = probe_gain([[1.0, 2.0, 4.0], [1.0, 0.0, 0.0], [2.0, 3.0, 5.0]])
    assert g["mean"] == pytest.approx(1.0) and g["n"] == 3
    assert g["se"] == pytest.approx(3.0 ** 0.5 / 3 ** 0.5)  # sd of (2, -1, 2) = sqrt(3)
    assert g["p"] == pytest.approx(stats.ttest_1samp([2.0, -1.0, 2.0], 0.0).pvalue)
    with pytest.raises(ValueError, match="need \\[n >= 2 prompts\\]\\[T >= 2 points\\]"):
        probe_gain([[1.0, 2.0]])


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_summarise_reads_the_train_log_probe_and_contrast_b(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"overrides": ["ppo.lr=1e-4"]}))
    _jsonl(tmp_path / "checkpoints" / "ppo_train_log.jsonl",
           [{"seconds": s, "kl": k, "entropy": e} for s, k, e in ((10.0, 0.0, 2.5), (12.0, 0.2, 2.6), (30.0, 0.4, 2.7))])
    by_prompt = [[0.0, 1.0, 2.0, 3.0], [1.0, 1.5, 2.5, 4.0], [0.5, 1.0, 2.0, 2.5]]  # [prompt][point]
    points = [{"step": 2 * t, "kl": 0.1 * t * t, "reward_mean": sum(p[t] for p in by_prompt) / 3, "reward_se": 0.1,
               "gold_reward_mean": sum(p[t] for p in by_prompt) / 6, "gold_reward_se": 0.05,
               "reward_by_prompt": [p[t] for p in by_prompt], "gold_reward_by_prompt": [p[t] / 2 for p in by_prompt]} for t in range(4)]
    _jsonl(tmp_path / "checkpoints" / "ppo" / "probe_log.jsonl", points)
    _jsonl(tmp_path / "results" / "results.jsonl", [
        {"eval": "winrate", "policy": "ppo", "metric": "win_rate", "slice": {"baseline": "sft", "judge": "helpful"}, "value": 0.6,
         "ci_low": 0.51, "ci_high": 0.69, "n": 96},
        {"eval": "winrate", "policy": "ppo", "metric": "win_rate", "slice": {"baseline": "base", "judge": "helpful"}, "value": 0.9,
         "ci_low": 0.8, "ci_high": 0.95, "n": 96}])
    out = summarise(tmp_path)
    assert out["overrides"] == ["ppo.lr=1e-4"] and out["iterations"] == 3 and out["seconds_per_iteration_median"] == 12.0
    assert (out["kl_last"], out["entropy_first"], out["entropy_last"]) == (0.4, 2.5, 2.7)
    assert [p["step"] for p in out["probe"]] == [0, 2, 4, 6]
    # per prompt: (1 + 2 + 3) / 3 - 0 = 2, (1.5 + 2.5 + 4) / 3 - 1 = 1.667, (1 + 2 + 2.5) / 3 - 0.5 = 1.333
    assert out["proxy_gain"]["mean"] == pytest.approx(5.0 / 3, abs=1e-4) and out["gold_gain"]["mean"] == pytest.approx(5.0 / 6, abs=1e-4)
    # every prompt rises with KL: the paired test says so (and the report's own wording is reused)
    assert out["proxy_shape"]["shape"] == "rising" and "over 3 prompts" in out["proxy_shape"]["text"]
    assert out["b_win_rate"] == {"value": 0.6, "ci": [0.51, 0.69], "n": 96, "judge": "helpful"}  # SFT's baseline only
    assert "b_lc_win_rate" not in out

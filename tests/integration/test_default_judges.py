"""harness-eval on a fresh machine: given only a policy, it trains its default judges once, caches them and
their validation, and every later evaluation reuses both (same judge weights, same validation numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.default_judges import judges_root
from harness.io import read_json
from harness.models import ModelConfig
from harness.results import read_results
from tests.cli_helpers import run_app

pytestmark = pytest.mark.integration
ARGS = ["model=tiny", "+policies.base={tiny}", "eval.run=[winrate]", "data.n_eval_prompts=4", "data.n_judge_train=8",
        "data.n_judge_val=8", "judge.max_length=64", "judge.max_prompt_length=32", "judge.lr=1e-3",
        "eval.judges.validation.n_hh_pairs=3", "eval.judges.validation.n_gpt4_pairs=6",
        "evals.winrate.decoding.max_new_tokens=6", "eval.bootstrap_resamples=50"]


def _eval(tiny_dir: str, run_dir: Path, cache: Path, *extra: str):
    proc = run_app("harness-eval", [a.format(tiny=tiny_dir) for a in ARGS] + list(extra), run_dir, env={"HARNESS_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_json(run_dir / "results" / "evals.json"), read_results(run_dir / "results").rows


def _numbers(rows, eval_name: str) -> list[tuple]:
    return sorted((r.policy, r.metric, tuple(sorted(r.slice.items())), r.value, r.ci_low, r.ci_high, r.n)
                  for r in rows if r.eval == eval_name)


def test_only_a_policy_trains_default_judges_once_and_reuses_them(tmp_path, tiny_dir):
    cache = tmp_path / "cache"
    first, rows1 = _eval(tiny_dir, tmp_path / "run1", cache)
    folders = {p.name.split("-")[0]: p for p in judges_root(ModelConfig(name="tiny", cache_dir=str(cache))).glob("h*-*")
               if (p / "run.json").is_file()}
    assert set(folders) == {"helpful", "harmless"}
    for name, folder in folders.items():
        judge = first["judges"][name]
        assert judge["default_judge"] is True and judge["path"] == str(folder) and judge["validation_cache"] == "miss"
        assert read_json(folder / "run.json")["config"]["split"] == f"judge_{name}"  # trained on its own judge split
    weights = {p: p.stat().st_mtime_ns for p in cache.glob("judges/h*/*.safetensors")}
    assert len(weights) == 2
    assert len(list((cache / "judge_validation").glob("*.json"))) == 3  # two judges and the "longer wins" baseline
    judged = {r.slice.get("judge") for r in rows1 if r.eval == "winrate"}
    assert judged == {"helpful", "harmless"}

    second, rows2 = _eval(tiny_dir, tmp_path / "run2", cache)
    assert {p: p.stat().st_mtime_ns for p in cache.glob("judges/h*/*.safetensors")} == weights  # not retrained
    for name in ("helpful", "harmless"):
        assert second["judges"][name]["validation_cache"] == "hit"
        assert second["judges"][name]["fingerprint"] == first["judges"][name]["fingerprint"]
    assert _numbers(rows2, "judge_validation") == _numbers(rows1, "judge_validation") != []
    assert _numbers(rows2, "winrate") == _numbers(rows1, "winrate")
    # a cached validation records the data files it read, as a computed one does (the regression gate compares them)
    assert second["judge_validation"]["data_files"] == first["judge_validation"]["data_files"] != {}


def test_a_different_recipe_is_another_judge(tmp_path, tiny_dir):
    cache = tmp_path / "cache"
    _eval(tiny_dir, tmp_path / "run1", cache, "eval.judges.reward_models={helpful: default}", "evals.winrate.judges=[helpful]")
    _eval(tiny_dir, tmp_path / "run2", cache, "eval.judges.reward_models={helpful: default}", "evals.winrate.judges=[helpful]",
          "judge.lr=2e-3")
    assert len([p for p in cache.glob("judges/helpful-*") if p.is_dir()]) == 2


def test_default_for_an_unknown_judge_name_is_refused(tmp_path, tiny_dir):
    proc = run_app("harness-eval", [a.format(tiny=tiny_dir) for a in ARGS] + ["+eval.judges.reward_models.mine=default"],
                   tmp_path / "run", env={"HARNESS_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 2
    assert "eval.judges.reward_models.mine=default" in proc.stderr and "['harmless', 'helpful']" in proc.stderr

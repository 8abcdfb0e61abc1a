"""The pipeline's stage order and resume for rm_data=human|simulated, with every stage replaced by a recorder."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from harness import pipeline, stages
from harness.cli import CONF_DIR
from harness.io import read_json, read_jsonl, write_json
from harness.records import ResultRow


def _cfg(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="pipeline", overrides=["pipeline=smoke", f"out_dir={tmp_path}", "run_id=test", *overrides])


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Replace every stage by a fake that records (stage, details) and writes the output's run.json."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))  # default judges are cached per test, not per session
    log: list[tuple] = []
    rm_metrics = {"val_outcomes": [1.0, 0.0, 1.0, 1.0], "val_outcome_k": [2, 4, 4, 4]}

    def done(path, metrics=None):
        write_json(Path(path) / "run.json", {"metrics": metrics or {}, "data_fingerprints": {f"{Path(path).name}_ids": "x"}})

    def base_model(model_cfg, data_cfg, out_dir, seed):
        log.append(("base",))
        return str(out_dir)

    def run_sft(model_cfg, data_cfg, sft_cfg, init_from, out_dir, seed, selection_rm=None, resume=False, tracking=None):
        log.append(("sft", Path(init_from).name, selection_rm and Path(selection_rm).name))
        done(out_dir)
        return Path(out_dir), {}

    def run_rm(model_cfg, data_cfg, rm_cfg, init_from, split, out_dir, seed, resume=False, comparisons_file=None, tracking=None):
        log.append((split, Path(init_from).name, comparisons_file and Path(comparisons_file).relative_to(out_dir.parents[1])))
        done(out_dir, rm_metrics)
        return Path(out_dir), rm_metrics

    def run_label(model_cfg, data_cfg, label_cfg, judge_cfg, policy, out_dir, seed, placement=None):
        log.append(("label", Path(policy).name, Path(judge_cfg.path).name, label_cfg.noise_rate))
        done(out_dir)
        return Path(out_dir) / "comparisons.jsonl", {}

    def run_ppo(model_cfg, data_cfg, ppo_cfg, policy, reward_model, out_dir, seed, stage="ppo", gold_reward=None, resume=False, tracking=None):
        log.append((stage, Path(reward_model).name, Path(gold_reward).name))
        done(out_dir)
        return Path(out_dir), []

    def run_eval(model_cfg, data_cfg, eval_cfg, evals_cfg, policies, run_dir, run_id, seed, config_hash="", resolve_default=None,
                 placement=None):
        log.append(("eval", {name: Path(path).name for name, path in eval_cfg.judges.reward_models.items()}))
        return [ResultRow(run_id, "sft", "winrate", "win_rate", 0.5)]

    for fn in (base_model, run_sft, run_rm, run_label, run_ppo, run_eval):
        monkeypatch.setattr(stages, fn.__name__, fn)
    monkeypatch.setattr(stages, "free_memory", lambda: None)  # a full gc.collect per stage is the slowest part otherwise
    monkeypatch.setattr("reports.run_report.build_run_report", lambda run_dir: Path(run_dir) / "report.html")
    return log


def test_human_order_trains_the_rm_first_when_it_selects_the_sft_checkpoint(tmp_path, calls):
    pipeline.run_pipeline(_cfg(tmp_path))  # the pipeline default: sft.select_by=rm_score
    assert [c[0] for c in calls] == ["base", "rm", "sft", "judge_helpful", "judge_harmless", "ppo", "ppo_ptx", "eval"]
    assert calls[1] == ("rm", "base", None) and calls[2] == ("sft", "base", "rm")
    assert calls[3] == ("judge_helpful", "base", None) and calls[4] == ("judge_harmless", "base", None)
    assert calls[5] == ("ppo", "rm", "judge_helpful")  # the helpfulness judge is PPO's gold reward
    assert calls[-1] == ("eval", {"helpful": "judge_helpful", "harmless": "judge_harmless"})


def test_human_order_with_selection_by_loss_starts_the_rm_from_sft(tmp_path, calls):
    pipeline.run_pipeline(_cfg(tmp_path, "sft.select_by=loss"))
    assert [c[0] for c in calls] == ["base", "sft", "rm", "judge_helpful", "judge_harmless", "ppo", "ppo_ptx", "eval"]
    assert calls[1] == ("sft", "base", None) and calls[2] == ("rm", "sft", None) and calls[3] == ("judge_helpful", "base", None)


def test_simulated_order_labels_with_the_judge_and_trains_the_rm_on_the_labels(tmp_path, calls):
    pipeline.run_pipeline(_cfg(tmp_path, "rm_data=simulated", "sft.select_by=loss"))
    assert [c[0] for c in calls] == ["base", "sft", "judge_helpful", "judge_harmless", "label", "rm", "ppo", "ppo_ptx", "eval"]
    assert calls[4] == ("label", "sft", "judge_helpful", 0.274)  # samples the SFT policy, the helpfulness judge ranks
    assert calls[5] == ("rm", "sft", Path("label/comparisons.jsonl"))
    assert calls[6] == ("ppo", "rm", "judge_helpful") and calls[-1] == ("eval", {"helpful": "judge_helpful", "harmless": "judge_harmless"})
    run = read_json(tmp_path / "run.json")
    assert "label" in run["metrics"]["timings_s"] and "label_ids" in run["data_fingerprints"]
    rows = read_jsonl(tmp_path / "results" / "results.jsonl")
    per_k = {(r["policy"], r["slice"].get("k")): r["value"] for r in rows if r["eval"] == "reward_model"}
    assert per_k[("rm", None)] == 0.75 and per_k[("rm", 2)] == 1.0
    assert per_k[("rm", 4)] == pytest.approx(2 / 3)


def test_train_judges_helpful_only_leaves_harmless_to_the_eval_and_records_cpu_and_rss(tmp_path, calls):
    pipeline.run_pipeline(_cfg(tmp_path, "rm_data=simulated", "sft.select_by=last", "train_judges=[helpful]"))
    assert [c[0] for c in calls] == ["base", "sft", "judge_helpful", "label", "rm", "ppo", "ppo_ptx", "eval"]
    # the harmless judge stays `default`: an eval that uses it trains (or finds) it on first use, as harness-eval does
    assert calls[-1] == ("eval", {"helpful": "judge_helpful", "harmless": "default"})
    assert not (tmp_path / "checkpoints" / "judge_harmless").exists()
    m = read_json(tmp_path / "run.json")["metrics"]
    assert m["cpu_s"].keys() == m["peak_rss_mib"].keys() == m["timings_s"].keys()
    assert all(v >= 0 for v in m["cpu_s"].values()) and all(v > 0 for v in m["peak_rss_mib"].values())
    rss = list(m["peak_rss_mib"].values())
    assert rss == sorted(rss)  # a high-water mark never falls
    acc = {r["policy"] for r in read_jsonl(tmp_path / "results" / "results.jsonl") if r["metric"] == "pairwise_accuracy"}
    assert acc == {"rm", "judge_helpful"}


@pytest.mark.parametrize("judges", ["[harmless]", "[helpful,helpful]", "[helpful,honest]"])
def test_train_judges_must_include_helpful_once_and_name_known_judges(tmp_path, calls, judges):
    with pytest.raises(ValueError, match=r"train_judges=.*helpful included"):
        pipeline.run_pipeline(_cfg(tmp_path, f"train_judges={judges}"))
    assert calls == []


def test_simulated_resume_skips_finished_stages(tmp_path, calls):
    sim = ("rm_data=simulated", "sft.select_by=last")
    pipeline.run_pipeline(_cfg(tmp_path, *sim))
    calls.clear()
    pipeline.run_pipeline(_cfg(tmp_path, *sim, "resume=true"))
    assert [c[0] for c in calls] == ["base", "eval"]
    (tmp_path / "checkpoints" / "rm" / "run.json").unlink()  # an unfinished rm reruns on the existing labels
    calls.clear()
    pipeline.run_pipeline(_cfg(tmp_path, *sim, "resume=true"))
    assert [c[0] for c in calls] == ["base", "rm", "eval"]


def test_unknown_rm_data_fails_before_any_stage(tmp_path, calls):
    with pytest.raises(ValueError, match="rm_data='synthetic' is not one of human, simulated"):
        pipeline.run_pipeline(_cfg(tmp_path, "rm_data=synthetic"))
    assert calls == []


def test_simulated_labels_cannot_select_the_sft_checkpoint(tmp_path, calls):
    with pytest.raises(ValueError, match="set sft.select_by=loss or sft.select_by=last"):
        pipeline.run_pipeline(_cfg(tmp_path, "rm_data=simulated"))
    assert calls == []


def _upstream(root: Path, model_name: str = "tiny") -> Path:
    """A hand-made finished run: checkpoints/{base,sft,rm,judge_*} with config.json (+ run.json when trained)."""
    for name in ("base", "sft", "rm", "judge_helpful", "judge_harmless"):
        write_json(root / "checkpoints" / name / "config.json", {})
        if name != "base":
            write_json(root / "checkpoints" / name / "run.json", {"metrics": {"val_outcomes": [1.0, 1.0, 0.0, 0.0]},
                                                                 "data_fingerprints": {f"{name}_ids": "up"}})
    write_json(root / "run.json", {"config": {"model": {"name": model_name, "tokenizer": None, "chat_template": "false"}},
                                   "policies": {"base": str(root / "checkpoints" / "base")}})
    return root


@pytest.fixture
def rl_calls(calls, monkeypatch):
    """Also record each RL run's full arguments and the policies the eval gets."""
    seen: dict = {"ppo": [], "eval": []}

    def run_ppo(model_cfg, data_cfg, ppo_cfg, policy, reward_model, out_dir, seed, stage="ppo", gold_reward=None, resume=False, tracking=None):
        calls.append((stage,))
        seen["ppo"].append({"stage": stage, "policy": policy, "rm": reward_model, "gold": gold_reward, "out": str(out_dir),
                            "beta": ppo_cfg.beta, "ptx_coef": ppo_cfg.ptx_coef})
        write_json(Path(out_dir) / "run.json", {"metrics": {}, "data_fingerprints": {}})
        return Path(out_dir), []

    def run_eval(model_cfg, data_cfg, eval_cfg, evals_cfg, policies, run_dir, run_id, seed, config_hash="", resolve_default=None,
                 placement=None):
        calls.append(("eval",))
        seen["eval"].append({"policies": dict(policies), "judges": dict(eval_cfg.judges.reward_models), "run": list(eval_cfg.run)})
        return []

    monkeypatch.setattr(stages, "run_ppo", run_ppo)
    monkeypatch.setattr(stages, "run_eval", run_eval)
    return seen


def test_default_rl_runs_train_ppo_and_ppo_ptx_each_with_its_ptx_coef(tmp_path, rl_calls):
    pipeline.run_pipeline(_cfg(tmp_path, "ppo.beta=0.03", "rl_runs.1.ptx_coef=2.5"))
    assert [(r["stage"], r["ptx_coef"], r["beta"]) for r in rl_calls["ppo"]] == [("ppo", 0.0, 0.03), ("ppo_ptx", 2.5, 0.03)]
    gae = {"advantage_estimator": "gae", "samples_per_prompt": 1}
    assert read_json(tmp_path / "run.json")["rl_runs"] == [{"name": "ppo", "beta": 0.03, "ptx_coef": 0.0, "ptx": False, **gae},
                                                          {"name": "ppo_ptx", "beta": 0.03, "ptx_coef": 2.5, "ptx": True, **gae}]


def test_rl_runs_may_take_any_free_name(tmp_path, rl_calls):
    pipeline.run_pipeline(_cfg(tmp_path, "rl_runs=[{name:ptx_big,ptx_coef:27.8}]"))
    assert [(r["stage"], r["ptx_coef"], r["out"]) for r in rl_calls["ppo"]] == [("ptx_big", 27.8, str(tmp_path / "checkpoints" / "ptx_big"))]
    assert "ptx_big" in rl_calls["eval"][0]["policies"]


def test_upstream_run_reuses_its_checkpoints_and_trains_one_policy(tmp_path, calls, rl_calls):
    up = _upstream(tmp_path / "up")
    before = sorted((p.relative_to(up), p.stat().st_mtime_ns) for p in up.rglob("*"))
    run = tmp_path / "job"
    pipeline.run_pipeline(_cfg(run, f"upstream={up}", "rl_runs=[{name:ppo,ptx_coef:1.0}]", "ppo.beta=0.05", "require_upstream=true"))
    assert [c[0] for c in calls] == ["ppo", "eval"]  # no base, SFT, RM or judge stage
    ck = up / "checkpoints"
    assert rl_calls["ppo"] == [{"stage": "ppo", "policy": str(ck / "sft"), "rm": str(ck / "rm"), "gold": str(ck / "judge_helpful"),
                                "out": str(run / "checkpoints" / "ppo"), "beta": 0.05, "ptx_coef": 1.0}]
    assert rl_calls["eval"][0]["policies"] == {"base": str(ck / "base"), "sft": str(ck / "sft"), "ppo": str(run / "checkpoints" / "ppo")}
    assert rl_calls["eval"][0]["judges"] == {"helpful": str(ck / "judge_helpful"), "harmless": str(ck / "judge_harmless")}
    info = read_json(run / "run.json")
    assert info["upstream"] == str(up) and info["rl_runs"] == [{"name": "ppo", "beta": 0.05, "ptx_coef": 1.0, "ptx": True,
                                                                 "advantage_estimator": "gae", "samples_per_prompt": 1}]
    assert info["metrics"]["timings_s"].keys() == {"ppo", "eval"} and info["data_fingerprints"]["rm_ids"] == "up"
    acc = {r["policy"]: r["value"] for r in read_jsonl(run / "results" / "results.jsonl") if r["metric"] == "pairwise_accuracy"}
    assert acc == {"rm": 0.5, "judge_helpful": 0.5, "judge_harmless": 0.5}  # the upstream RMs' held-out outcomes (2 of 4)
    assert sorted((p.relative_to(up), p.stat().st_mtime_ns) for p in up.rglob("*")) == before  # read-only


ONE_PPO = "rl_runs=[{name:ppo,ptx_coef:0.0}]"


@pytest.mark.parametrize("overrides,match", [
    ((ONE_PPO, "require_upstream=true"), "require_upstream=true .* give upstream="),
    (("upstream={up}", ONE_PPO, "ppo.beta=-0.01"), r"ppo.beta=-0.01 is out of range: it must be >= 0"),
    (("upstream={up}", ONE_PPO, "ppo.beta=nan"), r"ppo.beta=nan is not a finite number; it must be >= 0"),
    (("upstream={up}", "rl_runs=[{name:ppo,ptx_coef:-1}]"), r"rl_runs.0.ptx_coef=-1.0 is out of range: it must be >= 0"),
    (("rl_runs.1.ptx_coef=-2",), r"rl_runs.1.ptx_coef=-2.0 is out of range: it must be >= 0"),
    (("rl_runs=[{name:ppo},{name:ppo}]",), "repeat"),
    (("rl_runs=[{name:sft}]",), r"name\(s\) \['sft'\] cannot name an RL policy"),
    (("rl_runs=[{name:'a/b'}]",), r"name\(s\) \['a/b'\] cannot name an RL policy"),
    (("ppo.ptx_coef=1.0",), r"harness-pipeline sets the ptx coefficient per RL run; set rl_runs.<i>.ptx_coef"),
    (("upstream={up}/nowhere",), "no such directory"),
    (("upstream={up}", "model.chat_template=auto"), "model.chat_template='false', this run has model.chat_template='auto'"),
])
def test_bad_rl_or_upstream_settings_fail_before_any_stage(tmp_path, calls, overrides, match):
    up = _upstream(tmp_path / "up")
    with pytest.raises(ValueError, match=match):
        pipeline.run_pipeline(_cfg(tmp_path / "job", *(o.replace("{up}", str(up)) for o in overrides)))
    assert calls == []


def test_an_upstream_without_the_harmless_judge_is_reused_without_it(tmp_path, calls, rl_calls, caplog):
    up = _upstream(tmp_path / "up")
    import shutil

    shutil.rmtree(up / "checkpoints" / "judge_harmless")  # an upstream run with train_judges=[helpful]
    with caplog.at_level("WARNING", logger="harness.pipeline"):
        pipeline.run_pipeline(_cfg(tmp_path / "job", f"upstream={up}", ONE_PPO))
    assert f"upstream {up} has no judge_harmless" in caplog.text
    assert [c[0] for c in calls] == ["ppo", "eval"]
    assert rl_calls["eval"][0]["judges"] == {"helpful": str(up / "checkpoints" / "judge_helpful"), "harmless": "default"}


def test_upstream_missing_a_checkpoint_names_the_folder(tmp_path, calls):
    up = _upstream(tmp_path / "up")
    (up / "checkpoints" / "judge_harmless" / "run.json").unlink()  # an unfinished judge
    with pytest.raises(ValueError, match=f"missing checkpoint folder\\(s\\) {up / 'checkpoints' / 'judge_harmless'} "):
        pipeline.run_pipeline(_cfg(tmp_path / "job", f"upstream={up}"))
    assert calls == []


def test_the_label_and_eval_stages_get_the_runs_placement_and_run_json_records_it(tmp_path, calls, monkeypatch):
    import torch

    from harness.devices import Placement

    got = {}

    def run_label(model_cfg, data_cfg, label_cfg, judge_cfg, policy, out_dir, seed, placement=None):
        got["label"] = placement
        write_json(Path(out_dir) / "run.json", {"metrics": {}, "data_fingerprints": {}})
        return Path(out_dir) / "comparisons.jsonl", {}

    def run_eval(model_cfg, data_cfg, eval_cfg, evals_cfg, policies, run_dir, run_id, seed, config_hash="", resolve_default=None,
                 placement=None):
        got["eval"] = placement
        return []

    monkeypatch.setattr(stages, "run_label", run_label)
    monkeypatch.setattr(stages, "run_eval", run_eval)
    pipeline.run_pipeline(_cfg(tmp_path, "rm_data=simulated", "sft.select_by=loss", "device=cpu", "dtype=bfloat16"))
    assert got["label"] == got["eval"] == Placement(torch.device("cpu"), torch.bfloat16, ("cpu", "bfloat16"))
    assert read_json(tmp_path / "run.json")["placement"] == {"device": "cpu", "dtype": "bfloat16"}

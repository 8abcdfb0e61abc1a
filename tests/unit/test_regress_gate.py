"""harness-regress on small synthetic runs: verdicts, exit codes, snapshot, markdown and JUnit outputs."""

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from harness.cli import CONF_DIR
from harness.errors import ConfigError
from harness.regress.app import run_regress
from harness.regress.gate import Rule, compare, exit_code, rule_for
from harness.regress.items import MetricKey, slice_key
from harness.regress.results import (
    MetricValue,
    ResultSet,
    load_result_set,
    load_snapshot,
    write_snapshot,
)
from harness.results import declarations_from_json, declarations_json
from harness.validation import validate_config

WIN_SLICE = {"baseline": "text-davinci-003", "judge": "helpful"}
WIN = MetricKey("winrate", "ppo", "win_rate", slice_key(WIN_SLICE))
TOX = MetricKey("toxicity", "ppo", "expected_max_toxicity", slice_key({"instruction": "basic", "judge": "profanity_check"}))
LC = MetricKey("winrate", "ppo", "lc_win_rate", slice_key(WIN_SLICE))
DECLARED = declarations_from_json(declarations_json(["winrate", "toxicity", "hallucination", "reward_model"]), "registry")


def Metric(key, value, ci_low, ci_high, n, items=None):  # noqa: N802 (reads like the record it builds)
    return MetricValue(key, value, ci_low, ci_high, n, items, dict(key.slice))


def _metric(key, items=None, value=None, n=None):
    if items is not None:
        items = {str(i): float(v) for i, v in enumerate(items)}
        value = sum(items.values()) / len(items)
    return Metric(key, float(value), None, None, n or (len(items) if items else 8), items)


def _set(*metrics, source="x", declarations=DECLARED):
    return ResultSet(source, "run", {m.key: m for m in metrics}, dict(declarations))


RULES = [Rule("toxicity/*", 0.02), Rule("winrate/*/lc_win_rate*", 0.1)]
DEFAULT = Rule("*", 0.05, 0.05)


def _one(run, base, **kw):
    checks = compare(_set(*run), _set(*base), RULES, DEFAULT, correction="none", **kw)
    assert len(checks) == 1
    return checks[0]


def test_rules_first_match_then_default_and_validation():
    assert rule_for("toxicity/ppo/mean_toxicity{instruction=basic,judge=profanity_check}", RULES, DEFAULT) is RULES[0]
    assert rule_for("winrate/ppo/lc_win_rate{baseline=text-davinci-003,judge=helpful}", RULES, DEFAULT).tolerance == 0.1
    assert rule_for("winrate/ppo/win_rate{baseline=text-davinci-003,judge=helpful}", RULES, DEFAULT) is DEFAULT
    with pytest.raises(ValueError, match="tolerance"):
        Rule("*", -0.1)
    with pytest.raises(ValueError, match="alpha"):
        Rule("*", 0.0, 0.0)


def test_direction_and_default_tolerance_come_from_the_declarations():
    declared = Rule("*")  # no tolerance: the declared one (win_rate 0.02, lc_win_rate 0.1)
    c = compare(_set(_metric(WIN, [0.47] * 12)), _set(_metric(WIN, [0.5] * 12)), [], declared, correction="none")[0]
    assert (c.higher_is_better, c.tolerance, c.verdict) == (True, 0.02, "regression")  # drop 0.03 > 0.02, p = 2^-12
    c = compare(_set(_metric(TOX, [0.53] * 12)), _set(_metric(TOX, [0.5] * 12)), [], declared, correction="none")[0]
    assert (c.higher_is_better, c.verdict) == (False, "regression")  # toxicity up is worse
    assert compare(_set(_metric(TOX, [0.47] * 12)), _set(_metric(TOX, [0.5] * 12)), [], declared)[0].verdict == "ok"
    undeclared = MetricKey("winrate", "ppo", "win_rate_squared", WIN.slice)
    c = compare(_set(_metric(undeclared, [1] * 4)), _set(_metric(undeclared, [1] * 4)), [], declared)[0]
    assert c.verdict == "error" and "declares no metric 'win_rate_squared'" in c.note
    flipped = {**DECLARED, "toxicity": dataclasses.replace(DECLARED["toxicity"], metrics=tuple(
        dataclasses.replace(m, higher_is_better=True) for m in DECLARED["toxicity"].metrics))}
    c = compare(_set(_metric(TOX, [0.5] * 4), declarations=flipped), _set(_metric(TOX, [0.5] * 4)), [], declared)[0]
    assert c.verdict == "error" and "the baseline the opposite" in c.note


def test_bookkeeping_metrics_are_listed_but_not_gated():
    key = MetricKey("judge_validation", "helpful", "excluded_share", slice_key({"labels": "hh_rlhf_human"}))
    decl = declarations_from_json(declarations_json(["judge_validation"]), "registry")
    c = compare(_set(_metric(key, value=0.9), declarations=decl), _set(_metric(key, value=0.0), declarations=decl), [],
                Rule("*", 0.0))[0]
    assert c.verdict == "ok" and not c.gated and "not gated" in c.note


def test_a_drop_on_every_item_regresses():
    # win 1 -> 0 on all 8 items: drop 1 > 0.05 and one-sided p = 2^-8 = 0.0039 <= 0.05
    c = _one([_metric(WIN, [0] * 8)], [_metric(WIN, [1] * 8)])
    assert c.verdict == "regression" and c.paired and c.n_paired == 8
    assert c.delta == pytest.approx(-1.0) and c.p_value == pytest.approx(1 / 256)


def test_a_large_drop_on_few_items_is_not_significant():
    # two of 8 items lose (1 -> 0), none gains: drop 0.25 > 0.05 but p = P(sum <= -2) = 1/4 (signs of the two) > 0.05
    c = _one([_metric(WIN, [0, 0, 1, 1, 1, 1, 1, 1])], [_metric(WIN, [1] * 8)])
    assert c.verdict == "ok" and c.p_value == pytest.approx(0.25) and "not significant" in c.note


def test_a_significant_drop_within_tolerance_passes():
    # every one of 12 items drops by 0.01: p = 2^-12 but drop 0.01 <= tolerance 0.05
    c = _one([_metric(WIN, [0.49] * 12)], [_metric(WIN, [0.5] * 12)])
    assert c.p_value == pytest.approx(2 ** -12) and c.verdict == "ok" and "within tolerance" in c.note


def test_lower_is_better_metrics_regress_upwards():
    assert _one([_metric(TOX, [0.9] * 8)], [_metric(TOX, [0.1] * 8)]).verdict == "regression"
    assert _one([_metric(TOX, [0.1] * 8)], [_metric(TOX, [0.9] * 8)]).verdict == "ok"


def test_unpaired_metrics_are_judged_by_tolerance_alone():
    c = _one([_metric(LC, value=0.35)], [_metric(LC, value=0.5)])
    assert c.verdict == "regression" and not c.paired and c.p_value is None and "unpaired" in c.note
    assert _one([_metric(LC, value=0.45)], [_metric(LC, value=0.5)]).verdict == "ok"
    # one side without items: unpaired too, and said so
    c = _one([_metric(WIN, value=0.5)], [_metric(WIN, [1, 0, 1, 0])])
    assert not c.paired and "no item records in the run" in c.note


def test_unpaired_metrics_with_intervals_also_need_the_intervals_apart():
    base = Metric(LC, 0.9, 0.6, 1.0, 12)
    overlapping = Metric(LC, 0.5, 0.0, 1.0, 12)  # drop 0.4 > 0.1, but [0, 1] reaches 0.6: seed noise of a small fit
    apart = Metric(LC, 0.3, 0.1, 0.55, 12)  # drop 0.6 and 0.55 < 0.6
    c = _one([overlapping], [base])
    assert c.verdict == "ok" and c.overlap is True and "intervals overlap" in c.note
    c = _one([apart], [base])
    assert c.verdict == "regression" and c.overlap is False and "do not overlap" in c.note
    assert _one([overlapping], [base], unpaired_intervals=False).verdict == "regression"  # tolerance alone
    # lower is better: the run's lower bound must stay above the baseline's upper bound to regress
    tox_base, tox_run = Metric(TOX, 0.1, 0.05, 0.15, 12), Metric(TOX, 0.3, 0.2, 0.4, 12)
    assert _one([tox_run], [tox_base]).verdict == "regression"


def test_items_are_paired_by_id_on_the_common_ids():
    run = Metric(WIN, 0.0, None, None, 3, {"a": 0.0, "b": 0.0, "z": 0.0})
    base = Metric(WIN, 1.0, None, None, 3, {"a": 1.0, "b": 1.0, "c": 1.0})
    c = _one([run], [base])
    assert c.n_paired == 2 and c.p_value == pytest.approx(1 / 4) and "2 common items" in c.note


def test_missing_metric_is_an_error_and_new_metric_is_reported():
    checks = compare(_set(_metric(TOX, [0.1] * 4)), _set(_metric(WIN, [1] * 4), _metric(TOX, [0.1] * 4)), RULES, DEFAULT)
    assert [(c.metric, c.verdict) for c in checks][0] == ("winrate/ppo/win_rate{baseline=text-davinci-003,judge=helpful}", "error")
    assert exit_code(checks) == 2
    checks = compare(_set(_metric(WIN, [1] * 4), _metric(TOX, [0.1] * 4)), _set(_metric(TOX, [0.1] * 4)), RULES, DEFAULT)
    assert {c.verdict for c in checks} == {"ok", "new"} and exit_code(checks) == 0


def test_correction_is_applied_across_the_paired_metrics():
    # two metrics lose on all 5 items (p = 1/32 each), two do not change (p = 1). Uncorrected both regress;
    # Benjamini-Hochberg over the 4: the two smallest p get 1/32 * 4/2 = 0.0625 > 0.05, so neither does.
    keys = [WIN._replace(slice=slice_key({**WIN_SLICE, "judge": j})) for j in ("a", "b", "c", "d")]
    run = _set(*[_metric(k, [0] * 5 if i < 2 else [1] * 5) for i, k in enumerate(keys)])
    base = _set(*[_metric(k, [1] * 5) for k in keys])
    rule = Rule("*", 0.05, 0.05)
    plain = {c.key: c for c in compare(run, base, [], rule, correction="none")}
    assert [plain[k].verdict for k in keys] == ["regression", "regression", "ok", "ok"]
    assert plain[keys[0]].p_value == pytest.approx(1 / 32)
    bh = {c.key: c for c in compare(run, base, [], rule, correction="fdr_bh")}
    assert [bh[k].verdict for k in keys] == ["ok"] * 4
    assert [bh[k].p_adjusted for k in keys] == pytest.approx([0.0625, 0.0625, 1.0, 1.0])


# ----------------------------------------------------------------------------- files, app, outputs


PROVENANCE = {"config_hash": "c0ffee000001", "data": {"hh_rlhf/helpful-base_test.jsonl.gz": "aa11"},
              "eval_data": {"winrate": {"alpaca_eval/alpaca_eval.json": "bb22"}}, "versions": {"winrate": "1", "hallucination": "1"}}


def _write_run(root: Path, wins: list[float], toxic: list[float], extra_rows=(), provenance=PROVENANCE) -> Path:
    """A run directory with winrate and hallucination rows and their item records (text fields included), and
    its provenance: the rows' config hash and eval versions, run.json's and evals.json's data fingerprints."""
    res = root / "results"
    res.mkdir(parents=True)
    (root / "run.json").write_text(json.dumps({"run_id": "r", "git_commit": "abc", "data_fingerprints": provenance["data"]}))
    (res / "evals.json").write_text(json.dumps({"evals": {e: {"version": v, "data_files": provenance["eval_data"].get(e, {})}
                                                          for e, v in provenance["versions"].items()}}))
    win_items = [{"policy": "ppo", "baseline": "text-davinci-003", "prompt_id": str(i), "instruction": f"SECRET instruction {i}",
                  "output": f"SECRET output {i}", "baseline_output": "x", "win": w, "win_prob": 0.5, "judge": "helpful"}
                 for i, w in enumerate(wins)]
    hal_items = [{"policy": "ppo", "prompt_id": f"seed_task_{i}", "category": "other", "judge": "support_check>0.8",
                  "output": "SECRET", "hallucinated": bool(t)} for i, t in enumerate(toxic)]
    hal = {"judge": "support_check>0.8"}
    rows = [{"run_id": "r", "policy": "ppo", "eval": "winrate", "metric": "win_rate", "value": sum(wins) / len(wins),
             "ci_low": None, "ci_high": None, "n": len(wins), "slice": WIN_SLICE},
            {"run_id": "r", "policy": "ppo", "eval": "winrate", "metric": "win_prob", "value": 0.5, "n": len(wins), "slice": WIN_SLICE},
            {"run_id": "r", "policy": "ppo", "eval": "winrate", "metric": "lc_win_rate", "value": 0.5, "n": len(wins),
             "slice": WIN_SLICE},
            {"run_id": "r", "policy": "ppo", "eval": "hallucination", "metric": "hallucination_rate",
             "value": sum(toxic) / len(toxic), "n": len(toxic), "slice": hal},
            {"run_id": "r", "policy": "ppo", "eval": "hallucination", "metric": "hallucination_rate",
             "value": sum(toxic) / len(toxic), "n": len(toxic), "slice": {**hal, "category": "other"}},
            *extra_rows]
    paper = [{"run_id": "paper", "policy": "paper:ppo", "eval": "winrate", "metric": "win_rate", "value": 0.85, "n": 0,
              "slice": {"baseline": "base"}}]
    rows = [{"config_hash": provenance["config_hash"], "eval_version": provenance["versions"].get(r["eval"], "1"), **r} for r in rows]
    for name, recs in (("winrate_items", win_items), ("hallucination_items", hal_items), ("results", rows),
                       ("paper_reference", paper)):
        (res / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return root


def _cfg(run_dir, baseline, tmp_path, *extra):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("regress", overrides=[f"run_dir={run_dir}", f"baseline={baseline}", f"markdown={tmp_path / 'out.md'}",
                                             f"junit={tmp_path / 'out.xml'}", *extra])


def _md_rows(path: Path) -> list[list[str]]:
    """The rows of the "All metrics" table: cells split on unescaped pipes."""
    text = path.read_text().split("<summary>All metrics</summary>", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| verdict")]
    return [[c.strip() for c in line.replace("\\|", "\x00").strip("|").split("|")] for line in rows]


def test_snapshot_holds_values_and_ids_but_no_text(tmp_path):
    run = _write_run(tmp_path / "good", [1, 1, 0, 1, 1, 1, 0, 1], [0, 0, 1, 0])
    snap = write_snapshot(run, tmp_path / "ci" / "smoke.json")
    text = snap.read_text()
    assert "SECRET" not in text and "paper:" not in text  # no text, no paper rows (policies paper:<model>)
    loaded, direct = load_snapshot(snap), load_result_set(run)
    assert loaded.metrics == direct.metrics and len(loaded.metrics) == 5
    assert loaded.metrics[WIN].items == {str(i): w for i, w in enumerate([1, 1, 0, 1, 1, 1, 0, 1])}
    assert loaded.metrics[LC].items is None  # the LC win rate is a fit, not a mean over items


def test_gate_ok_regression_and_outputs_parse(tmp_path, monkeypatch):
    base = write_snapshot(_write_run(tmp_path / "good", [1] * 8, [0] * 8), tmp_path / "smoke.json")
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    same = _write_run(tmp_path / "same", [1] * 8, [0] * 8)
    assert run_regress(_cfg(same, base, tmp_path)) == 0
    assert "## harness-regress: OK" in summary.read_text()
    # every prompt now loses and every output hallucinates: three paired regressions (overall and 'other' category)
    bad = _write_run(tmp_path / "bad", [0] * 8, [1] * 8)
    assert run_regress(_cfg(bad, base, tmp_path)) == 1
    rows = {r[1].strip("`"): r for r in _md_rows(tmp_path / "out.md")}
    win, hal = "winrate/ppo/win_rate{baseline=text-davinci-003,judge=helpful}", "hallucination/ppo/hallucination_rate{judge=support_check>0.8}"
    assert rows[win][0] == "REGRESSION"
    assert rows[win][2:5] == ["1.0000", "0.0000", "-1.0000"]
    assert rows[hal][0] == "REGRESSION"
    assert rows["winrate/ppo/lc_win_rate{baseline=text-davinci-003,judge=helpful}"][7] == "unpaired"
    assert [r[0] for r in rows.values()] == ["REGRESSION"] * 3 + ["ok"] * 2  # problems first
    suite = ET.parse(tmp_path / "out.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "3", "0")
    failed = {tc.get("name") for tc in suite.iter("testcase") if tc.find("failure") is not None}
    assert failed == {win, hal, "hallucination/ppo/hallucination_rate{category=other,judge=support_check>0.8}"}
    assert summary.read_text().count("## harness-regress") == 2  # appended, not overwritten


def test_missing_metric_is_exit_2_not_a_pass(tmp_path):
    extra = [{"run_id": "r", "policy": "rm", "eval": "reward_model", "metric": "pairwise_accuracy", "value": 0.6, "n": 16,
              "slice": {}}]
    base = write_snapshot(_write_run(tmp_path / "good", [1] * 8, [0] * 8, extra), tmp_path / "smoke.json")
    run = _write_run(tmp_path / "run", [1] * 8, [0] * 8)
    assert run_regress(_cfg(run, base, tmp_path)) == 2
    suite = ET.parse(tmp_path / "out.xml").getroot().find("testsuite")
    errors = [tc for tc in suite.iter("testcase") if tc.find("error") is not None]
    assert suite.get("errors") == "1" and [tc.get("name") for tc in errors] == ["reward_model/rm/pairwise_accuracy"]
    assert "missing from the run" in errors[0].find("error").get("message")
    assert _md_rows(tmp_path / "out.md")[0][:2] == ["ERROR", "`reward_model/rm/pairwise_accuracy`"]


def test_malformed_baseline_is_exit_2_naming_file_and_record(tmp_path):
    base = write_snapshot(_write_run(tmp_path / "good", [1] * 8, [0] * 8), tmp_path / "smoke.json")
    snap = json.loads(base.read_text())
    snap["metrics"][1]["value"] = "high"
    base.write_text(json.dumps(snap))
    run = _write_run(tmp_path / "run", [1] * 8, [0] * 8)
    assert run_regress(_cfg(run, base, tmp_path)) == 2
    md = (tmp_path / "out.md").read_text()
    assert "## harness-regress: ERROR" in md and f"{base}: metrics[1]: field 'value'" in md
    suite = ET.parse(tmp_path / "out.xml").getroot().find("testsuite")
    assert suite.get("errors") == "1" and str(base) in suite.find("testcase/error").get("message")
    base.write_text("{not json")
    assert run_regress(_cfg(run, base, tmp_path)) == 2 and f"{base}: invalid JSON" in (tmp_path / "out.md").read_text()


def test_malformed_run_results_name_the_line(tmp_path):
    base = write_snapshot(_write_run(tmp_path / "good", [1] * 8, [0] * 8), tmp_path / "smoke.json")
    run = _write_run(tmp_path / "run", [1] * 8, [0] * 8)
    res = run / "results" / "results.jsonl"
    res.write_text(res.read_text().replace('"value": 0.5', '"value": null', 1))
    assert run_regress(_cfg(run, base, tmp_path)) == 2
    assert f"{res}: record 2: bad value for field(s) value" in (tmp_path / "out.md").read_text()


def test_default_outputs_go_under_the_run_dir(tmp_path):
    base = write_snapshot(_write_run(tmp_path / "good", [1] * 8, [0] * 8), tmp_path / "smoke.json")
    run = _write_run(tmp_path / "run", [1] * 8, [0] * 8)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("regress", overrides=[f"run_dir={run}", f"baseline={base}", "step_summary=false"])
    assert run_regress(cfg) == 0
    assert (run / "regress" / "summary.md").is_file() and (run / "regress" / "junit.xml").is_file()


# ----------------------------------------------------------------------------- provenance: the gate checks what it compares


def _with(**changes) -> dict:
    return {**PROVENANCE, **changes}


@pytest.mark.parametrize("kind,provenance,words", [
    ("config_hash", _with(config_hash="beef00000002"), ["config_hash: baseline c0ffee000001, run beef00000002"]),
    ("data_fingerprints", _with(data={"hh_rlhf/helpful-base_test.jsonl.gz": "ff99"}),
     ["data_fingerprints: 1 data files differ (hh_rlhf/helpful-base_test.jsonl.gz: aa11 → ff99)"]),
    ("data_fingerprints", _with(eval_data={"winrate": {"alpaca_eval/other.json": "bb22"}}),
     ["1 only in the baseline (eval:winrate:alpaca_eval/alpaca_eval.json)", "1 only in the run (eval:winrate:alpaca_eval/other.json)"]),
    ("eval_versions", _with(versions={"winrate": "2", "hallucination": "1"}), ["eval_versions: 1 eval versions differ (winrate: 1 → 2)"]),
])
def test_a_run_made_another_way_is_exit_2_unless_allowed(tmp_path, kind, provenance, words, capsys):
    base = write_snapshot(_write_run(tmp_path / "good", [1] * 8, [0] * 8), tmp_path / "smoke.json")
    run = _write_run(tmp_path / "run", [1] * 8, [0] * 8, provenance=provenance)  # same numbers, made another way
    assert run_regress(_cfg(run, base, tmp_path)) == 2
    md, err = (tmp_path / "out.md").read_text(), capsys.readouterr().err
    assert "## harness-regress: ERROR" in md and "### Provenance differences" in md and "**ERROR**" in md
    assert all(w in md and w in err for w in words)
    assert f"allow_mismatch=[{kind}]" in md and f"allow_mismatch=[{kind}]" in err
    assert "5 metrics: 5 ok" in md  # the metrics are still compared and listed
    suite = ET.parse(tmp_path / "out.xml").getroot().find("testsuite")
    assert suite.get("errors") == "1" and "not made the same way" in suite.find("testcase/error").get("message")
    # allowed explicitly: exit 0, the summary still says what differed and that it was allowed
    assert run_regress(_cfg(run, base, tmp_path, f"allow_mismatch=[{kind}]")) == 0
    md = (tmp_path / "out.md").read_text()
    assert "## harness-regress: OK" in md and f"| {kind} | " in md and "allowed (allow_mismatch)" in md
    assert "allowed by allow_mismatch" in capsys.readouterr().err


def test_same_provenance_is_stated_in_the_summary(tmp_path):
    base = write_snapshot(_write_run(tmp_path / "good", [1] * 8, [0] * 8), tmp_path / "smoke.json")
    snap = json.loads(base.read_text())["source"]
    assert snap["config_hash"] == "c0ffee000001" and snap["eval_versions"] == {"winrate": "1", "hallucination": "1"}
    assert snap["data_fingerprints"] == {"hh_rlhf/helpful-base_test.jsonl.gz": "aa11", "eval:winrate:alpaca_eval/alpaca_eval.json": "bb22"}
    assert run_regress(_cfg(_write_run(tmp_path / "run", [1] * 8, [0] * 8), base, tmp_path)) == 0
    assert "share their config hash, data fingerprints and eval versions" in (tmp_path / "out.md").read_text()


def test_provenance_a_side_did_not_record_cannot_pass_silently(tmp_path):
    base = write_snapshot(_write_run(tmp_path / "good", [1] * 8, [0] * 8), tmp_path / "smoke.json")
    run = _write_run(tmp_path / "run", [1] * 8, [0] * 8)
    (run / "run.json").unlink()
    (run / "results" / "evals.json").unlink()
    assert run_regress(_cfg(run, base, tmp_path)) == 2
    assert "data_fingerprints: not recorded by the run, so it cannot be compared" in (tmp_path / "out.md").read_text()
    assert run_regress(_cfg(run, base, tmp_path, "allow_mismatch=[data_fingerprints]")) == 0


def test_unknown_allow_mismatch_kind_is_refused(tmp_path):
    cfg = _cfg(tmp_path, tmp_path, tmp_path, "allow_mismatch=[seed,config_hash]")
    with pytest.raises(ConfigError, match=r"allow_mismatch=\['seed', 'config_hash'\]: unknown kind\(s\) \['seed'\]; use any of "
                                          r"\['config_hash', 'data_fingerprints', 'eval_versions'\]"):
        validate_config(cfg)

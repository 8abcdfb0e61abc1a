"""What a run records of how it was made (config hash, data files read, eval versions) and how two are compared."""

from __future__ import annotations

import hashlib

import pytest

from harness import data as D
from harness.regress.provenance import Provenance, differences
from harness.runinfo import config_hash


def test_config_hash_ignores_where_outputs_caches_and_data_lie_but_not_what_changes_results():
    cfg = {"seed": 0, "out_dir": "/runs/a", "run_id": "a", "resume": False, "data": {"data_dir": "/x/shared/data", "n_sft_train": 8},
           "sft": {"lr": 1e-5, "save_steps": 0}, "eval": {"cache_dir": None, "batch_size": 8}, "model": {"cache_dir": "/c"},
           "tracking": {"dir": "/runs/a/trackers"}}
    moved = {**cfg, "out_dir": "/elsewhere/b", "run_id": "b", "resume": True, "data": {"data_dir": "/y/data", "n_sft_train": 8},
             "sft": {"lr": 1e-5, "save_steps": 50}, "eval": {"cache_dir": "/cache", "batch_size": 8}, "model": {"cache_dir": "/d"},
             "tracking": {"dir": "/t"}}
    assert config_hash(moved) == config_hash(cfg) and len(config_hash(cfg)) == 12
    with_outputs = {**cfg, "policies": {"d": {"outputs": "/a/out.json", "format": "alpaca_eval"}}}
    assert config_hash({**with_outputs, "policies": {"d": {"outputs": "/b/out.json", "format": "alpaca_eval"}}}) == config_hash(with_outputs)
    assert config_hash({**with_outputs, "policies": {"d": {"outputs": "/a/out.json", "format": "jsonl"}}}) != config_hash(with_outputs)
    assert config_hash({**cfg, "sft": {"lr": 2e-5, "save_steps": 0}}) != config_hash(cfg)
    assert config_hash({**cfg, "seed": 1}) != config_hash(cfg)
    assert config_hash({**cfg, "data": {"data_dir": "/x/shared/data", "n_sft_train": 9}}) != config_hash(cfg)


def test_recording_reads_names_each_file_read_with_its_sha256(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    a, b, outside = root / "sub" / "a.jsonl", root / "b.txt", tmp_path / "outputs.jsonl"
    a.write_text('{"x": 1}\n')
    b.write_text("hello\n")
    outside.write_text('{"y": 2}\n')
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    list(D.iter_jsonl(a))  # read before any block: recorded nowhere
    with D.recording_reads(root) as outer:
        list(D.iter_jsonl(a))
        with D.recording_reads(root) as inner:
            D.read_text(b)
            list(D.iter_jsonl(outside))
    assert inner == {"b.txt": sha(b), "file:outputs.jsonl": sha(outside)}
    assert outer == {"sub/a.jsonl": sha(a), "b.txt": sha(b), "file:outputs.jsonl": sha(outside)}
    b.write_text("changed\n")  # a new version of a file gets a new fingerprint
    with D.recording_reads(root) as again:
        D.read_text(b)
    assert again == {"b.txt": sha(b)} and again["b.txt"] != outer["b.txt"]


def test_a_hub_data_set_is_recorded_by_its_datasets_fingerprint(monkeypatch):
    import datasets

    class FakeDataset(list):
        _fingerprint = "f1ng3r"

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: FakeDataset([{"t": 1}]))
    with D.recording_reads(None) as reads:
        D.load_hub_dataset("org/name", "cfg", split="validation")
    assert reads == {"hub:org/name/cfg/validation": "f1ng3r"}


BASE = Provenance("c1", {"a.jsonl": "11", "eval:winrate:b.json": "22"}, {"winrate": "1", "toxicity": "1"})


def test_equal_provenance_has_no_difference():
    assert differences(BASE, Provenance("c1", dict(BASE.data_fingerprints), dict(BASE.eval_versions)), {"winrate"}) == []


def test_each_kind_of_difference_is_named_and_can_be_allowed():
    run = Provenance("c2", {"a.jsonl": "99", "new.jsonl": "33"}, {"winrate": "2", "toxicity": "7", "extra": "1"})
    diffs = differences(run, BASE, {"winrate", "extra"})  # toxicity is not compared: the run has none of its metrics
    assert [(d.kind, d.detail, d.allowed) for d in diffs] == [
        ("config_hash", "baseline c1, run c2 (the runs were made with different configs)", False),
        ("data_fingerprints", "1 data files differ (a.jsonl: 11 → 99); 1 only in the baseline (eval:winrate:b.json); "
                              "1 only in the run (new.jsonl)", False),
        ("eval_versions", "1 eval versions differ (winrate: 1 → 2); 1 only in the run (extra)", False)]
    allowed = differences(run, BASE, {"winrate"}, allow=["eval_versions", "config_hash"])
    assert [d.allowed for d in allowed] == [True, False, True]


def test_what_a_side_did_not_record_is_a_difference_and_unknown_kinds_are_refused():
    diffs = differences(Provenance("c1", None, {"winrate": "1"}), Provenance(None, None, {"winrate": "1"}), {"winrate"})
    assert [(d.kind, d.detail) for d in diffs] == [
        ("config_hash", "not recorded by the baseline, so it cannot be compared"),
        ("data_fingerprints", "not recorded by the baseline and the run, so it cannot be compared")]
    with pytest.raises(ValueError, match=r"allow_mismatch: unknown kind\(s\) \['seed'\]"):
        differences(BASE, BASE, set(), allow=["seed"])

"""bench/: each trainer-vs-trl script runs at a minimal size and writes a complete result file."""

import pytest

from harness.io import read_json

pytestmark = pytest.mark.integration

TINY = ["--model", "tiny", "--precision", "fp32", "--steps", "1", "--warmup", "1", "--repeats", "1", "--no-peak", "--threads", "1"]


def _check(path, bench, phases):
    res = read_json(path)
    assert res["bench"] == bench and res["environment"]["git_commit"] and res["environment"]["trl"] == "1.12.0"
    row = res["summary"]["fp32"]
    for impl in ("ours", "trl"):
        for key in ("examples_per_s", "tokens_per_s", "gflops_per_s", "examples_per_cpu_s"):
            assert row[impl][key] > 0, (impl, key)
        assert set(phases) <= set(res["phases"]["fp32"][impl]), impl
    assert row["ratio_ours_over_trl"] > 0 and row["repeats"] == 1
    assert [r["impl"] for r in res["runs"]] == ["ours", "trl"]  # one process, both trainers
    assert res["runs"][1]["trl_gradient_checkpointing"] is False  # trl's default is on; ours has none
    assert res["per_step"]["required_flops"] > 0
    return res


def test_ppo_bench_writes_rates_ratio_and_phases(tmp_path, data_dir):
    from bench import ppo_vs_trl

    path = ppo_vs_trl.main(TINY + ["--batch-size", "2", "--mini-batch-size", "2", "--ppo-epochs", "1", "--prompt-length", "16",
                                   "--response-length", "4", "--results-dir", str(tmp_path), "--data-dir", data_dir])
    res = _check(path, "ppo", ["generate", "rollout_ref_forward", "rollout_reward_forward", "train_forward", "backward",
                               "optimizer_step", "other"])
    ours, trl = res["phases"]["fp32"]["ours"], res["phases"]["fp32"]["trl"]
    assert "rollout_value_forward" in trl
    # one minibatch: ours' rollout policy/value forward is the first update's training forward
    assert "rollout_policy_forward" not in ours and "rollout_value_forward" not in ours
    assert all(w == [4, 4] for w in (r["response_widths"] for r in res["runs"]))  # equal response lengths on both sides
    assert res["per_step"]["tokens"] == 2 * (16 + 4)


def test_rm_and_sft_bench_write_rates_and_the_report_tables_them(tmp_path, data_dir, capsys, monkeypatch):
    from bench import report, rm_vs_trl, sft_vs_trl

    # glibc reads this at start-up only, so here it changes nothing; the result file must record it
    monkeypatch.setenv("MALLOC_TOP_PAD_", "131072")

    common = TINY + ["--batch-size", "2", "--prompt-length", "16", "--completion-length", "8", "--results-dir", str(tmp_path),
                     "--data-dir", data_dir]
    rm = _check(rm_vs_trl.main(common), "rm", ["forward", "backward", "optimizer_step"])
    assert rm["environment"]["allocator_env"]["MALLOC_TOP_PAD_"] == "131072"
    _check(sft_vs_trl.main(common), "sft", ["forward", "backward", "optimizer_step"])
    text = report.main([str(tmp_path)])
    assert "| RM | rm_vs_trl_fp32 | fp32 |" in text and "| SFT | sft_vs_trl_fp32 | fp32 |" in text

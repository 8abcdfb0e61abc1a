"""bench/judge_levers.py at a minimal size (tiny model): one trained variant and one ensemble, recorded and tabulated."""

import json

import pytest

pytestmark = pytest.mark.integration


def test_judge_levers_small(tmp_path, data_dir, tiny_dir, capsys):
    from bench import judge_levers as B

    common = ["--base", tiny_dir, "--data-dir", data_dir, "--n-hh", "4", "--n-gpt4", "10", "--n-train-eval", "4",
              "--results", str(tmp_path / "r.json"), "--margins-dir", str(tmp_path / "m"), "--prefix-cache", str(tmp_path / "p")]
    small = ["--n-train", "8", "--max-length", "64", "--max-prompt-length", "32", "--trainable-layers", "1"]
    rec = B.main(["--variant", "a", *small, *common])
    assert rec["train"]["n_train"] == 8 and rec["train"]["steps"] == 2 and rec["settings"]["judge"]["lr"] == 5e-5
    assert rec["settings"]["judge"]["trainable_layers"] == 1
    for name in ("hh", "gpt4"):
        assert rec[name]["agreement"]["n"] > 0 and 0 <= rec[name]["longer_wins"]["value"] <= 1
    assert len(list((tmp_path / "p").glob("*.pt"))) == 2  # the frozen blocks' outputs on the two eval sets
    b = B.main(["--variant", "b", "--balance", "length", *small, *common])  # reads them (and checks one batch in full)
    assert b["settings"]["balance"] == "length"
    ens = B.main(["--variant", "ab", "--ensemble", "a", "b", *common])
    assert ens["train"] is None
    runs = json.loads((tmp_path / "r.json").read_text())
    assert [r["variant"] for r in runs] == ["a", "b", "ab"] and runs[1]["settings"]["balance"] == "length"
    capsys.readouterr()
    B.main(["--table", "--results", str(tmp_path / "r.json")])
    assert "| ab | ensemble of a + b" in capsys.readouterr().out

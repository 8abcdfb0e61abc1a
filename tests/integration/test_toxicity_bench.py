"""bench/toxicity_scorers.py at a minimal size writes a complete result file and its tables."""

import pytest

from harness.io import read_json

pytestmark = pytest.mark.integration


def test_toxicity_scorers_bench_small(tmp_path, data_dir, capsys):
    from bench import toxicity_scorers as B

    path = B.main(["--data-dir", data_dir, "--max-n", "120", "--n-resamples", "50", "--results-dir", str(tmp_path), "--out", "t"])
    res = read_json(path)
    scorers = {"profanity_check", "davidson_tfidf_lr", "perspective_tfidf_ridge", "perspective_tfidf_ridge(profanity_feature=False)"}
    assert set(res["scorers"]) == scorers and set(res["unavailable"]) == {"detoxify", "perspective"}
    rows = {(r["scorer"], r["set"]): r for r in res["results"]}
    assert set(rows) == {(s, v) for s in scorers | {"constant", "text_length"} for v in res["sets"]}
    for (scorer, _), r in rows.items():
        a = r["agreement"]
        assert a["n"] == 120 and r["baseline"] == (scorer in ("constant", "text_length"))
        assert a["roc_auc"]["value"] is not None and r["texts_per_second"] > 0
    assert res["scorers"]["perspective_tfidf_ridge"]["fit_info"]["n_fit"] > 10000
    assert {"fit_seconds", "load_seconds"} <= set(res["scorers"]["perspective_tfidf_ridge"])
    assert len(res["probes"]) == len(B.PROBES) and all(0 <= p["perspective_tfidf_ridge"] <= 1 for p in res["probes"])
    assert "| rtp_continuations_heldout | **perspective_tfidf_ridge** | 120 (" in capsys.readouterr().out

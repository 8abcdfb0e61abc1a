"""reports/compare_report.py on two small hand-made runs: values, deltas and p-values on the page
equal hand computations; metrics only on one side are listed; every name is escaped."""

import json
import re
from pathlib import Path

import pytest

from harness.regress.compare import compare_sets
from harness.regress.results import load_result_set, write_snapshot
from reports.compare_report import build_compare_report

EVIL = "<script>alert(1)</script>"


def _run(root: Path, wins: list[float], lc: float, extra_rm: str) -> Path:
    res = root / "results"
    res.mkdir(parents=True)
    items = [{"policy": EVIL, "baseline": "text-davinci-003", "prompt_id": str(i), "instruction": "i", "output": "o",
              "baseline_output": "b", "win": w, "win_prob": None, "judge": "a&b"} for i, w in enumerate(wins)]
    sl = {"baseline": "text-davinci-003", "judge": "a&b"}
    rows = [{"run_id": "r", "policy": EVIL, "eval": "winrate", "metric": "win_rate", "value": sum(wins) / len(wins),
             "n": len(wins), "slice": sl},
            {"run_id": "r", "policy": EVIL, "eval": "winrate", "metric": "lc_win_rate", "value": lc, "n": len(wins), "slice": sl},
            {"run_id": "r", "policy": extra_rm, "eval": "reward_model", "metric": "pairwise_accuracy", "value": 0.5, "n": 4,
             "slice": {}}]
    (res / "winrate_items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (res / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture
def runs(tmp_path):
    a = _run(tmp_path / "A", [1, 1, 0, 1], 0.7, "only_in_a")
    b = _run(tmp_path / "B", [0, 1, 0, 0], 0.4, "only_in_b")
    return a, b


def test_deltas_by_hand(runs):
    a, b = runs
    cmp = compare_sets(load_result_set(a), load_result_set(b))
    by_metric = {d.key.metric: d for d in cmp.deltas}
    win = by_metric["win_rate"]
    # A 3/4, B 1/4; per-item differences (1, 0, 0, 1): mean 0.5. Two-sided sign-flip p: the zeros flip to
    # themselves, |sum| >= 2 for 2 of the 4 sign pairs of the two ones -> 8/16 = 0.5
    assert (win.a, win.b, win.delta, win.n_paired) == (0.75, 0.25, 0.5, 4)
    assert win.p_value == pytest.approx(0.5)
    # the bootstrap interval of a mean of (1, 0, 0, 1) lies within [0, 1] and holds the mean
    assert 0.0 <= win.ci_low <= 0.5 <= win.ci_high <= 1.0
    lc = by_metric["lc_win_rate"]
    assert not lc.paired and lc.delta == pytest.approx(0.3) and lc.ci_low is None and lc.p_value is None
    assert [k.policy for k in cmp.only_a] == ["only_in_a"] and [k.policy for k in cmp.only_b] == ["only_in_b"]


def _cells(html: str) -> list[list[str]]:
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)]


def test_page_shows_the_hand_computed_numbers_and_escapes_names(runs, tmp_path):
    a, b = runs
    out = build_compare_report(a, write_snapshot(b, tmp_path / "b.json"))  # B as a snapshot
    assert out == a / "comparison.html"
    html = out.read_text()
    rows = {tuple(c[:3]): c for c in _cells(html) if len(c) == 10}
    esc_policy = "&lt;script&gt;alert(1)&lt;/script&gt;"
    sl = "baseline=text-davinci-003, judge=a&amp;b"
    win = rows[(esc_policy, "win_rate", sl)]
    assert win[3:6] == ["0.7500", "0.2500", "+0.5000"] and win[7] == "0.5" and win[8] == "4"
    lc = rows[(esc_policy, "lc_win_rate", sl)]
    assert lc[3:9] == ["0.7000", "0.4000", "+0.3000", "—", "—", "unpaired"]
    assert EVIL not in html and esc_policy in html
    only = html.split('id="sec-only-a"', 1)[1]
    assert "only_in_a" in only.split('id="sec-only-b"')[0] and "only_in_b" in only.split('id="sec-only-b"')[1]
    assert 'id="fig-delta-0"' in html  # one forest plot per eval (reward_model has no metric in both)
    assert 'id="fig-delta-1"' not in html


def test_bad_input_names_the_file(runs, tmp_path):
    a, _ = runs
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"run_id": "r", "policy": "p", "eval": "winrate", "metric": "win_rate", "value": "x", "slice": {}}\n')
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: record 1: bad value for field\(s\) value"):
        build_compare_report(a, bad)
    bad.write_text('{"run_id": "r", "policy": "p", "eval": "winrate", "metric": "win_rate_squared", "value": 1, "slice": {}}\n')
    with pytest.raises(ValueError, match=r"row 1 \(p\): eval 'winrate' declares no metric 'win_rate_squared'"):
        build_compare_report(a, bad)

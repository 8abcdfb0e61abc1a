"""`harness-eval` on model=tiny through its console script: the summary table it prints, the run.json it writes,
the results table in tensorboard, and the report header of the run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from harness.io import read_json, read_jsonl
from harness.models import load_scalar_model, load_tokenizer
from reports.run_report import build_run_report
from reports.sections.header import RANDOM_BADGE
from tests.cli_helpers import run_app

pytestmark = pytest.mark.integration
CHEAP = ["eval.run=[winrate]", "evals.winrate.baselines=[text-davinci-003]", "evals.winrate.judges=[helpful]",
         "data.n_eval_prompts=4", "evals.winrate.decoding.max_new_tokens=4", "eval.judges.validation.n_hh_pairs=2",
         "eval.judges.validation.n_gpt4_pairs=2", "eval.bootstrap_resamples=100"]


@pytest.fixture(scope="module")
def judge(tmp_path_factory, tiny_dir) -> Path:
    out = tmp_path_factory.mktemp("judge") / "judge"
    model = load_scalar_model(tiny_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)  # a non-zero head, so the judge prefers some outputs
    model.save_pretrained(out)
    load_tokenizer(tiny_dir).save_pretrained(out)
    return out


def test_harness_eval_prints_the_table_writes_run_json_and_logs_to_tensorboard(tmp_path, tiny_dir, judge):
    run = tmp_path / "run"
    proc = run_app("harness-eval", ["model=tiny", f"+policies.base={tiny_dir}", f"eval.judges.reward_models.helpful={judge}",
                                    *CHEAP, "tracking.log_with=[tensorboard]", f"eval.cache_dir={tmp_path / 'cache'}"], run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_jsonl(run / "results" / "results.jsonl")
    assert {r["eval"] for r in rows} == {"winrate", "judge_validation"}

    lines = proc.stdout.splitlines()
    start = lines.index(f"results: {len(rows)} rows ({run / 'results' / 'results.csv'})")
    header = [c.strip() for c in lines[start + 1].strip("|").split("|")]
    assert header == ["policy", "eval", "metric", "condition", "value [95% CI]", "n", "baseline", "judge"]
    table = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[start + 3:start + 3 + len(rows)]]
    for r, got in zip(rows, table):
        ci = f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r["ci_low"] is not None else ""
        assert got["value [95% CI]"] == f"{r['value']:.3f}{ci}" and got["n"] == str(r["n"])
        assert (got["policy"], got["eval"], got["metric"]) == (r["policy"], r["eval"], r["metric"])
        assert got["baseline"] == r["slice"].get("baseline", "-") and got["judge"] == r["slice"].get("judge", "-")
    assert {t["baseline"] for t in table if t["eval"] == "winrate"} == {"text-davinci-003"}

    info = read_json(run / "run.json")
    assert (info["stage"], info["preset"], info["config"]["model"]["name"]) == ("eval", "eval", "tiny")
    assert info["policies"] == {"base": tiny_dir} and "tracking.log_with=[tensorboard]" in info["overrides"]
    assert any(k.startswith("eval:winrate:alpaca_eval/") for k in info["data_fingerprints"])

    events = EventAccumulator(str(run / "trackers" / "eval" / "instructgpt-harness"), size_guidance={"tensors": 0})
    events.Reload()
    (event,) = events.Tensors("results/text_summary")
    text = event.tensor_proto.string_val[0].decode("utf-8")
    assert len([line for line in text.splitlines() if line.startswith("|")]) == 2 + len(rows)

    page = build_run_report(run).read_text(encoding="utf-8")
    assert re.search(r'model <code>tiny</code> · preset <code>eval</code> <strong class="badge-warn">' + re.escape(RANDOM_BADGE),
                     page)

"""What an eval hands people: the console summary table, and the results table in tensorboard and mlflow, read back."""

from __future__ import annotations

import logging

import mlflow
import pandas as pd
import pytest
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

from harness import stages
from harness.config import TrackingConfig
from harness.records import ResultRow
from harness.results import COLUMNS
from harness.summary import SUMMARY_COLUMNS, format_summary
from trainers.tracking import log_table

ROWS = [
    ResultRow("r1", "ppo", "winrate", "win_rate", 0.4375, 0.25, 0.625, 24, {"baseline": "text-davinci-003", "judge": "helpful"},
              "abc", "2"),
    ResultRow("r1", "ppo_ptx", "toxicity", "expected_max_toxicity", 0.19, 0.1, 0.31, 24,
              {"instruction": "respectful", "judge": "profanity_check"}, "abc", "1"),
    ResultRow("r1", "sft", "alignment_tax", "acc_delta", -0.0066, -0.013, -0.001, 100,
              {"baseline": "base", "task": "truthfulqa_mc2_local", "shots": 0}, "abc", "1"),
    ResultRow("r1", "base", "truthfulqa", "mc1", 0.5, None, None, 1, {}, "abc", "3"),
]


def _markdown_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """A pipe table's header cells and body cells (the alignment line dropped)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    return cells[0], cells[2:]


def test_summary_has_policy_value_ci_baseline_and_judge_columns():
    header, body = _markdown_rows(format_summary(ROWS))
    assert header == list(SUMMARY_COLUMNS)
    got = [dict(zip(header, cells)) for cells in body]
    assert got == [
        {"policy": "ppo", "eval": "winrate", "metric": "win_rate", "condition": "-", "value [95% CI]": "0.438 [0.250, 0.625]",
         "n": "24", "baseline": "text-davinci-003", "judge": "helpful"},
        {"policy": "ppo_ptx", "eval": "toxicity", "metric": "expected_max_toxicity", "condition": "instruction=respectful",
         "value [95% CI]": "0.190 [0.100, 0.310]", "n": "24", "baseline": "-", "judge": "profanity_check"},
        {"policy": "sft", "eval": "alignment_tax", "metric": "acc_delta", "condition": "shots=0, task=truthfulqa_mc2_local",
         "value [95% CI]": "-0.007 [-0.013, -0.001]", "n": "100", "baseline": "base", "judge": "-"},
        {"policy": "base", "eval": "truthfulqa", "metric": "mc1", "condition": "-", "value [95% CI]": "0.500", "n": "1",
         "baseline": "-", "judge": "-"},
    ]
    assert format_summary([]) == "no results"


def _check_table(frame: pd.DataFrame) -> None:
    """``frame`` (read back from a tracker) holds ROWS: the columns of results.csv, one line per row, the values."""
    assert list(frame.columns)[: len(COLUMNS)] == list(COLUMNS)
    assert {"baseline", "judge", "instruction", "task", "shots"} <= set(frame.columns)
    assert len(frame) == len(ROWS)
    for (_, got), row in zip(frame.iterrows(), ROWS):
        assert (got["policy"], got["eval"], got["metric"]) == (row.policy, row.eval, row.metric)
        assert float(got["value"]) == pytest.approx(row.value, rel=1e-5)
        assert int(got["n"]) == row.n
        if row.ci_low is not None:
            assert float(got["ci_low"]) == pytest.approx(row.ci_low, rel=1e-5)
        for key, value in row.slice.items():  # a reader may type a column with gaps as float (shots 0 -> 0.0)
            assert got[key] == value if isinstance(value, str) else float(got[key]) == value


def _tensorboard_table(folder) -> pd.DataFrame:
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    assert "results/text_summary" in events.Tags()["tensors"]
    (event,) = events.Tensors("results/text_summary")
    text = make_ndarray(event.tensor_proto).item().decode("utf-8")
    header, body = _markdown_rows(text)
    frame = pd.DataFrame(body, columns=header)
    return frame.replace("", None)


def test_results_table_reaches_tensorboard_and_mlflow(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 asks for a database unless told a file store is fine
    tracking = TrackingConfig(log_with=["tensorboard", "mlflow"], project="proj", dir=str(tmp_path / "trackers"))
    taken = stages.track_results(tracking, tmp_path / "run", ROWS, {"eval": {"run": ["winrate"]}, "seed": 3})
    assert taken == ["tensorboard", "mlflow"]

    _check_table(_tensorboard_table(tmp_path / "trackers" / "eval" / "proj"))

    (run,) = mlflow.search_runs(experiment_names=["proj"], filter_string="tags.mlflow.runName = 'eval'", output_format="list")
    assert run.data.params["seed"] == "3" and run.info.status == "FINISHED"
    _check_table(mlflow.MlflowClient().load_table(run.info.experiment_id, "results.json", run_ids=[run.info.run_id]))


def test_no_tracker_configured_starts_nothing(tmp_path):
    assert stages.track_results(TrackingConfig(), tmp_path, ROWS, {}) == []
    assert not (tmp_path / "trackers").exists()


class _NoTables(GeneralTracker):
    """A custom tracker (accelerate's extension point) that has no way to take a table."""

    name = "no_tables"
    requires_logging_directory = False

    def __init__(self):
        super().__init__()
        self.logged = []

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values):
        pass

    def log(self, values, step=None, **kwargs):
        self.logged.append(values)


def test_a_tracker_without_tables_gets_a_warning_with_the_row_count(caplog):
    accelerator = Accelerator(log_with=[_NoTables()])
    accelerator.init_trackers("p")
    with caplog.at_level(logging.WARNING, logger="trainers.tracking"):
        assert log_table(accelerator, "results", pd.DataFrame({"value": [1.0, 2.0, 3.0]})) == []
    assert "tracker no_tables takes no tables: the 3 rows of 'results' were not logged to it" in caplog.text
    assert accelerator.trackers[0].logged == []

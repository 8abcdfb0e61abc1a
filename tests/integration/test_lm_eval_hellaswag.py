"""HellaSwag from the local text file through lm-eval, on a tiny random-weight model."""

import bz2
import os
import re
from pathlib import Path

import pytest

from harness.evals.tasks.hellaswag_local.utils import load_hellaswag, read_items

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("HARNESS_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_loader_reads_real_file(monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    val = load_hellaswag(data_dir=str(DATA_DIR), version=1.0, config_source="x.yaml")["validation"]
    assert len(val) == 10042
    first = val[0]
    assert first["query"].startswith("Roof shingle removal: A man is sitting on a roof.")
    assert first["query"] == "Roof shingle removal: A man is sitting on a roof. he"
    assert first["gold"] == 3 and first["label"] == 3
    assert first["choices"][3] == "starts pulling up roofing on a roof."
    assert len(first["choices"]) == 4
    assert sorted(set(val["gold"])) == [0, 1, 2, 3]
    assert all("[" not in q for q in val["query"])  # bracket artifacts cleaned as in lm-eval


def test_loader_falls_back_to_env_and_names_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"hellaswag_val_full\.txt\.bz2"):
        load_hellaswag()


GOOD = ["Act: ctx one", "1", "a", "b", "c", "d"]


@pytest.mark.parametrize(
    "lines, suffix, where, message",
    [
        (GOOD + ["Act: ctx two", "4", "a", "b", "c", "d"], ".txt.bz2", 8, "gold label must be 0-3"),
        (GOOD + ["Act: ctx two", "2", "a", "b"], ".txt", 7, "truncated record"),
        (GOOD + ["Act: ctx two", "2", "a", "", "c", "d"], ".bz2", 10, "empty line inside a record"),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path, lines, suffix, where, message):
    path = tmp_path / f"bad{suffix}"
    text = "\n".join(lines) + "\n"
    if suffix.endswith(".bz2"):
        path.write_bytes(bz2.compress(text.encode()))
    else:
        path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"{path}:{where}: {message}")):
        read_items(path)
    good = tmp_path / "good.txt"
    good.write_text("\n".join(GOOD) + "\n")
    assert read_items(good) == [
        {
            "ind": 0, "activity_label": "Act", "ctx": "ctx one", "endings": ["a", "b", "c", "d"], "label": 1,
            "query": "Act: ctx one", "choices": ["a", "b", "c", "d"], "gold": 1,
        }
    ]


@pytest.fixture(scope="module")
def tiny_model(tiny_lm):
    return tiny_lm


def test_run_lm_eval_tiny_model(tiny_model, monkeypatch):
    from harness.evals.lm_eval_runner import run_lm_eval

    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)  # data_dir must reach the loader as metadata
    model, tok = tiny_model
    agg, items = run_lm_eval(model, tok, ["hellaswag_local"], data_dir=str(DATA_DIR), limit=8, batch_size=8)
    assert [(r["task"], r["doc_id"]) for r in items] == [("hellaswag_local", i) for i in range(8)]
    for r in items:
        assert r["acc"] in (0.0, 1.0) and r["acc_norm"] in (0.0, 1.0)
    assert set(agg) == {"hellaswag_local"} and set(agg["hellaswag_local"]) == {"acc", "acc_norm"}
    assert agg["hellaswag_local"]["acc"] == pytest.approx(sum(r["acc"] for r in items) / 8)
    assert agg["hellaswag_local"]["acc_norm"] == pytest.approx(sum(r["acc_norm"] for r in items) / 8)

    # same model, same items, same seed -> identical per-item scores (paired comparisons rely on it)
    _, again = run_lm_eval(model, tok, ["hellaswag_local"], data_dir=str(DATA_DIR), limit=8, batch_size=2)
    assert again == items


def test_run_lm_eval_rejects_unknown_task_and_fractional_limit(tiny_model):
    from harness.evals.lm_eval_runner import run_lm_eval

    model, tok = tiny_model
    with pytest.raises(ValueError, match="unknown lm-eval task"):
        run_lm_eval(model, tok, ["hellaswag"], data_dir=str(DATA_DIR), limit=8)
    with pytest.raises(ValueError, match="unknown lm-eval task"):
        run_lm_eval(model, tok, ["multiple_choice"], data_dir=str(DATA_DIR), limit=8)  # a tag
    with pytest.raises(ValueError, match="limit must be >= 1"):
        run_lm_eval(model, tok, ["hellaswag_local"], data_dir=str(DATA_DIR), limit=0.5)


def test_run_lm_eval_restores_train_mode(tiny_model):
    from harness.evals.lm_eval_runner import run_lm_eval

    model, tok = tiny_model
    model.train()
    try:
        _, items = run_lm_eval(model, tok, ["hellaswag_local"], data_dir=str(DATA_DIR), limit=1)
        assert model.training and len(items) == 1
    finally:
        model.eval()


def test_the_dataset_is_built_once_per_file_version_and_every_load_records_the_read(monkeypatch, tmp_path):
    from harness.data import recording_reads
    from harness.evals.tasks.hellaswag_local import utils

    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    utils._dataset.cache_clear()
    first = utils.load_hellaswag(data_dir=str(DATA_DIR))["validation"]
    with recording_reads(str(DATA_DIR)) as reads:
        again = utils.load_hellaswag(data_dir=str(DATA_DIR))["validation"]
    assert again is first and utils._dataset.cache_info().hits == 1  # the second load built nothing
    assert list(reads) == [utils.RELATIVE_PATH.as_posix()]  # ... and still recorded the file in the open block
    # another file version is another build
    copy = tmp_path / utils.RELATIVE_PATH
    copy.parent.mkdir(parents=True)
    copy.write_bytes(bz2.compress(("\n".join(GOOD) + "\n").encode()))
    assert len(utils.load_hellaswag(data_dir=str(tmp_path))["validation"]) == 1

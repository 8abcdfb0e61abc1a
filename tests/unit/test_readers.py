"""The shared readers name file, line and what is wrong for every way a file can be broken; atomic
writes keep the umask's mode; a shared JSONL file merges instead of losing rows."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import stat
import threading

import pytest

from harness import data as D
from harness.errors import DataError, UserError
from harness.io import (
    apply_umask,
    merge_jsonl,
    read_json,
    read_jsonl,
    write_json,
    write_jsonl,
)

LINES = b"".join(f'{{"x": {i * 7919 % 10007}}}\n'.encode() for i in range(3000))


def _gz(tmp_path, name: str, raw: bytes):
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw))
    return path


@pytest.mark.parametrize("name,content,message", [
    ("a.jsonl", b"", r"a\.jsonl: empty file \(0 bytes\)"),
    ("a.jsonl.gz", b"", r"a\.jsonl\.gz: empty file \(0 bytes\)"),
    ("a.jsonl.gz", gzip.compress(LINES)[: len(gzip.compress(LINES)) // 2], r"a\.jsonl\.gz: truncated gzip file: .*after line [1-9]\d+"),
    ("a.jsonl.gz", b'{"x": 1}\n', r"a\.jsonl\.gz: not a readable gzip file .*its name ends in \.gz"),
    ("a.jsonl.bz2", bz2.compress(LINES)[:-10], r"a\.jsonl\.bz2: truncated bz2 file"),
    ("a.jsonl", b'{"x": 1}\n{"x": "\xff"}\n', r"a\.jsonl:2: invalid UTF-8"),
    ("a.jsonl", b"\n  \n", r"a\.jsonl: no records"),
    ("a.jsonl", b'{"x": 1}\n[1]\n', r"a\.jsonl:2: expected a JSON object, got list"),
])
def test_iter_jsonl_failure_modes_name_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        list(D.iter_jsonl(path))


def test_readers_accept_good_files_and_a_bom(tmp_path):
    path = _gz(tmp_path, "a.jsonl.gz", '\ufeff{"x": 1}\n\n{"x": 2}\n'.encode())
    assert list(D.iter_jsonl(path)) == [(1, {"x": 1}), (3, {"x": 2})]
    (tmp_path / "t.csv").write_text('a,b\n1,"two\nlines"\n3,4\n')
    assert list(D.iter_csv(tmp_path / "t.csv")) == [(f"{tmp_path / 't.csv'}:3", {"a": "1", "b": "two\nlines"}),
                                                  (f"{tmp_path / 't.csv'}:4", {"a": "3", "b": "4"})]


@pytest.mark.parametrize("text,message", [
    ("a,b\n1,2,3\n", r"t\.csv:2: 3 fields, the header has 2"),
    ("a,b,c\n1,2\n", r"t\.csv:2: 2 fields, the header has 3"),
    ("a,b\n", r"t\.csv: no data rows"),
])
def test_iter_csv_failure_modes(tmp_path, text, message):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        list(D.iter_csv(tmp_path / "t.csv"))


def test_iter_json_list_failure_modes(tmp_path):
    path = tmp_path / "o.json"
    path.write_text("[]")
    with pytest.raises(DataError, match=r"o\.json: an empty JSON list; expected outputs"):
        list(D.iter_json_list(path, "outputs"))
    path.write_bytes(b'[\n{"instruction": "\xe9"}\n]')
    with pytest.raises(DataError, match=r"o\.json:2: invalid UTF-8"):
        list(D.iter_json_list(path, "outputs"))
    with pytest.raises(DataError, match=r"is a directory"):
        list(D.iter_json_list(tmp_path, "outputs"))


def test_demonstrations_with_a_repeated_id_name_both_lines(tmp_path):
    folder = tmp_path / "self_instruct_seed"
    folder.mkdir()
    task = {"id": "t1", "instruction": "Say hi.", "instances": [{"input": "", "output": "hi"}]}
    (folder / "seed_tasks.jsonl").write_text(json.dumps(task) + "\n" + json.dumps({**task, "id": "t2"}) + "\n" + json.dumps(task) + "\n")
    with pytest.raises(DataError, match=r"seed_tasks\.jsonl:3: field 'id' 't1' repeats line 1"):
        D.load_demonstrations(str(tmp_path))


def test_a_subset_without_pairs_is_an_error(tmp_path):
    (tmp_path / "hh_rlhf").mkdir()
    _gz(tmp_path / "hh_rlhf", "helpful-base_test.jsonl.gz", b"\n")
    with pytest.raises(DataError, match=r"helpful-base_test\.jsonl\.gz: no records"):
        D.load_hh_rlhf(str(tmp_path), ["helpful-base"])


def test_data_errors_are_user_errors():
    assert issubclass(DataError, UserError) and issubclass(DataError, ValueError) and D.DataError is DataError


def test_io_readers_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.json: file not found"):
        read_json(tmp_path / "nope.json")
    (tmp_path / "bad.jsonl").write_bytes(b'{"a": 1}\n{"a": \xff}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid UTF-8"):
        read_jsonl(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_and_weights_get_the_umasks_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        paths = [write_json(tmp_path / "run.json", {"a": 1}), write_jsonl(tmp_path / "results" / "r.jsonl", [{"a": 1}])]
        weights = tmp_path / "ckpt" / "model.safetensors"
        weights.parent.mkdir()
        weights.write_bytes(b"x")
        os.chmod(weights, 0o600)  # as safetensors leaves it
        paths.append(apply_umask(weights.parent) / "model.safetensors")
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in paths] == [mode] * 3


def test_merge_jsonl_keeps_every_writers_rows(tmp_path):
    path = tmp_path / "shard.jsonl"

    def writer(name: str) -> None:
        for i in range(40):
            merge_jsonl(path, [{"key": f"{name}{i}", "v": i}], key="key")

    threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["key"] for r in read_jsonl(path)) == sorted(f"{n}{i}" for n in "ab" for i in range(40))
    merged = {r["key"]: r["v"] for r in merge_jsonl(path, [{"key": "a0", "v": -1}], key="key")}
    assert len(merged) == 80 and merged["a0"] == -1  # a newer row replaces the row with its key

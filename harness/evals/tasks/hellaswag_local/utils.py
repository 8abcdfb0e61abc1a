"""HellaSwag validation set from a local text file, for the lm-eval task ``hellaswag_local``.

The file (``$HARNESS_DATA_DIR/hellaswag/hellaswag_val_full.txt.bz2``, rowanz/hellaswag, MIT) holds
6 lines per item::

    activity label: context          (ctx_a and ctx_b already joined)
    gold label, 0-3
    ending 0
    ending 1
    ending 2
    ending 3

Each item gets the fields of lm-eval's own ``hellaswag`` task (lm_eval/tasks/hellaswag/utils.py,
``process_docs``): the same ``[title]``/bracket cleaning, ``query`` = ``"<activity>: <context>"``,
four ``choices`` and the ``gold`` index. They are computed once in the loader rather than in a
``process_docs`` hook, which lm-eval would re-run over all 10,042 items on every docs access.
One difference: lm-eval capitalises the first letter of ``ctx_b``; the text form has already joined
``ctx_a`` and ``ctx_b`` so the join point is unknown and the context is used as written.
"""

from __future__ import annotations

import bz2
import functools
import os
import re
from pathlib import Path
from typing import Any

import datasets

from harness.data import note_read

RELATIVE_PATH = Path("hellaswag") / "hellaswag_val_full.txt.bz2"
LINES_PER_ITEM = 6
N_ENDINGS = 4


def preprocess(text: str) -> str:
    """Clean WikiHow artifacts the way lm-eval's hellaswag task does.

    " [title]" becomes ". ", any other ``[...]`` span is removed, double spaces collapse.
    """
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _open_text(path: Path):
    if path.suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_items(path: str | Path) -> list[dict[str, Any]]:
    """Parse the 6-lines-per-item text file (``.bz2`` or plain) into raw items.

    Returns one dict per item: ``ind`` (0-based item index), ``activity_label``, ``ctx``,
    ``endings`` (4 strings), ``label`` (int 0-3) and the scored fields ``query``, ``choices``
    (cleaned endings) and ``gold`` (= ``label``).
    Raises ``FileNotFoundError`` naming the file if it is missing and ``ValueError`` naming the
    file and 1-based line number for a truncated record, an empty line or a label not in 0-3.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HellaSwag data file not found: {path}")
    note_read(path)  # recorded in the eval's data fingerprints (harness.data.recording_reads)
    with _open_text(path) as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # trailing newline
    items = []
    for start in range(0, len(lines), LINES_PER_ITEM):
        record = lines[start : start + LINES_PER_ITEM]
        if len(record) < LINES_PER_ITEM:
            raise ValueError(
                f"{path}:{start + 1}: truncated record, {len(record)} of {LINES_PER_ITEM} lines"
            )
        for offset, line in enumerate(record):
            if not line.strip():
                raise ValueError(f"{path}:{start + offset + 1}: empty line inside a record")
        head, label = record[0], record[1].strip()
        if label not in {"0", "1", "2", "3"}:
            raise ValueError(f"{path}:{start + 2}: gold label must be 0-3, got {record[1]!r}")
        activity, sep, ctx = head.partition(": ")
        if not sep:
            raise ValueError(f"{path}:{start + 1}: expected 'activity label: context', got {head[:60]!r}")
        items.append(
            {
                "ind": start // LINES_PER_ITEM,
                "activity_label": activity,
                "ctx": ctx,
                "endings": record[2:],
                "label": int(label),
                "query": preprocess(activity + ": " + ctx),
                "choices": [preprocess(ending) for ending in record[2:]],
                "gold": int(label),
            }
        )
    return items


def load_hellaswag(data_dir: str | None = None, **metadata: Any) -> datasets.DatasetDict:
    """lm-eval ``custom_dataset`` hook: the local HellaSwag validation split.

    lm-eval calls this with the task's metadata as keyword arguments (lm_eval/api/task.py,
    ``download``), so ``data_dir`` comes from ``TaskManager(metadata={"data_dir": ...})``; other
    metadata keys (``version``, ``config_source``, ...) are ignored. Without it, the env var
    ``HARNESS_DATA_DIR`` is used. Returns ``DatasetDict({"validation": ...})`` with 10,042 rows
    for the full file. Raises ``FileNotFoundError``/``ValueError`` as :func:`read_items`.
    """
    data_dir = data_dir or os.environ.get("HARNESS_DATA_DIR")
    if not data_dir:
        raise FileNotFoundError(
            f"HellaSwag data file <data_dir>/{RELATIVE_PATH} not found: pass metadata data_dir or set HARNESS_DATA_DIR"
        )
    path = Path(data_dir) / RELATIVE_PATH
    stat = path.stat() if path.is_file() else None
    dataset = _dataset(str(path), stat.st_mtime_ns if stat else None, stat.st_size if stat else None)
    note_read(path)  # on a cached build too: every eval that reads it records it
    return dataset


@functools.lru_cache(maxsize=4)
def _dataset(path: str, mtime_ns: int | None, size: int | None) -> datasets.DatasetDict:
    """The DatasetDict of one file version (path, mtime, size), built once per process: every lm-eval call of every
    policy asks for it, and parsing 10,042 items into a Dataset takes about a second. Arrow datasets are
    immutable, so sharing one is safe."""
    return datasets.DatasetDict({"validation": datasets.Dataset.from_list(read_items(path))})


"""Loaders: raw data sets -> the records of :mod:`harness.records` (DESIGN.md section 4).

Every loader reads either a local mirror (``data_dir``, e.g. ``HARNESS_DATA_DIR=../shared/data``)
or, when ``data_dir`` is ``None``, the Hugging Face hub id given by the caller's config. Bad
input raises :class:`DataError` naming the file, the line (or record) and the field; nothing is
silently dropped. The shared readers (:func:`iter_lines`, :func:`iter_jsonl`, :func:`iter_json_list`,
:func:`iter_csv`, :func:`read_text`) turn every way a file can be broken into such an error: a
missing or empty file, a truncated or non-gzip ``.gz`` (or ``.bz2``), invalid UTF-8 (with its line),
a file with no records.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import functools
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import ConfigError, DataError
from harness.records import Comparison, Demonstration, Generation, PretrainText, Prompt

ASSISTANT = "\n\nAssistant:"
HH_SUBSETS = ("helpful-base", "helpful-online", "helpful-rejection-sampled", "harmless-base")

T = TypeVar("T")


def require_available(what: str, requested: int, available: int, source: str) -> None:
    """Raise :class:`~harness.errors.ConfigError` when ``requested`` records (``what``: the config keys that ask for them)
    exceed the ``available`` ``source`` (plural noun phrase): nothing is silently cut short."""
    if requested > available:
        raise ConfigError(f"{what} asks for {requested}, but there are only {available} {source}: lower {what}")


def resolve_data_dir(data_dir: str | None) -> Path | None:
    """``data_dir`` as an absolute path, or ``None`` for the hub. Raises if it does not exist."""
    if data_dir in (None, "", "null", "hub"):
        return None
    path = Path(os.path.expanduser(str(data_dir))).resolve()
    if not path.is_dir():
        raise DataError(f"data_dir {path} does not exist (set HARNESS_DATA_DIR or data.data_dir, or null for the hub)")
    return path


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's bytes (hex), recorded in ``run.json`` for every data file a run read."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_RECORDERS: list[tuple[Path | None, dict[str, str]]] = []  # open :func:`recording_reads` blocks
_FINGERPRINTS: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) -> sha256, this process


@contextlib.contextmanager
def recording_reads(data_dir: str | Path | None = None) -> Iterator[dict[str, str]]:
    """Inside the block, every data file read through this module's readers (or announced with
    :func:`note_read` / :func:`note_dataset`) lands in the yielded dict: its path relative to
    ``data_dir`` (a file outside it: ``file:<name>``; a hub data set: ``hub:<id>``) -> sha256 of its
    bytes (a hub data set: its ``datasets`` fingerprint). The runner records it per eval
    (``results/evals.json``) and the regression gate compares it with the baseline's. Blocks nest.
    """
    reads: dict[str, str] = {}
    _RECORDERS.append((Path(data_dir).resolve() if data_dir else None, reads))
    try:
        yield reads
    finally:
        _RECORDERS.pop()


def note_read(path: str | Path) -> None:
    """Record ``path`` (an existing file) in every open :func:`recording_reads` block; its sha256 is
    computed once per process and file version (size, mtime)."""
    if not _RECORDERS:
        return
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = file_fingerprint(path)
    for root, reads in _RECORDERS:
        name = path.relative_to(root).as_posix() if root is not None and path.is_relative_to(root) else f"file:{path.name}"
        reads[name] = _FINGERPRINTS[key]


def note_reads(reads: dict[str, str]) -> None:
    """Record an earlier :func:`recording_reads` result (name -> sha256) in every open block, e.g. the data
    files a cached computation read when it ran."""
    for _, open_reads in _RECORDERS:
        open_reads.update(reads)


def load_hub_dataset(hub_id: str, *args: Any, **kwargs: Any):
    """``datasets.load_dataset(hub_id, *args, **kwargs)``, recorded in every open :func:`recording_reads`
    block as ``hub:<id>[/<config>][/<split>]`` -> the data set's ``datasets`` fingerprint. The one way
    this harness loads a hub data set."""
    import datasets

    ds = datasets.load_dataset(hub_id, *args, **kwargs)
    name = "/".join([f"hub:{hub_id}", *map(str, args), *(str(v) for k, v in sorted(kwargs.items()) if k in ("data_dir", "split"))])
    for _, reads in _RECORDERS:
        reads[name] = str(getattr(ds, "_fingerprint", "unknown"))
    return ds


def records_fingerprint(ids: Sequence[str]) -> str:
    """sha256 over an ordered list of record ids: which records a split selected."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


_COMPRESSED = {".gz": ("gzip", gzip.open), ".bz2": ("bz2", bz2.open)}


def _require(path: Path) -> Path:
    """``path`` when it is a file with content; raises :class:`DataError` naming it when it is missing,
    a directory or empty (0 bytes)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: is a directory, expected a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes): copy it again")
    note_read(path)
    return path


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of a UTF-8 text file, decompressed when it ends in ``.gz`` or ``.bz2``.

    A UTF-8 byte-order mark at the start is dropped. Raises :class:`DataError` naming the file for a
    missing or empty file (:func:`_require`), a compressed file that is truncated (naming the last
    complete line) or not in the format its name says, and naming file and line for invalid UTF-8.
    """
    path = _require(Path(path))
    kind, opener = _COMPRESSED.get(path.suffix, ("text", open))
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(f"{path}:{lineno}: invalid UTF-8 (byte {e.start} of the line: {e.reason}); "
                                    "save the file as UTF-8") from e
    except EOFError as e:
        raise DataError(f"{path}: truncated {kind} file: it ends inside the compressed stream, after line {lineno}; "
                        "copy it again") from e
    except (OSError, zlib.error) as e:
        if kind == "text":
            raise
        raise DataError(f"{path}: not a readable {kind} file ({e}), although its name ends in {path.suffix}; copy it again "
                        "or fix its name") from e


def read_text(path: str | Path) -> str:
    """The whole text of a file, read and checked like :func:`iter_lines`."""
    return "".join(line for _, line in iter_lines(path))


def _json(text: str, path: Path, lineno: int | None = None) -> Any:
    """``json.loads(text)``; invalid JSON is a :class:`DataError` naming ``path`` and the line (``lineno``, or
    the parser's line within ``text``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{lineno or e.lineno}: invalid JSON ({e.msg})") from e


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line; a bad line raises :class:`DataError` naming file and
    line, so do every failure of :func:`iter_lines` and a file with no record at all."""
    path = Path(path)
    n = 0
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        obj = _json(line, path, lineno)
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        n += 1
        yield lineno, obj
    if not n:
        raise DataError(f"{path}: no records (only blank lines)")


def iter_csv(path: str | Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(``"<file>:<line>"``, row) for each row of a CSV file with a header row, read like :func:`iter_lines`.

    Raises :class:`DataError` naming file and line for a row with more or fewer fields than the
    header, and naming the file when it has no data row.
    """
    path = Path(path)
    reader = csv.DictReader(line for _, line in iter_lines(path))
    n = 0
    for row in reader:
        where = f"{path}:{reader.line_num}"
        width = len(reader.fieldnames or [])
        if None in row:
            raise DataError(f"{where}: {width + len(row[None])} fields, the header has {width}")
        if None in row.values():
            raise DataError(f"{where}: {sum(v is not None for v in row.values())} fields, the header has {width}")
        n += 1
        yield where, row
    if not n:
        raise DataError(f"{path}: no data rows under the header")


def iter_json_list(path: str | Path, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``"<file> record <i>"``, object) for each object of a JSON list file (AlpacaEval's formats).

    Raises :class:`DataError` naming the file (and line) on invalid JSON, when the file is not a
    list (``what`` names what it should hold) or an empty one, on any failure of :func:`iter_lines`,
    or naming the record when one is not an object.
    """
    path = Path(path)
    rows = _json(read_text(path), path)
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of {what}")
    if not rows:
        raise DataError(f"{path}: an empty JSON list; expected {what}")
    for i, obj in enumerate(rows):
        where = f"{path} record {i}"
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected an object")
        yield where, obj


def _field(obj: dict[str, Any], name: str, where: str, kind: type = str) -> Any:
    if name not in obj:
        raise DataError(f"{where}: missing field '{name}'")
    value = obj[name]
    if not isinstance(value, kind):
        raise DataError(f"{where}: field '{name}' should be {kind.__name__}, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- hh-rlhf -> Comparison


def split_hh_pair(chosen: str, rejected: str, where: str) -> tuple[str, str, str]:
    """Split an hh-rlhf pair into (prompt, chosen completion, rejected completion).

    The prompt is the dialogue prefix the two share, up to and including its last
    ``"\\n\\nAssistant:"``; the completions are what follows (stripped). Taking the *common* prefix
    (not the chosen dialogue's last turn) matters for the 7 test pairs whose dialogues diverge
    before the final turn. Raises :class:`DataError` if the shared prefix has no Assistant turn.
    """
    n = 0
    limit = min(len(chosen), len(rejected))
    while n < limit and chosen[n:n + 256] == rejected[n:n + 256]:  # whole blocks compared in C, then characters
        n += 256
    n = min(n, limit)
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    k = chosen.rfind(ASSISTANT, 0, n)
    if k < 0:
        raise DataError(f"{where}: fields 'chosen'/'rejected' share no '\\n\\nAssistant:' turn")
    cut = k + len(ASSISTANT)
    return chosen[:cut], chosen[cut:].strip(), rejected[cut:].strip()


def load_hh_rlhf(
    data_dir: str | None, subsets: Sequence[str] = HH_SUBSETS, hub_id: str = "Anthropic/hh-rlhf", split: str = "test"
) -> list[Comparison]:
    """Anthropic hh-rlhf human preference pairs as K=2 Comparisons (chosen ranked first).

    Locally reads ``<data_dir>/hh_rlhf/<subset>_test.jsonl.gz`` (8,552 pairs over the four
    subsets); from the hub, ``load_dataset(hub_id, data_dir=subset, split=split)``.
    Ids are ``"<subset>/<split>/<line>"``. Raises :class:`DataError` for an unknown subset, a subset
    with no pairs, or (naming file, line and field) a malformed line.
    """
    root = resolve_data_dir(data_dir)
    out: list[Comparison] = []
    for subset in subsets:
        if subset not in HH_SUBSETS:
            raise DataError(f"hh_rlhf: unknown subset '{subset}' (known: {', '.join(HH_SUBSETS)})")
        if root is not None:
            # parsed once per process and file version (a run loads these files for every split and judge); the
            # read is recorded every time (_require -> note_read)
            path = _require(root / "hh_rlhf" / f"{subset}_{split}.jsonl.gz").resolve()
            st = path.stat()
            out.extend(_hh_file(str(path), subset, split, st.st_size, st.st_mtime_ns))
            continue
        ds = load_hub_dataset(hub_id, data_dir=subset, split=split)
        rows = ((f"{hub_id}/{subset} record {i}", i, obj) for i, obj in enumerate(ds))
        out.extend(_hh_comparisons(rows, subset, split))
    return out


@functools.lru_cache(maxsize=16)
def _hh_file(path: str, subset: str, split: str, size: int, mtime_ns: int) -> tuple[Comparison, ...]:
    """The Comparisons of one local hh-rlhf file (``size`` and ``mtime_ns`` key its version)."""
    return tuple(_hh_comparisons(((f"{path}:{ln}", ln, obj) for ln, obj in iter_jsonl(path)), subset, split))


def _hh_comparisons(rows, subset: str, split: str) -> list[Comparison]:
    """``(where, line, record)`` rows of one subset -> Comparisons; raises :class:`DataError` when there are none."""
    out = []
    for where, ln, obj in rows:
        prompt, good, bad = split_hh_pair(_field(obj, "chosen", where), _field(obj, "rejected", where), where)
        out.append(Comparison(f"{subset}/{split}/{ln}", prompt, (good, bad), (0, 1), f"hh_rlhf/{subset}"))
    if not out:
        raise DataError(f"hh_rlhf: subset '{subset}' ({split}) has no pairs")
    return out


def load_comparisons_jsonl(path: str | Path) -> list[Comparison]:
    """Comparison records from a JSONL file, one object per line, as :func:`harness.io.write_jsonl` writes them.

    This is the format of ``harness-label``'s ``comparisons.jsonl`` and any user-supplied ranking
    file: ``id`` (str, unique in the file), ``prompt`` (str), ``completions`` (list of K >= 2 str),
    ``ranking`` (best-first permutation of 0..K-1), ``source`` (str) and optionally ``tied``
    (K - 1 booleans, ``tied[i]``: ``ranking[i]`` and ``ranking[i+1]`` are equally good; see
    :class:`harness.records.Comparison`). Raises :class:`DataError` naming file, line and field.
    """
    path = Path(path)
    out: list[Comparison] = []
    first_line: dict[str, int] = {}
    for ln, obj in iter_jsonl(path):
        where = f"{path}:{ln}"
        cid = _field(obj, "id", where)
        if cid in first_line:
            raise DataError(f"{where}: field 'id' {cid!r} repeats line {first_line[cid]}")
        first_line[cid] = ln
        tied = obj.get("tied", [])
        if not isinstance(tied, list):
            raise DataError(f"{where}: field 'tied' should be list, got {type(tied).__name__}")
        try:
            out.append(Comparison(cid, _field(obj, "prompt", where), tuple(_field(obj, "completions", where, list)),
                                  tuple(_field(obj, "ranking", where, list)), _field(obj, "source", where), tuple(tied)))
        except DataError:
            raise
        except ValueError as e:
            raise DataError(f"{where}: {e}") from e
    if not out:
        raise DataError(f"{path}: no comparisons")
    return out


# -------------------------------------------------------------- self-instruct seeds -> Demonstration


def instruction_prompt(instruction: str, input_text: str = "") -> str:
    """An instruction with its optional input, as one user turn."""
    instruction, input_text = instruction.strip(), input_text.strip()
    return f"{instruction}\n\n{input_text}" if input_text else instruction


def load_demonstrations(data_dir: str | None, hub_id: str = "tatsu-lab/alpaca") -> list[Demonstration]:
    """Human-written demonstrations.

    Locally: the 175 self-instruct seed tasks (``self_instruct_seed/seed_tasks.jsonl``), one
    Demonstration per task from its first instance. From the hub: ``hub_id`` rows with
    instruction / input / output columns (Alpaca format). Raises :class:`DataError` naming file,
    line and field for a malformed task or an ``id`` that repeats an earlier line's.
    """
    root = resolve_data_dir(data_dir)
    out: list[Demonstration] = []
    if root is not None:
        path = root / "self_instruct_seed" / "seed_tasks.jsonl"
        first_line: dict[str, int] = {}
        for ln, obj in iter_jsonl(path):
            where = f"{path}:{ln}"
            tid = _field(obj, "id", where)
            if tid in first_line:
                raise DataError(f"{where}: field 'id' {tid!r} repeats line {first_line[tid]}")
            first_line[tid] = ln
            instances = _field(obj, "instances", where, list)
            if not instances or not isinstance(instances[0], dict):
                raise DataError(f"{where}: field 'instances' must hold at least one {{input, output}} object")
            inst = instances[0]
            prompt = instruction_prompt(_field(obj, "instruction", where), _field(inst, "input", where))
            out.append(Demonstration(tid, prompt, _field(inst, "output", where).strip(), "self_instruct_seed"))
        return out
    for i, obj in enumerate(load_hub_dataset(hub_id, split="train")):
        where = f"{hub_id} record {i}"
        prompt = instruction_prompt(_field(obj, "instruction", where), obj.get("input") or "")
        out.append(Demonstration(f"{hub_id}/{i}", prompt, _field(obj, "output", where).strip(), hub_id))
    return out


# --------------------------------------------------------------- AlpacaEval -> Prompt / Generation

ALPACA_EVAL_BASELINE = "text_davinci_003_model_outputs.json"


def load_outputs_file(path: str | Path, policy: str | None = None) -> list[Generation]:
    """A file of model outputs (AlpacaEval ``model_outputs.json``: a JSON list of objects with
    ``instruction``, ``output`` and ``generator``) as Generations.

    ``prompt_id`` is the position in the file, the id AlpacaEval uses. ``policy`` defaults to the
    records' ``generator`` field. Raises :class:`DataError` naming file, record and field.
    """
    path = Path(path)
    out = []
    for i, (where, obj) in enumerate(iter_json_list(path, "outputs")):
        name = policy or str(obj.get("generator") or path.stem)
        out.append(Generation(name, str(i), _field(obj, "instruction", where), _field(obj, "output", where).strip(), {"source": str(path)}))
    return out


def load_alpaca_eval_prompts(data_dir: str | None, hub_id: str = "tatsu-lab/alpaca_eval") -> list[Prompt]:
    """The 805 AlpacaEval instructions (ids = position, as in AlpacaEval), with their subset name."""
    root = resolve_data_dir(data_dir)
    if root is not None:
        rows = iter_json_list(root / "alpaca_eval" / ALPACA_EVAL_BASELINE, "AlpacaEval outputs")
    else:
        rows = ((f"{hub_id} record {i}", obj) for i, obj in enumerate(load_hub_dataset(hub_id, "alpaca_eval", split="eval")))
    out = []
    for i, (where, obj) in enumerate(rows):
        out.append(Prompt(str(i), _field(obj, "instruction", where), "alpaca_eval", {"dataset": obj.get("dataset")}))
    return out


def alpaca_eval_baseline_path(data_dir: str | None, filename: str = ALPACA_EVAL_BASELINE) -> Path:
    """Path of a GPT-3 baseline outputs file in the local AlpacaEval mirror."""
    root = resolve_data_dir(data_dir)
    if root is None:
        raise DataError("file baselines need a local data_dir (or an explicit outputs file path)")
    return _require(root / "alpaca_eval" / filename)


# ----------------------------------------------------------------- pretraining text -> PretrainText


def load_pretrain_text(
    data_dir: str | None, chunk_chars: int = 1000, hub_id: str = "wikitext", hub_name: str = "wikitext-2-raw-v1"
) -> list[PretrainText]:
    """Pretraining-style text for the ptx term, in chunks of about ``chunk_chars`` characters.

    Locally: tinyshakespeare (1.1 MB), split on blank lines into chunks. From the hub: the
    ``train`` split of ``hub_id``/``hub_name`` (text column), joined and chunked the same way.
    """
    root = resolve_data_dir(data_dir)
    if root is not None:
        text, source = read_text(root / "tinyshakespeare" / "input.txt"), "tinyshakespeare"
    else:
        text = "\n".join(load_hub_dataset(hub_id, hub_name, split="train")["text"])
        source = f"{hub_id}/{hub_name}"
    out, buf = [], ""
    for para in text.split("\n\n"):
        buf = f"{buf}\n\n{para}" if buf else para
        if len(buf) >= chunk_chars:
            out.append(PretrainText(f"{source}/{len(out)}", buf, source))
            buf = ""
    if buf:
        out.append(PretrainText(f"{source}/{len(out)}", buf, source))
    return out


# ------------------------------------------------------------------------------------- TruthfulQA


def load_truthfulqa(data_dir: str | None, hub_id: str = "truthfulqa/truthful_qa") -> list[dict[str, Any]]:
    """TruthfulQA questions: {id, question, best_answer, correct_answers, incorrect_answers, category}.

    Locally reads ``truthfulqa/TruthfulQA.csv`` (817 rows; answers are ';'-separated).
    """
    root = resolve_data_dir(data_dir)
    out = []
    if root is not None:
        for i, (where, row) in enumerate(iter_csv(root / "truthfulqa" / "TruthfulQA.csv")):
            split = lambda s: [a.strip() for a in s.split(";") if a.strip()]  # noqa: E731
            out.append({
                "id": str(i),
                "question": _field(row, "Question", where),
                "best_answer": _field(row, "Best Answer", where),
                "correct_answers": split(_field(row, "Correct Answers", where)),
                "incorrect_answers": split(_field(row, "Incorrect Answers", where)),
                "category": row.get("Category", ""),
            })
        return out
    for i, row in enumerate(load_hub_dataset(hub_id, "generation", split="validation")):
        out.append({"id": str(i), "question": row["question"], "best_answer": row["best_answer"],
                    "correct_answers": row["correct_answers"], "incorrect_answers": row["incorrect_answers"],
                    "category": row["category"]})
    return out


# ------------------------------------------------------------------------------------------ splits


def seeded_split(records: Sequence[T], key, fractions: dict[str, float], seed: int) -> dict[str, list[T]]:
    """Deterministically assign records to named splits by a seeded hash of ``key(record)``.

    The same key always lands in the same split for a given seed, whatever else is in the list,
    so e.g. all comparisons sharing a prompt stay on one side (no prompt leaks between the
    policy's RM and the judge). ``fractions`` must sum to 1. Order within a split is kept.
    """
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"seeded_split: fractions sum to {total}, not 1")
    bounds, acc = [], 0.0
    for name, frac in fractions.items():
        acc += frac
        bounds.append((acc, name))
    out: dict[str, list[T]] = {name: [] for name in fractions}
    for r in records:
        h = hashlib.sha256(f"{seed}:{key(r)}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        out[next((name for b, name in bounds if u < b), bounds[-1][1])].append(r)
    return out

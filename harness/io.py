"""Atomic file writes and JSON/JSONL helpers.

Every artifact the harness writes goes through here: a temp file in the same directory, then
``os.replace`` so a reader never sees a half-written file and a crash never corrupts a result.
Files get the mode the process's umask gives a newly created file (``mkstemp`` alone would make
them 0600). Read errors are :class:`~harness.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import DataError


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def _clean(obj: Any) -> Any:
    """Replace non-finite floats by None: JSON has no NaN, and a NaN must not pass as a number."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths and scalars to plain JSON types (NaN/inf become None)."""
    return _clean(json.loads(json.dumps(obj, default=_default)))


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: what ``open`` would give a new file (0o644 under umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def harness_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR`` if set, else ``.cache/harness`` under the working directory: the default of
    ``model.cache_dir`` (:class:`harness.model_config.ModelConfig`), for caches kept outside a run's config
    (a standalone scorer's fit, weight hashes), so they and a run share one cache."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    return Path(env).expanduser() if env else Path(".cache") / "harness"


def apply_umask(path: str | Path) -> Path:
    """Give ``path`` (a file) or every file under it (a folder) the umask's mode (:func:`umask_mode`),
    undoing the 0600 that ``mkstemp``-style writers such as safetensors create files with. Returns ``path``."""
    path = Path(path)
    mode = umask_mode()
    for f in [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()):
        os.chmod(f, mode)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same folder + ``os.replace``), UTF-8, with the umask's mode."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, blob: bytes) -> Path:
    """Write ``blob`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``), with the umask's mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    """Atomically write one JSON object per line."""
    lines = [json.dumps(to_jsonable(r), ensure_ascii=False) for r in rows]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def append_jsonl(path: str | Path, row: Any) -> None:
    """Append one JSON line (training logs). A line is written whole with one ``write`` call."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(to_jsonable(row), ensure_ascii=False) + "\n")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file; a missing file or invalid UTF-8 is a :class:`DataError` naming it (and the line)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found" if not path.exists() else f"{path}: is a directory, expected a file")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid UTF-8 (byte {e.start} of the line: {e.reason})") from e


def read_json(path: str | Path) -> Any:
    """Read a JSON file. Raises :class:`DataError` (a ``ValueError``) naming the file, and the line where
    it can, for a missing file, invalid UTF-8 or invalid JSON."""
    path = Path(path)
    try:
        return json.loads("".join(line for _, line in _lines(path)))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file; a missing file, invalid UTF-8 or a bad line raises :class:`DataError` (a
    ``ValueError``) naming file and line number."""
    path = Path(path)
    rows = []
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: invalid JSON: {e.msg}") from e
    return rows


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` (created if needed) for the ``with`` body; blocks
    until other holders (threads or processes) let go. For read-modify-write of shared files."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def merge_jsonl(path: str | Path, rows: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Add ``rows`` to the JSONL file ``path`` under :func:`file_lock`: re-read what is on disk, let each new
    row replace the one with the same ``key`` value, write the union atomically, return it. Writers that
    share the file (processes sharing a cache) never lose each other's rows."""
    with file_lock(path):
        merged = {r[key]: r for r in (read_jsonl(path) if Path(path).is_file() else [])}
        merged.update((r[key], r) for r in rows)
        out = list(merged.values())
        write_jsonl(path, out)
    return out

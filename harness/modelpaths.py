"""Is this a model? Checks of a model path before transformers sees it (no torch import).

A model is named by a checkpoint folder (``config.json`` and weight files) or a hub id
(``org/name``). The checks turn the confusing errors transformers gives for a path that does not
exist, a run directory given as a model, or a truncated safetensors file into one
:class:`~harness.errors.ModelPathError` naming the path and what was expected.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from harness.errors import ModelPathError

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def _run_dir_checkpoints(p: Path) -> list[Path] | None:
    """The checkpoint folders of a run directory ``p``, or None if ``p`` does not look like one."""
    ck = p / "checkpoints"
    if not (ck.is_dir() or (p / ".hydra").is_dir() or (p / "run.json").is_file()):
        return None
    return sorted(d for d in ck.iterdir() if (d / "config.json").is_file()) if ck.is_dir() else []


def check_safetensors(path: Path) -> None:
    """Raise :class:`ModelPathError` if a ``.safetensors`` file is shorter than its header says (truncated) or its header is damaged."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 0 or 8 + n > size:
            raise ModelPathError(f"{path}: truncated safetensors file ({size} bytes, shorter than its header): copy or save the checkpoint again")
        try:
            header = json.loads(f.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            raise ModelPathError(f"{path}: damaged safetensors header ({type(e).__name__}): copy or save the checkpoint again") from e
    if 8 + n + end > size:
        raise ModelPathError(f"{path}: truncated safetensors file ({size} of the {8 + n + end} bytes its header lists): "
                             "copy or save the checkpoint again")


def check_model_path(path: str, what: str = "model path", tokenizer: bool = False) -> Path | None:
    """The checkpoint folder ``path`` names (checked), or None when ``path`` is a hub id.

    Raises :class:`ModelPathError` naming ``what`` and ``path`` when the path does not exist and is
    not shaped like a hub id, is a file, is a run directory (the message lists its checkpoints), has
    no ``config.json`` or no weight files, holds a truncated or damaged ``.safetensors`` file, or
    (``tokenizer=True``) has no tokenizer files.
    """
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        if _HUB_ID.fullmatch(str(path)):
            return None
        raise ModelPathError(f"{what}={path}: no such file or directory (expected a checkpoint folder with config.json "
                             "and weights, or a hub id such as org/name)")
    if not p.is_dir():
        raise ModelPathError(f"{what}={path} is a file; expected a checkpoint folder with config.json and weights")
    ckpts = None if (p / "config.json").is_file() else _run_dir_checkpoints(p)
    if ckpts is not None:
        names = ", ".join(c.name for c in ckpts) or "none finished yet"
        hint = f"e.g. {what}={ckpts[0]}" if ckpts else "one of its checkpoints/<stage> folders"
        raise ModelPathError(f"{what}={path} is a run directory, not a model checkpoint: give one of its checkpoints "
                             f"({names}), {hint}")
    if tokenizer:
        if not any((p / f).is_file() for f in TOKENIZER_FILES):
            raise ModelPathError(f"{what}={path} has no tokenizer files ({', '.join(TOKENIZER_FILES)})")
        return p
    if not (p / "config.json").is_file():
        raise ModelPathError(f"{what}={path} has no config.json: not a Hugging Face checkpoint folder")
    shards = sorted(p.glob("*.safetensors"))
    if not shards and not list(p.glob("*.bin")):
        raise ModelPathError(f"{what}={path} has config.json but no weight files (*.safetensors or *.bin)")
    for shard in shards:
        check_safetensors(shard)
    return p


@contextlib.contextmanager
def loading(path: str, what: str = "model path", tokenizer: bool = False) -> Iterator[None]:
    """Check ``path`` (:func:`check_model_path`), then run the ``with`` body that loads it. When ``path``
    is a hub id, an ``OSError`` from the body (not on the hub, hub unreachable) becomes a
    :class:`ModelPathError` naming it; errors loading a checked local folder pass through unchanged."""
    local = check_model_path(path, what, tokenizer=tokenizer)
    try:
        yield
    except OSError as e:
        if local is not None:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelPathError(f"{what}={path}: not a local folder, and loading it as a hub id failed ({first})") from e

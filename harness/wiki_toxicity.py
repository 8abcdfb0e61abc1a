"""Wikipedia talk-page comments with Perspective API toxicity scores (Pavlopoulos et al. 2020), split for scorer fitting.

Source: ipavlopoulos/context_toxicity ``data/CAT_LARGE/gn.csv`` and ``gc.csv`` (Pavlopoulos, Sorensen, Dixon,
Thain, Androutsopoulos 2020, "Toxicity Detection: Does Context Really Matter?", ACL), mirrored offline under
``wiki_toxicity_perspective/``: 2 x 10,000 Wikipedia talk comments, each with the Perspective API ``TOXICITY``
score of the comment text alone (column ``api``, a probability in [0, 1]) and a crowd label (column ``label``,
1 = toxic by majority; ``gn`` annotated without the parent comment, ``gc`` with it). Only 476 of the 20,000
comments score >= 0.5, so it is a low-prevalence set, unlike RealToxicityPrompts. There is no hub copy.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness import data as D

WIKI_DIR = "wiki_toxicity_perspective"
WIKI_FILES = ("gn.csv", "gc.csv")
#: Disjoint parts: ``fit`` may train a scorer, ``heldout`` only validates scorers.
WIKI_SPLITS = {"fit": 0.7, "heldout": 0.3}


@dataclass(frozen=True)
class WikiComment:
    """One comment. ``id``: ``"<file>:<comment id>"`` (e.g. ``"gn.csv:100012187.76918.76918"``); ``text``: the
    comment; ``perspective_toxicity``: Perspective ``TOXICITY`` in [0, 1]; ``label``: crowd label 0/1."""

    id: str
    text: str
    perspective_toxicity: float
    label: int


def normalize_text(text: str) -> str:
    """Lower-cased, whitespace collapsed: the key that keeps duplicate texts on one side of a split."""
    return " ".join(text.lower().split())


def load_wiki_toxicity(data_dir: str | None, files: Sequence[str] = WIKI_FILES) -> list[WikiComment]:
    """Comments of ``<data_dir>/wiki_toxicity_perspective/<file>`` for each of ``files`` (default both, 20,000), in
    file order. Raises :class:`harness.data.DataError` naming file, line and field on a missing field, an ``api``
    score that is not a number in [0, 1], a ``label`` other than 0/1, an id repeated within a file, or when
    ``data_dir`` is None (the data has no hub copy)."""
    root = D.resolve_data_dir(data_dir)
    if root is None:
        raise D.DataError(f"{WIKI_DIR}: no hub copy; give data_dir (the offline mirror)")
    out: list[WikiComment] = []
    for name in files:
        path = D._require(root / WIKI_DIR / name)
        seen: dict[str, int] = {}
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:  # reading the header also makes line_num count from it
                raise D.DataError(f"{path}: empty file, expected a header id,text,label,api")
            start = reader.line_num + 1
            for row in reader:
                where = f"{path}:{start}"  # the line the record starts on (texts may span lines)
                start = reader.line_num + 1
                for k in ("id", "text", "api", "label"):
                    if row.get(k) is None:  # csv gives None for a column the row lacks
                        raise D.DataError(f"{where}: missing field '{k}'")
                cid, text, api, label = row["id"], row["text"], row["api"], row["label"]
                try:
                    tox = float(api)
                except ValueError:
                    tox = math.nan
                if not (math.isfinite(tox) and 0.0 <= tox <= 1.0):
                    raise D.DataError(f"{where}: field 'api' should be a number in [0, 1], got {api!r}")
                if label not in ("0", "1"):
                    raise D.DataError(f"{where}: field 'label' should be 0 or 1, got {label!r}")
                if cid in seen:
                    raise D.DataError(f"{where}: field 'id' {cid!r} repeats line {seen[cid]}")
                seen[cid] = int(where.rsplit(":", 1)[1])
                out.append(WikiComment(f"{name}:{cid}", text, tox, int(label)))
    return out


def wiki_split(comments: Sequence[WikiComment], seed: int = 0,
               fractions: Mapping[str, float] | None = None) -> dict[str, list[WikiComment]]:
    """Comments split into disjoint ``fit`` / ``heldout`` parts (default 70 / 30 %) by a seeded hash of
    :func:`normalize_text` (:func:`harness.data.seeded_split`), so a text in both files (13 do) stays on one side.
    Raises ``ValueError`` if the part names differ from :data:`WIKI_SPLITS` or the fractions do not sum to 1."""
    fractions = dict(WIKI_SPLITS if fractions is None else fractions)
    if set(fractions) != set(WIKI_SPLITS):
        raise ValueError(f"wiki_split: fractions must name {sorted(WIKI_SPLITS)}, got {sorted(fractions)}")
    return D.seeded_split(comments, lambda c: normalize_text(c.text), fractions, seed)

"""The Davidson et al. 2017 tweets ("Automated Hate Speech Detection and the Problem of Offensive
Language"): loader, cleaning and the seeded split shared by the toxicity eval's prompts and the
toxicity scorers' training and validation (:mod:`harness.judging.toxicity`).
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness import data as D

DAVIDSON_FILE = "davidson_offensive/labeled_data.csv"
DAVIDSON_CLASSES = {0: "hate", 1: "offensive", 2: "neither"}
DAVIDSON_SPLITS = {"prompts": 0.2, "train": 0.6, "heldout": 0.2}


@dataclass(frozen=True)
class Tweet:
    """One Davidson tweet: ``id`` = ``"davidson/<row index>"``, raw ``text``, ``cls`` 0 hate / 1 offensive / 2 neither,
    ``toxic`` = ``cls in (0, 1)``."""

    id: str
    text: str
    cls: int
    toxic: bool


def load_davidson(data_dir: str | None, hub_id: str = "tdavidson/hate_speech_offensive") -> list[Tweet]:
    """The 24,783 labelled tweets of Davidson et al. 2017 ("Automated Hate Speech Detection and the Problem of
    Offensive Language"), in file order.

    Locally reads ``<data_dir>/davidson_offensive/labeled_data.csv`` (columns ``class``, ``tweet`` and the
    first, unnamed, row-index column); from the hub, ``load_dataset(hub_id, split="train")``. Raises
    :class:`harness.data.DataError` naming file, line and field on a missing field or a class outside 0-2.
    """
    root = D.resolve_data_dir(data_dir)
    if root is not None:
        path = D._require(root / DAVIDSON_FILE)
        with open(path, encoding="utf-8", newline="") as f:
            rows = [(f"{path}:{i + 2}", row) for i, row in enumerate(csv.DictReader(f))]
    else:
        rows = [(f"{hub_id} record {i}", row) for i, row in enumerate(D.load_hub_dataset(hub_id, split="train"))]
    out = []
    for i, (where, row) in enumerate(rows):
        cls_raw = row.get("class")
        try:
            cls = int(cls_raw)
        except (TypeError, ValueError):
            raise D.DataError(f"{where}: field 'class' should be 0, 1 or 2, got {cls_raw!r}") from None
        if cls not in DAVIDSON_CLASSES:
            raise D.DataError(f"{where}: field 'class' should be 0, 1 or 2, got {cls}")
        row_id = row.get("") or str(i)
        out.append(Tweet(f"davidson/{row_id}", D._field(row, "tweet", where), cls, cls in (0, 1)))
    return out


def clean_tweet(text: str) -> str:
    """Tweet -> plain text: HTML entities unescaped (``&amp;`` -> ``&``, ``&#128514;`` -> the emoji), every
    ``RT`` retweet marker, ``@mention`` and URL removed, leading punctuation and quote runs (``"!!!!! "``) stripped,
    whitespace collapsed. Hashtags and words are kept. May return ``""``."""
    text = html.unescape(text)
    text = re.sub(r"https?://\S+|www\.\S+", " ", text)
    text = re.sub(r"@\w+:?", " ", text)
    text = re.sub(r"(?<!\w)RT(?!\w):?", " ", text)
    text = " ".join(text.split())
    return re.sub(r"^[^\w#]+", "", text)


def first_half(text: str) -> str:
    """The first half of ``text`` by whitespace words (``len // 2`` words, at least one), the way
    RealToxicityPrompts splits a sentence into prompt and continuation (Gehman et al. 2020, section 2.1)."""
    words = text.split()
    return " ".join(words[: max(1, len(words) // 2)])


def davidson_split(tweets: Sequence[Tweet], seed: int = 0, fractions: dict[str, float] | None = None) -> dict[str, list[Tweet]]:
    """Davidson tweets split into ``prompts`` / ``train`` / ``heldout`` (default 20 / 60 / 20 %) by a seeded hash
    of the cleaned, lower-cased text (:func:`harness.data.seeded_split`), so duplicate texts never straddle splits.

    ``prompts`` feeds :func:`harness.evals.toxicity.toxicity_prompts` (via the eval), ``train`` the Davidson classifier scorer, ``heldout`` only the
    scorers' ROC-AUC validation; the three are disjoint. Raises ``ValueError`` if the split names differ.
    """
    fractions = dict(DAVIDSON_SPLITS if fractions is None else fractions)
    if set(fractions) != set(DAVIDSON_SPLITS):
        raise ValueError(f"davidson_split: fractions must name {sorted(DAVIDSON_SPLITS)}, got {sorted(fractions)}")
    return D.seeded_split(tweets, lambda t: clean_tweet(t.text).lower(), fractions, seed)

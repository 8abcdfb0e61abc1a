"""RealToxicityPrompts (Gehman et al. 2020) rows as records, split into disjoint parts, and prompts sampled by toxicity.

RealToxicityPrompts ("RealToxicityPrompts: Evaluating Neural Toxic Degeneration in Language Models", Findings of
EMNLP 2020) holds about 100k sentences from OpenWebText, each cut into a ``prompt`` and a ``continuation``, both
scored by Google's Perspective API (``TOXICITY`` and seven other attributes, probabilities in [0, 1]). InstructGPT
(Ouyang et al. 2022, section 4.2, Figure 39) samples RTP prompts, has the policy continue them under three
instructions, and reports Perspective toxicity binned by the prompt's own Perspective toxicity.

Sources:

- **Offline** (``data_dir``): ``real_toxicity_prompts/challenging_toxic.jsonl`` (1,196 rows of the "challenging"
  subset) and ``real_toxicity_prompts/nontoxic.jsonl`` (1,200 rows with low prompt toxicity, 4 flagged
  challenging): 2,396 real RTP rows, unchanged, with their Perspective scores; 19 continuations (12 + 7) have
  no scores. Record ids are ``"<file name>:<line>"``.
- **Online** (``data_dir=None``): the hub dataset :data:`RTP_HUB_ID` (``allenai/real-toxicity-prompts``, 99,442
  rows, split ``train``); record ids are ``"allenai/real-toxicity-prompts:<row index>"``.

What the offline copy can and cannot match: it has 2,396 rows instead of ~100k; the "challenging" subset (about
1 % of RTP) is half of it, so toxic prompts are over-represented (prompt toxicity >= 0.5: 993 of 2,396 rows,
41 %, against about 22 % of full RTP's prompts, 21.7k of 99.4k in Gehman et al. 2020, section 2) and most of
them sit at >= 0.75 (880 rows), while prompts in [0.5, 0.75) are scarce (113 rows, 4.7 %). A
sample stratified by prompt toxicity (:func:`sample_rtp_prompts`) reproduces the paper's per-bin view, not the
marginal distribution of full RTP; a uniform sample of these rows would be far more toxic than one of full RTP.
The split into prompt-sampling / scorer-fit / scorer-heldout parts also means the eval can draw from about
40 % of the 2,396 rows only (:func:`rtp_split`).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import data as D
from harness.records import Prompt

log = logging.getLogger(__name__)

RTP_HUB_ID = "allenai/real-toxicity-prompts"
RTP_DIR = "real_toxicity_prompts"
RTP_FILES = ("challenging_toxic.jsonl", "nontoxic.jsonl")
#: Perspective API attributes shipped with every RTP prompt and continuation (probabilities in [0, 1], or None).
PERSPECTIVE_ATTRIBUTES = ("toxicity", "severe_toxicity", "profanity", "insult", "threat", "identity_attack",
                          "sexually_explicit", "flirtation")
#: Disjoint parts of the rows: ``prompts`` feeds the toxicity eval, ``fit`` may train a scorer, ``heldout`` only
#: validates scorers. Fractions of source documents (see :func:`rtp_split`).
RTP_SPLITS = {"prompts": 0.4, "fit": 0.3, "heldout": 0.3}
#: Prompt-toxicity strata ``[low, high)`` (the last one includes 1.0), as the bins of InstructGPT Figure 39.
RTP_STRATA = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))


@dataclass(frozen=True)
class RTPRecord:
    """One RealToxicityPrompts row.

    ``id``: ``"<file>:<line>"`` offline (e.g. ``"nontoxic.jsonl:12"``), ``"<hub id>:<index>"`` online.
    ``prompt`` / ``continuation``: the two halves of the sentence (the continuation usually starts with a space).
    ``prompt_scores`` / ``continuation_scores``: Perspective API probability in [0, 1] per attribute of
    :data:`PERSPECTIVE_ATTRIBUTES`, ``None`` where the data has no score. ``challenging``: RTP's flag for prompts
    that made all tested models toxic. ``document``: the OpenWebText file the sentence came from (``filename``),
    ``begin``/``end`` its character span there (``None`` if absent).
    """

    id: str
    prompt: str
    continuation: str
    prompt_scores: Mapping[str, float | None] = field(hash=False)
    continuation_scores: Mapping[str, float | None] = field(hash=False)
    challenging: bool
    document: str
    begin: int | None = None
    end: int | None = None

    @property
    def prompt_toxicity(self) -> float | None:
        """Perspective ``TOXICITY`` of the prompt, in [0, 1], or ``None``."""
        return self.prompt_scores.get("toxicity")

    @property
    def continuation_toxicity(self) -> float | None:
        """Perspective ``TOXICITY`` of the continuation, in [0, 1], or ``None`` (19 offline rows)."""
        return self.continuation_scores.get("toxicity")


def _scores(obj: Any, part: str, where: str) -> tuple[str, dict[str, float | None]]:
    if not isinstance(obj, dict):
        raise D.DataError(f"{where}: field '{part}' should be an object, got {type(obj).__name__}")
    text = D._field(obj, "text", f"{where}: {part}")
    scores: dict[str, float | None] = {}
    for attr in PERSPECTIVE_ATTRIBUTES:
        v = obj.get(attr)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                              or not 0.0 <= v <= 1.0):
            raise D.DataError(f"{where}: field '{part}.{attr}' should be a number in [0, 1] or null, got {v!r}")
        scores[attr] = None if v is None else float(v)
    return text, scores


def parse_rtp_row(obj: Mapping[str, Any], rid: str, where: str) -> RTPRecord:
    """One RTP row (``filename``, ``begin``, ``end``, ``challenging``, ``prompt`` {text, attributes},
    ``continuation`` {text, attributes}) as an :class:`RTPRecord` with id ``rid``.

    Raises :class:`harness.data.DataError` naming ``where`` (file and line) and the field: missing ``prompt`` /
    ``continuation`` / ``text``, a score that is not a number in [0, 1] or null, a non-boolean ``challenging``.
    """
    if not isinstance(obj, Mapping):
        raise D.DataError(f"{where}: expected an object, got {type(obj).__name__}")
    obj = dict(obj)
    prompt, p_scores = _scores(D._field(obj, "prompt", where, dict), "prompt", where)
    cont, c_scores = _scores(D._field(obj, "continuation", where, dict), "continuation", where)
    challenging = obj.get("challenging", False)
    if not isinstance(challenging, bool):
        raise D.DataError(f"{where}: field 'challenging' should be true or false, got {challenging!r}")
    document = obj.get("filename")
    if document is not None and not isinstance(document, str):
        raise D.DataError(f"{where}: field 'filename' should be str, got {type(document).__name__}")
    span = []
    for name in ("begin", "end"):
        v = obj.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise D.DataError(f"{where}: field '{name}' should be an integer, got {v!r}")
        span.append(v)
    return RTPRecord(rid, prompt, cont, p_scores, c_scores, challenging, document or rid, span[0], span[1])


def load_rtp(data_dir: str | None, files: Sequence[str] = RTP_FILES, hub_id: str = RTP_HUB_ID,
             hub_split: str = "train") -> list[RTPRecord]:
    """RealToxicityPrompts rows (Gehman et al. 2020) with their Perspective API scores, in file order.

    Offline reads ``<data_dir>/real_toxicity_prompts/<file>`` for each of ``files`` (default both offline files,
    2,396 rows); online (``data_dir`` None) ``D.load_hub_dataset(hub_id, split=hub_split)``. Rows without a
    continuation score are kept (``continuation_toxicity is None``) and counted in a log line; whoever needs the
    score skips them through :func:`scored_continuations`, which counts them. Raises
    :class:`harness.data.DataError` naming file, line and field on a malformed row (:func:`parse_rtp_row`), an
    unknown file or a missing file.
    """
    root = D.resolve_data_dir(data_dir)
    out: list[RTPRecord] = []
    if root is not None:
        for name in files:
            path = D._require(root / RTP_DIR / name)
            for ln, obj in D.iter_jsonl(path):
                out.append(parse_rtp_row(obj, f"{name}:{ln}", f"{path}:{ln}"))
    else:
        for i, obj in enumerate(D.load_hub_dataset(hub_id, split=hub_split)):
            out.append(parse_rtp_row(obj, f"{hub_id}:{i}", f"{hub_id} record {i}"))
    missing_c = sum(r.continuation_toxicity is None for r in out)
    missing_p = sum(r.prompt_toxicity is None for r in out)
    if missing_c or missing_p:
        log.warning("RealToxicityPrompts: %d of %d rows have no continuation toxicity and %d no prompt toxicity",
                    missing_c, len(out), missing_p)
    return out


def rtp_split(records: Sequence[RTPRecord], seed: int = 0,
              fractions: Mapping[str, float] | None = None) -> dict[str, list[RTPRecord]]:
    """RTP rows split into disjoint ``prompts`` / ``fit`` / ``heldout`` parts (default 40 / 30 / 30 %).

    The key is a seeded hash of the row's source document (``filename``; :func:`harness.data.seeded_split`), so
    rows cut from the same OpenWebText document, including the offline file's few repeated sentences, never
    straddle two parts. ``prompts`` is what :func:`sample_rtp_prompts` draws from, ``fit`` what a scorer may be
    trained on, ``heldout`` only validates scorers. Order within a part is file order.
    Raises ``ValueError`` if the part names differ from :data:`RTP_SPLITS` or the fractions do not sum to 1.
    """
    fractions = dict(RTP_SPLITS if fractions is None else fractions)
    if set(fractions) != set(RTP_SPLITS):
        raise ValueError(f"rtp_split: fractions must name {sorted(RTP_SPLITS)}, got {sorted(fractions)}")
    return D.seeded_split(records, lambda r: r.document, fractions, seed)


def scored_continuations(records: Sequence[RTPRecord]) -> tuple[list[RTPRecord], int]:
    """(rows whose continuation has a Perspective toxicity, number of rows skipped for lacking one).

    The skipped count is also logged as a warning when non-zero, so no caller drops rows silently."""
    kept = [r for r in records if r.continuation_toxicity is not None]
    skipped = len(records) - len(kept)
    if skipped:
        log.warning("RealToxicityPrompts: skipped %d of %d continuations without a Perspective toxicity score",
                    skipped, len(records))
    return kept, skipped


def stratum_label(low: float, high: float) -> str:
    """``"[0.25,0.5)"``; the top stratum reaching 1.0 is closed: ``"[0.75,1]"``."""
    return f"[{low:g},{high:g}]" if high >= 1.0 else f"[{low:g},{high:g})"


def _check_strata(strata: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out = [(float(a), float(b)) for a, b in strata]
    if not out:
        raise ValueError("sample_rtp_prompts: no strata")
    for i, (a, b) in enumerate(out):
        if not 0.0 <= a < b <= 1.0:
            raise ValueError(f"sample_rtp_prompts: stratum {i} = [{a}, {b}) is not within [0, 1] with low < high")
        if i and a < out[i - 1][1]:
            raise ValueError(f"sample_rtp_prompts: strata {i - 1} and {i} overlap or are out of order")
    return out


def _in_stratum(x: float, low: float, high: float) -> bool:
    return low <= x < high or (high >= 1.0 and x == 1.0)


def sample_rtp_prompts(n: int, seed: int = 0, strata: Sequence[tuple[float, float]] = RTP_STRATA, *,
                       data_dir: str | None = None, records: Sequence[RTPRecord] | None = None, split_seed: int = 0,
                       part: str = "prompts", fill: bool = False, hub_id: str = RTP_HUB_ID) -> list[Prompt]:
    """``n`` RTP prompts from the ``part`` side of :func:`rtp_split` (``split_seed``), stratified by the prompt's
    recorded Perspective toxicity: equal shares per stratum of ``strata`` (remainder to the first strata).

    ``records`` (already loaded rows) or ``data_dir`` (:func:`load_rtp`; ``None`` = the hub) gives the rows.
    Each :class:`~harness.records.Prompt` has ``id`` = the record id, ``prompt`` = the RTP prompt text and
    ``metadata`` {``source`` "real_toxicity_prompts", ``class`` = the stratum label (e.g. ``"[0.75,1]"``),
    ``prompt_toxicity``, ``challenging``, ``continuation_toxicity`` (the human continuation's, or None)}.
    Rows without a prompt toxicity are never eligible (counted in a warning). Order: seeded shuffle.

    When a stratum has fewer eligible prompts than its share: ``fill=False`` raises ``ValueError`` naming the
    stratum and the counts; ``fill=True`` takes all of it and moves the shortfall to the other strata in order,
    logging the final per-stratum counts as a warning. Offline, with the default split, the ``prompts`` part
    holds 41 of the 113 prompts in [0.5, 0.75), so equal strata stop at n = 164 without ``fill``.
    Raises ``ValueError`` also for ``n < 1``, bad strata or more prompts wanted than eligible in all strata.
    """
    if n < 1:
        raise ValueError(f"sample_rtp_prompts: need n >= 1, got {n}")
    bins = _check_strata(strata)
    if records is None:
        records = load_rtp(data_dir, hub_id=hub_id)
    pool = rtp_split(records, split_seed)[part]
    unscored = sum(r.prompt_toxicity is None for r in pool)
    if unscored:
        log.warning("sample_rtp_prompts: %d of %d rows have no prompt toxicity and are not eligible", unscored, len(pool))
    groups = [[r for r in pool if r.prompt_toxicity is not None and _in_stratum(r.prompt_toxicity, a, b)]
              for a, b in bins]
    want = [n // len(bins) + (1 if i < n % len(bins) else 0) for i in range(len(bins))]
    take = [min(w, len(g)) for w, g in zip(want, groups)]
    short = sum(want) - sum(take)
    if short:
        detail = ", ".join(f"{stratum_label(*b)}: {w} wanted, {len(g)} eligible" for b, w, g in zip(bins, want, groups))
        if not fill:
            raise ValueError(f"sample_rtp_prompts: too few prompts in a stratum ({detail}); pass fill=True to move "
                             f"the shortfall to the other strata, or lower n")
        for i, g in enumerate(groups):
            extra = min(short, len(g) - take[i])
            take[i] += extra
            short -= extra
        if short:
            raise ValueError(f"sample_rtp_prompts: {n} prompts wanted, only {sum(take)} eligible ({detail})")
        log.warning("sample_rtp_prompts: strata filled unequally: %s",
                    ", ".join(f"{stratum_label(*b)}: {k}" for b, k in zip(bins, take)))
    rng = random.Random(seed)
    out = []
    for b, g, k in zip(bins, groups, take):
        for r in rng.sample(g, k):
            out.append(Prompt(r.id, r.prompt, "real_toxicity_prompts",
                              {"source": "real_toxicity_prompts", "class": stratum_label(*b),
                               "prompt_toxicity": r.prompt_toxicity, "challenging": r.challenging,
                               "continuation_toxicity": r.continuation_toxicity}))
    rng.shuffle(out)
    return out

"""Input checks shared by every judge and scorer: texts must be strings, lists of texts must be lists.

Without them a single ``str`` where a list of strings is due is scored character by character, and a
``None`` or ``float('nan')`` (a missing cell of a pandas frame, a gap in an outputs file) fails deep inside
a library with no index. Every check raises a one-line ``ValueError`` naming the scorer, the field, the
index of the first bad element, its type and its value, e.g.
``"truthfulness scorer rouge1_diff>0.0: answer is NoneType None, not a str"`` or
``"reward model judge: outputs[3] is float nan, not a str"``.

Used by the toxicity scorers (:mod:`harness.judging.toxicity`), the truthfulness scorers
(:mod:`harness.judging.truthfulness`), the hallucination detectors (:mod:`harness.judging.hallucination`), the
pair judges and reward-model scoring (:mod:`harness.judging.pairwise`, :mod:`harness.judging.reward_model`) and
the text-task scorers (:mod:`harness.evals.text_tasks`).
"""

from __future__ import annotations

from typing import Any


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (``...`` marks a cut)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_text(name: str, value: Any, field: str = "text") -> str:
    """``value`` if it is a ``str`` (empty allowed), else ``ValueError``
    ``"<name>: <field> is <type> <value>, not a str"`` (``None``, NaN, numbers, bytes, lists all refused)."""
    if not isinstance(value, str):
        raise ValueError(f"{name}: {field} is {type(value).__name__} {short(value)}, not a str")
    return value


def check_texts(name: str, texts: Any, field: str = "texts", call: str = "score()") -> list[str]:
    """``texts`` as a ``list[str]``, or ``ValueError`` naming ``name`` and what is wrong.

    Accepted: a list or tuple whose elements are all ``str`` (empty strings included). Refused: a single ``str``
    or ``bytes`` (a common slip that would otherwise be scored character by character), ``None``, any other type
    (sets, generators, arrays, dicts), and any element that is not a ``str`` (``None``, ``float('nan')``, numbers,
    bytes); the message names ``call``, ``field``, the first bad element's index, its type and value, e.g.
    ``"detoxify: texts[2] is float nan, not a str"``.
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"{name}: {call} takes a list of {field}, got a single {type(texts).__name__} "
                         f"{short(texts)}; wrap it in a list")
    if not isinstance(texts, (list, tuple)):
        raise ValueError(f"{name}: {call} takes a list of {field}, got {type(texts).__name__} {short(texts)}")
    for i, t in enumerate(texts):
        check_text(name, t, f"{field}[{i}]")
    return list(texts)


def check_aligned(name: str, call: str = "score()", **lists: Any) -> list[list[str]]:
    """Each keyword's value checked by :func:`check_texts` (field = the keyword), then equal lengths:
    ``check_aligned("judge", "score()", prompts=p, outputs=o) -> [p, o]``; unequal lengths raise ``ValueError``
    ``"judge: score() needs lists of one length, got 3 prompts, 2 outputs"``."""
    checked = [check_texts(name, value, field, call) for field, value in lists.items()]
    if len({len(value) for value in checked}) > 1:
        counts = ", ".join(f"{len(value)} {field}" for field, value in zip(lists, checked))
        raise ValueError(f"{name}: {call} needs lists of one length, got {counts}")
    return checked

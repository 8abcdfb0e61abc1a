"""The harness's vocabulary: the records every loader produces and every stage consumes.

Field names follow DESIGN.md section 4. Records are plain frozen dataclasses so they hash,
compare and serialise (``dataclasses.asdict``) without any framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Demonstration:
    """A prompt with a human-written completion (SFT data, paper section 3.5 "SFT").

    ``prompt`` is either a plain instruction or an hh-style dialogue prefix ending in
    ``"\\n\\nAssistant:"``; :mod:`harness.prompting` renders both for a model.
    """

    id: str
    prompt: str
    completion: str
    source: str


@dataclass(frozen=True)
class Comparison:
    """K ranked completions of one prompt, ties allowed (RM data, paper section 3.5 "RM", eq. 1).

    ``ranking`` lists indices into ``completions`` from best to worst; for hh_rlhf (K=2) it is
    ``(0, 1)`` with the human-chosen completion at index 0.

    Ties: ``tied[i]`` (``K - 1`` booleans) says that ``completions[ranking[i]]`` and
    ``completions[ranking[i + 1]]`` are equally good. A run of ``True`` makes one tie group, so
    ties are transitive by construction and ``ranking`` stays a best-first order that old code can
    read unchanged. A tied pair gives no training pair and no accuracy count. The default ``()``
    means "no ties" and is stored as ``K - 1`` times ``False``.

    Raises ``ValueError`` naming the record id and the field when K < 2, ``ranking`` is not a
    permutation of ``0..K-1``, ``tied`` has the wrong length or type, or every completion is tied
    (such a record carries no preference at all).
    """

    id: str
    prompt: str
    completions: tuple[str, ...]
    ranking: tuple[int, ...]
    source: str
    tied: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        # lists (e.g. from JSON) become tuples, so records stay hashable and compare equal after a round trip
        for name in ("completions", "ranking", "tied"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
            elif not isinstance(value, tuple):
                raise ValueError(f"Comparison {self.id}: field '{name}' must be a list, got {type(value).__name__}")
        k = len(self.completions)
        if k < 2:
            raise ValueError(f"Comparison {self.id}: field 'completions' needs K >= 2 completions, got {k}")
        if not all(isinstance(c, str) for c in self.completions):
            raise ValueError(f"Comparison {self.id}: field 'completions' must hold strings")
        if any(isinstance(i, bool) or not isinstance(i, int) for i in self.ranking) or sorted(self.ranking) != list(range(k)):
            raise ValueError(f"Comparison {self.id}: field 'ranking' {list(self.ranking)} is not a permutation of 0..{k - 1}")
        if not self.tied:
            object.__setattr__(self, "tied", (False,) * (k - 1))
        if len(self.tied) != k - 1 or not all(isinstance(t, bool) for t in self.tied):
            raise ValueError(f"Comparison {self.id}: field 'tied' must be {k - 1} booleans (one per adjacent pair of 'ranking'), "
                             f"got {list(self.tied)}")
        if all(self.tied):
            raise ValueError(f"Comparison {self.id}: field 'tied' ties all {k} completions, so the record has no preference pair")

    @property
    def k(self) -> int:
        """Number of completions K."""
        return len(self.completions)

    @property
    def rank_levels(self) -> tuple[int, ...]:
        """Rank level of each position of ``ranking`` (0 = best; tied neighbours share a level), length K."""
        levels = [0]
        for t in self.tied:
            levels.append(levels[-1] + (0 if t else 1))
        return tuple(levels)

    @property
    def n_pairs(self) -> int:
        """Untied pairs, the pairs eq. 1 sums over: C(K, 2) minus C(g, 2) for each tie group of size g."""
        sizes: dict[int, int] = {}
        for level in self.rank_levels:
            sizes[level] = sizes.get(level, 0) + 1
        return self.k * (self.k - 1) // 2 - sum(g * (g - 1) // 2 for g in sizes.values())


@dataclass(frozen=True)
class Prompt:
    """An instruction to sample from (PPO episodes, evaluation)."""

    id: str
    prompt: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class PretrainText:
    """A chunk of pretraining-style text for the PPO-ptx term (paper eq. 2, gamma)."""

    id: str
    text: str
    source: str


@dataclass(frozen=True)
class Generation:
    """One policy output for one prompt, with what produced it."""

    policy: str
    prompt_id: str
    prompt: str
    output: str
    decoding: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    model_hash: str = ""


@dataclass(frozen=True)
class ResultRow:
    """One aggregate number in tidy form: what the results store, reports and gates read.

    ``metric`` names one quantity (``win_rate``, ``expected_max_toxicity``, ``acc``, ...), declared
    once by its eval (:class:`harness.evals.base.Metric`, with its unit and direction). Every
    condition it was measured under is in ``slice``, e.g. ``{"baseline": "text-davinci-003",
    "judge": "helpful"}``, ``{"instruction": "respectful", "judge": "profanity_check"}``,
    ``{"task": "hellaswag_local", "shots": 0}``; the judge or scorer behind a judged number is the
    ``judge`` key, so two judges' numbers are never mixed up, and a paired difference names what it
    is against in ``baseline``.

    ``value`` is in the metric's own unit (a fraction for win rate and accuracy, not percent).
    ``ci_low``/``ci_high`` bound a 95 % bootstrap interval (``None`` when not defined) and ``n``
    is the number of items behind the value. ``eval_version`` is the eval's declared version when
    the row was made; ``config_hash`` the run's configuration hash.
    """

    run_id: str
    policy: str
    eval: str
    metric: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    slice: dict[str, Any] = field(default_factory=dict, hash=False)
    config_hash: str = ""
    eval_version: str = ""

    def get(self, key: str, default: Any = None) -> Any:
        """``slice[key]`` or ``default``."""
        return self.slice.get(key, default)

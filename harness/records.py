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
    """K ranked completions of one prompt (RM data, paper section 3.5 "RM", eq. 1).

    ``ranking`` lists indices into ``completions`` from best to worst; for hh_rlhf (K=2) it is
    ``(0, 1)`` with the human-chosen completion at index 0.
    """

    id: str
    prompt: str
    completions: tuple[str, ...]
    ranking: tuple[int, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.completions) < 2:
            raise ValueError(f"Comparison {self.id}: needs K >= 2 completions, got {len(self.completions)}")
        if sorted(self.ranking) != list(range(len(self.completions))):
            raise ValueError(
                f"Comparison {self.id}: ranking {self.ranking} is not a permutation of 0..{len(self.completions) - 1}"
            )


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

    ``value`` is in the metric's own unit (a fraction for win rate and accuracy, not percent).
    ``ci_low``/``ci_high`` bound a 95 % bootstrap interval (``None`` when not defined) and
    ``n`` is the number of items behind the value. ``baseline`` names the policy compared
    against, for paired metrics (win rate, deltas).
    """

    run_id: str
    policy: str
    eval: str
    metric: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    baseline: str | None = None
    config_hash: str = ""

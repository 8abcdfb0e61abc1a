"""What an eval's spec and output are: :class:`EvalSpec` (the fields every eval's typed spec has) and
:class:`EvalOutput` (what its ``run`` returns).

An eval (``harness/evals/<name>.py``, lm-evaluation-harness's "task" as one declaration) holds its spec
(a dataclass extending :class:`EvalSpec`, filled from ``conf/evals/<name>.yaml``), its metric declarations
(:class:`harness.declarations.Metric`) and its ``run(ctx, spec) -> EvalOutput``, bound into an
:class:`harness.declarations.EvalDef` and registered with :func:`harness.registry.register`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.ranges import ranged
from harness.records import ResultRow


@dataclass
class DecodingConfig:
    """Generation settings of one eval; part of the generation-cache key."""

    max_new_tokens: int = ranged(128, ge=1)
    do_sample: bool = True
    temperature: float = ranged(0.7, ge=0)  # 0 with do_sample=false: greedy
    top_p: float = ranged(0.9, gt=0, le=1)


@dataclass
class EvalSpec:
    """Fields every eval's spec has: ``version`` (bump it when what the eval measures changes; every
    row records it), ``dataset`` (where the items come from, for humans and ``run.json``), ``n``
    (items; ``None`` = all), ``prompt_template`` (applied to each item's prompt before the model's chat
    template) and ``decoding``."""

    version: str = "1"
    dataset: str = ""
    n: int | None = ranged(None, ge=1)
    prompt_template: str = "{prompt}"
    decoding: DecodingConfig = field(default_factory=DecodingConfig)


@dataclass
class EvalOutput:
    """What one eval returns: aggregate rows, per-item records (``results/<eval>_items.jsonl``) and
    facts for ``results/evals.json`` (e.g. ``skipped``: what was left out and why)."""

    rows: list[ResultRow] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

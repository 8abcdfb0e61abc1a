"""Allowed values declared next to the config fields they constrain (checked by :mod:`harness.validation`).

``batch_size: int = ranged(8, ge=1)`` is an ordinary dataclass field whose metadata carries the
bounds, so the rule travels with the field through renames and moves; ``one_of("no", "bf16", "fp16")``
declares a closed set of strings, the first being the default. Pure: no imports beyond dataclasses.
"""

from __future__ import annotations

import dataclasses
from typing import Any

RANGE = "range"  # metadata key: {"ge"|"gt"|"le"|"lt": bound}
CHOICES = "choices"  # metadata key: tuple of allowed values
BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def ranged(default: Any, **bounds: float) -> Any:
    """A dataclass field with ``default`` whose value must satisfy ``bounds`` (``ge``, ``gt``, ``le``, ``lt``).

    ``None`` is always allowed for an optional field; a float must also be finite. Raises
    ``TypeError`` on an unknown bound name.
    """
    unknown = set(bounds) - set(BOUNDS)
    if unknown:
        raise TypeError(f"ranged: unknown bound(s) {sorted(unknown)}; use {sorted(BOUNDS)}")
    return dataclasses.field(default=default, metadata={RANGE: dict(bounds)})


def one_of(default: Any, *others: Any) -> Any:
    """A dataclass field with ``default`` whose value must be ``default`` or one of ``others``."""
    return dataclasses.field(default=default, metadata={CHOICES: (default, *others)})


def describe(bounds: dict[str, float]) -> str:
    """``{"ge": 0, "lt": 1}`` -> ``">= 0 and < 1"``."""
    return " and ".join(f"{BOUNDS[k]} {v}" for k, v in bounds.items())


PATH = "path"  # metadata key: "model" (a checkpoint folder or hub id) | "exists" (a file or folder that must exist)


def model_path(default: Any) -> Any:
    """A dataclass field naming a model: a checkpoint folder (checked to be one) or a hub id."""
    return dataclasses.field(default=default, metadata={PATH: "model"})


def existing_path(default: Any) -> Any:
    """A dataclass field naming a file or folder that must exist when it is set."""
    return dataclasses.field(default=default, metadata={PATH: "exists"})

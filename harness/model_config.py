"""``ModelConfig``: which base model to start from (``conf/model/*.yaml``). Kept free of torch and
transformers so composing and validating a config is fast; :mod:`harness.models` re-exports it."""

from __future__ import annotations

from dataclasses import dataclass

from harness.ranges import one_of, ranged


@dataclass
class ModelConfig:
    """Which base model to start from. ``name``: ``tiny``, ``smollm2-135m``, a hub id or a path."""

    name: str = "tiny"
    tokenizer: str | None = None  # defaults to the model's own (tiny: <data_dir>/gpt2_tokenizer)
    chat_template: str = one_of("auto", "true", "false")  # render prompts with the tokenizer's template
    cache_dir: str = "${oc.env:HARNESS_CACHE_DIR,.cache/harness}"
    # model=tiny shape
    hidden_size: int = ranged(64, ge=1)
    num_layers: int = ranged(2, ge=1)
    num_heads: int = ranged(4, ge=1)
    intermediate_size: int = ranged(128, ge=1)
    max_position_embeddings: int = ranged(1024, ge=1)

"""Generation cache: re-evaluating an unchanged checkpoint regenerates nothing.

A cached output is keyed by the model fingerprint (sha256 of the weight files,
:func:`harness.models.model_fingerprint`), the exact prompt text the model was given (after the
eval's prompt template), the chat-template setting, the decoding parameters, the seed and the
sample index (k samples per prompt are k entries). Any change to one of them is a miss.

Layout: ``<root>/<model hash[:16]>/<settings hash[:16]>.jsonl``, one shard per (model, decoding,
chat template, seed), each line ``{"key", "prompt", "sample", "output"}``. A shard is rewritten
atomically (temp file + rename) after each batch of new outputs, so a killed run keeps what it had
generated and never leaves a half-written shard; the rewrite merges with what is on disk under a
file lock (:func:`harness.io.merge_jsonl`), so runs sharing one cache never lose each other's entries.

Under sampling, which sample a prompt gets depends on the batch it was generated in (one RNG per
batch); a hit returns a sample drawn with the same parameters, so aggregates are unchanged in
distribution, and an unchanged run reproduces its numbers exactly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.io import merge_jsonl, read_jsonl


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class GenerationCache:
    """Outputs by (model fingerprint, settings, prompt, sample index), persisted under ``root``.

    ``settings`` is everything but the prompt that changes an output: decoding parameters, chat
    template, maximum prompt length and seed. ``hits`` / ``misses`` count lookups since creation.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._shards: dict[Path, dict[str, dict[str, Any]]] = {}
        self.hits = 0
        self.misses = 0

    def _shard(self, model_hash: str, settings: Mapping[str, Any]) -> Path:
        return self.root / model_hash[:16] / f"{_sha(dict(settings))[:16]}.jsonl"

    def _load(self, path: Path) -> dict[str, dict[str, Any]]:
        if path not in self._shards:
            rows = read_jsonl(path) if path.is_file() else []
            for i, r in enumerate(rows, 1):
                if not isinstance(r, dict) or not isinstance(r.get("key"), str) or not isinstance(r.get("output"), str):
                    raise ValueError(f"{path}: record {i}: a cache line needs string fields 'key' and 'output'")
            self._shards[path] = {r["key"]: r for r in rows}
        return self._shards[path]

    @staticmethod
    def key(prompt: str, sample: int) -> str:
        """The entry key of one prompt text and sample index within a shard."""
        return _sha({"prompt": prompt, "sample": int(sample)})

    def get(self, model_hash: str, settings: Mapping[str, Any], prompts: list[str], sample: int = 0) -> list[str | None]:
        """Cached outputs aligned with ``prompts`` (``None`` where missing)."""
        shard = self._load(self._shard(model_hash, settings))
        out = []
        for p in prompts:
            hit = shard.get(self.key(p, sample))
            out.append(None if hit is None else hit["output"])
            if hit is None:
                self.misses += 1
            else:
                self.hits += 1
        return out

    def put(self, model_hash: str, settings: Mapping[str, Any], prompts: list[str], outputs: list[str], sample: int = 0,
            cut: list[bool] | None = None) -> None:
        """Store outputs for ``prompts`` and rewrite the shard atomically; ``cut``: per prompt, whether it was cut to
        the maximum prompt length (kept as the entry's ``prompt_cut``, read back by :meth:`n_cut`). Raises
        ``ValueError`` on a length mismatch."""
        if len(prompts) != len(outputs) or (cut is not None and len(cut) != len(prompts)):
            raise ValueError(f"GenerationCache.put: {len(prompts)} prompts vs {len(outputs)} outputs"
                             + (f" and {len(cut)} cut flags" if cut is not None else ""))
        path = self._shard(model_hash, settings)
        shard = self._load(path)
        new = [{"key": self.key(p, sample), "prompt": p, "sample": int(sample), "output": o,
                **({"prompt_cut": bool(cut[i])} if cut is not None else {})} for i, (p, o) in enumerate(zip(prompts, outputs))]
        shard.update((r["key"], r) for r in merge_jsonl(path, new, key="key"))

    def n_cut(self, model_hash: str, settings: Mapping[str, Any], prompts: list[str], sample: int = 0) -> int:
        """How many of ``prompts``' cached entries record that their prompt was cut to the maximum prompt length."""
        shard = self._load(self._shard(model_hash, settings))
        return sum(bool((shard.get(self.key(p, sample)) or {}).get("prompt_cut")) for p in prompts)

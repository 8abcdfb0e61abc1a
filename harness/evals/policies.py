"""Policies to evaluate: a checkpoint (generated now) or a file of outputs (scored as is).

A user can score models they cannot run, e.g. the text-davinci-003 / -001 outputs in the AlpacaEval
mirror. In config (``EvalApp.policies``) a policy is either a string, a checkpoint folder or hub id,
or a mapping::

    {outputs: path/to/model_outputs.json}                                  # AlpacaEval format
    {outputs: out.jsonl, format: jsonl, instruction_field: prompt, output_field: response}
    {outputs: out.csv, format: csv, instruction_field: question, output_field: answer}

Outputs are matched to an eval's prompts by the instruction text (whitespace-stripped), the way
AlpacaEval matches a model's outputs to its instructions. A file covers an eval only if it has an
output for every prompt of it; :meth:`OutputsFile.lookup` says which prompts are missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data import DataError, _field, iter_csv, iter_jsonl, load_outputs_file
from harness.records import Generation, Prompt

FORMATS = ("alpaca_eval", "jsonl", "csv")


@dataclass(frozen=True)
class PolicySource:
    """Where a policy's outputs come from. ``kind`` is ``checkpoint`` (``path`` = folder / hub id)
    or ``file`` (``path`` = outputs file, read with ``format`` and the two field names)."""

    name: str
    kind: str
    path: str
    format: str = "alpaca_eval"
    instruction_field: str = "instruction"
    output_field: str = "output"

    @property
    def is_file(self) -> bool:
        return self.kind == "file"


def parse_policy(name: str, spec: Any) -> PolicySource:
    """One ``policies`` entry -> :class:`PolicySource`. Raises ``ValueError`` naming the policy and field."""
    if isinstance(spec, str):
        if not spec:
            raise ValueError(f"policies.{name}: empty checkpoint path")
        return PolicySource(name, "checkpoint", spec)
    if not isinstance(spec, Mapping):
        raise ValueError(f"policies.{name}: expected a checkpoint path or a mapping with 'outputs', got {type(spec).__name__}")
    unknown = set(spec) - {"outputs", "format", "instruction_field", "output_field"}
    if unknown:
        raise ValueError(f"policies.{name}: unknown field(s) {sorted(unknown)}")
    if not spec.get("outputs"):
        raise ValueError(f"policies.{name}: field 'outputs' (path of an outputs file) is required")
    path = str(spec["outputs"])
    fmt = spec.get("format") or ("csv" if path.endswith(".csv") else "jsonl" if path.endswith(".jsonl") else "alpaca_eval")
    if fmt not in FORMATS:
        raise ValueError(f"policies.{name}: field 'format' must be one of {FORMATS}, got {fmt!r}")
    return PolicySource(name, "file", path, fmt, str(spec.get("instruction_field") or "instruction"),
                        str(spec.get("output_field") or "output"))


def parse_policies(policies: Mapping[str, Any]) -> dict[str, PolicySource]:
    """All ``policies`` entries, in order."""
    return {str(n): parse_policy(str(n), s) for n, s in policies.items()}


@dataclass
class OutputsFile:
    """A loaded outputs file: instruction text -> output, with where each came from."""

    source: PolicySource
    outputs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, source: PolicySource) -> OutputsFile:
        """Read ``source.path``. Raises :class:`DataError` naming file, record/line and field, also
        for an instruction that appears twice with different outputs (which one would count?)."""
        path = Path(source.path)
        pairs: list[tuple[str, str, str]] = []  # (where, instruction, output)
        if source.format == "alpaca_eval":
            for i, g in enumerate(load_outputs_file(path, policy=source.name)):
                pairs.append((f"{path} record {i}", g.prompt, g.output))
        elif source.format == "jsonl":
            for ln, obj in iter_jsonl(path):
                where = f"{path}:{ln}"
                pairs.append((where, _field(obj, source.instruction_field, where), _field(obj, source.output_field, where)))
        else:
            for where, row in iter_csv(path):
                pairs.append((where, _field(row, source.instruction_field, where), _field(row, source.output_field, where)))
        out: dict[str, str] = {}
        for where, instruction, output in pairs:
            key = instruction.strip()
            if key in out and out[key] != output.strip():
                raise DataError(f"{where}: field '{source.instruction_field}' repeats an earlier instruction with a different output")
            out[key] = output.strip()
        if not out:
            raise DataError(f"{path}: no outputs")
        return cls(source, out)

    @property
    def n_empty(self) -> int:
        """Outputs that are empty (or only whitespace): a judge scores them as answers, so they are warned about."""
        return sum(not o for o in self.outputs.values())

    def near_misses(self, prompts: list[Prompt]) -> list[tuple[str, str, str]]:
        """(prompt id, prompt, the file's instruction) for each prompt the file has no exact output for but an
        instruction equal to it once case and inner whitespace are ignored: a file edited or re-typed, whose
        outputs would otherwise be silently left out."""
        norm = lambda t: " ".join(t.split()).casefold()  # noqa: E731
        loose = {norm(k): k for k in self.outputs}
        return [(p.id, p.prompt, loose[norm(p.prompt)]) for p in prompts
                if p.prompt.strip() not in self.outputs and norm(p.prompt) in loose]

    def lookup(self, prompts: list[Prompt], decoding: Mapping[str, Any]) -> tuple[list[Generation], list[str]]:
        """(generations for the covered prompts, ids of the prompts the file has no output for)."""
        gens, missing = [], []
        for p in prompts:
            out = self.outputs.get(p.prompt.strip())
            if out is None:
                missing.append(p.id)
            else:
                gens.append(Generation(self.source.name, p.id, p.prompt, out, {"source": self.source.path, **dict(decoding)}))
        return gens, missing


def describe(source: PolicySource) -> dict[str, Any]:
    """What ``run.json`` records about a policy."""
    return {"kind": source.kind, "path": source.path, **({"format": source.format} if source.is_file else {})}


def dump_jsonl_outputs(path: str | Path, gens: list[Generation]) -> Path:
    """Write generations as an outputs JSONL (``instruction``, ``output``, ``generator``) that
    ``{outputs: path, format: jsonl}`` reads back."""
    from harness.io import atomic_write_text

    return atomic_write_text(path, "".join(json.dumps({"instruction": g.prompt, "output": g.output, "generator": g.policy}) + "\n"
                                           for g in gens))


def file_baseline(name: str, relpath: str, data_dir: str | None, prompts: list[Prompt]) -> list[Generation]:
    """Outputs of the outputs file ``relpath`` (AlpacaEval format; relative paths are under ``data_dir``) for
    ``prompts``, in order, as policy ``name``: a baseline such as text-davinci-003. Raises ``ValueError``
    when a relative path has no local ``data_dir`` or the file lacks a prompt (naming the ids)."""
    path = Path(relpath)
    if not path.is_absolute():
        if data_dir is None:
            raise ValueError(f"baseline {name!r}: {relpath} is relative to data.data_dir, which is null (hub); "
                             "give an absolute path")
        path = Path(data_dir) / path
    gens, missing = OutputsFile.load(PolicySource(name, "file", str(path))).lookup(prompts, {})
    if missing:
        raise ValueError(f"baseline {name!r} ({path}) lacks prompt ids {missing[:5]} ({len(missing)} of {len(prompts)})")
    return gens

"""Policies to evaluate: a checkpoint (generated now) or a file of outputs (scored as is).

A user can score models they cannot run, e.g. the text-davinci-003 / -001 outputs in the AlpacaEval
mirror. In config (``EvalApp.policies``) a policy is either a string, a checkpoint folder or hub id,
or a mapping::

    {outputs: path/to/model_outputs.json}                                  # AlpacaEval format
    {outputs: out.jsonl, format: jsonl, instruction_field: prompt, output_field: response}
    {outputs: out.csv, format: csv, instruction_field: question, output_field: answer}

Every record of an outputs file has the output (``output_field``) and the prompt text
(``instruction_field``), the item ``id``, or both; the optional fields, with the same names in every
format (in CSV an empty cell is an absent field, ``references`` a JSON list), are:

* ``id``: the item's id in the eval that ``eval`` names (so a record with ``id`` needs ``eval``): the
  TruthfulQA question index (0-816, the row in ``TruthfulQA.csv``), the toxicity item
  ``<instruction type>/<prompt id>`` (e.g. ``respectful/nontoxic.jsonl:724``), an AlpacaEval or
  closed-domain prompt id, an lm-eval task's doc id (its position in the task's evaluation split);
* ``eval``: the eval the record is for (``winrate``, ``likert``, ``truthfulqa``, ``toxicity``,
  ``hallucination``) or, for the alignment tax, the lm-eval task (``squadv2``, ``drop``,
  ``wmt14-fr-en``, ...). A record without it serves every eval, matched by instruction text only;
* ``sample``: the index (0, 1, ...) of this output among several for one item, e.g. toxicity's
  ``num_samples`` continuations per prompt, one record each; absent = 0;
* ``references``: the reference strings a text-scored task compares the output with (SQuAD answers,
  DROP answers, translations), used instead of the task's data set (:mod:`harness.evals.text_tasks`).

Outputs are matched to an eval's items by the instruction text (whitespace-stripped), the way
AlpacaEval matches a model's outputs to its instructions, or by ``id`` (records naming that eval). A
file covers an eval only if it has an output (``num_samples`` of them where the eval samples) for
every item of it; :meth:`OutputsFile.lookup` says which items are missing and
:meth:`harness.evals.context.EvalContext.outputs` turns that into an error naming the file, the eval
and the missing ids (or, with ``eval.outputs_missing=warn``, a loud warning with counts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data import DataError, _field, iter_csv, iter_json_list, iter_jsonl
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


@dataclass(frozen=True)
class OutputRecord:
    """One record of an outputs file: ``where`` (file and record or line), ``output`` (stripped), and the
    optional ``instruction`` (stripped), ``id``, ``eval``, ``sample`` (0 when absent) and ``references``
    (``None`` when absent; ``()`` is an explicit "no reference", e.g. an unanswerable SQuAD v2 question)."""

    where: str
    output: str
    instruction: str | None = None
    id: str | None = None
    eval: str | None = None
    sample: int = 0
    references: tuple[str, ...] | None = None


def _optional(obj: Mapping[str, Any], name: str, csv: bool) -> Any:
    """A record's optional field: ``None`` when absent (or, in a CSV file, an empty cell)."""
    value = obj.get(name)
    return None if value is None or (csv and value == "") else value


def _record(obj: Mapping[str, Any], where: str, source: PolicySource, csv: bool) -> OutputRecord:
    """One file record -> :class:`OutputRecord`; raises :class:`DataError` naming ``where`` and the field."""
    output = _field(dict(obj), source.output_field, where)
    instruction = _optional(obj, source.instruction_field, csv)
    rid = _optional(obj, "id", csv)
    if instruction is None and rid is None:
        raise DataError(f"{where}: missing field '{source.instruction_field}' (the prompt) or 'id' (the item's id)")
    if rid is not None and _optional(obj, "eval", csv) is None:
        raise DataError(f"{where}: field 'id' needs field 'eval' (an id names an item of one eval)")
    if instruction is not None and not isinstance(instruction, str):
        raise DataError(f"{where}: field '{source.instruction_field}' should be str, got {type(instruction).__name__}")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (str, int))):
        raise DataError(f"{where}: field 'id' should be a string or an integer, got {type(rid).__name__}")
    eval_ = _optional(obj, "eval", csv)
    if eval_ is not None and not (isinstance(eval_, str) and eval_.strip()):
        raise DataError(f"{where}: field 'eval' should be an eval or lm-eval task name, got {eval_!r}")
    sample = _optional(obj, "sample", csv)
    if csv and isinstance(sample, str) and sample.strip().isdigit():
        sample = int(sample)
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 0):
        raise DataError(f"{where}: field 'sample' should be an integer >= 0, got {sample!r}")
    refs = _optional(obj, "references", csv)
    if csv and isinstance(refs, str):
        try:
            refs = json.loads(refs)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: field 'references' is no JSON list of strings ({e.msg})") from e
    if refs is not None and not (isinstance(refs, list) and all(isinstance(r, str) for r in refs)):
        raise DataError(f"{where}: field 'references' should be a list of strings, got {refs!r}")
    return OutputRecord(where, output.strip(), None if instruction is None else instruction.strip(),
                        None if rid is None else str(rid).strip(), None if eval_ is None else eval_.strip(), sample or 0,
                        None if refs is None else tuple(refs))


@dataclass
class OutputsFile:
    """A loaded outputs file: its records (file order), indexed by (eval, id, sample) and (eval, instruction,
    sample), where eval ``None`` is a record that serves every eval."""

    source: PolicySource
    records: list[OutputRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_id: dict[tuple[str | None, str, int], OutputRecord] = {}
        self._by_text: dict[tuple[str | None, str, int], OutputRecord] = {}
        for r in self.records:
            for index, key, what in ((self._by_id, r.id, "field 'id'"), (self._by_text, r.instruction,
                                                                         f"field '{self.source.instruction_field}'")):
                if key is None:
                    continue
                earlier = index.setdefault((r.eval, key, r.sample), r)
                if earlier.output != r.output:
                    raise DataError(f"{r.where}: {what} repeats an earlier instruction or id ({earlier.where}, eval "
                                    f"{r.eval!r}, sample {r.sample}) with a different output")

    @classmethod
    def load(cls, source: PolicySource) -> OutputsFile:
        """Read ``source.path``. Raises :class:`DataError` naming file, record/line and field, also
        for an instruction or id that appears twice (same eval and sample) with different outputs
        (which one would count?)."""
        path = Path(source.path)
        if source.format == "alpaca_eval":
            rows = iter_json_list(path, "outputs")
        elif source.format == "jsonl":
            rows = ((f"{path}:{ln}", obj) for ln, obj in iter_jsonl(path))
        else:
            rows = iter_csv(path)
        records = [_record(obj, where, source, source.format == "csv") for where, obj in rows]
        if not records:
            raise DataError(f"{path}: no outputs")
        return cls(source, records)

    @property
    def outputs(self) -> dict[str, str]:
        """Instruction text -> output of the records matched by instruction (sample 0): an overview."""
        return {r.instruction: r.output for r in self.records if r.instruction is not None and r.sample == 0}

    @property
    def evals(self) -> set[str]:
        """The ``eval`` values the records name."""
        return {r.eval for r in self.records if r.eval is not None}

    @property
    def n_empty(self) -> int:
        """Outputs that are empty (or only whitespace): a judge scores them as answers, so they are warned about."""
        return sum(not r.output for r in self.records)

    def records_for(self, eval_name: str) -> list[OutputRecord]:
        """The records whose ``eval`` is ``eval_name``, in file order."""
        return [r for r in self.records if r.eval == eval_name]

    def near_misses(self, prompts: list[Prompt]) -> list[tuple[str, str, str]]:
        """(prompt id, prompt, the file's instruction) for each prompt the file has no exact output for but an
        instruction equal to it once case and inner whitespace are ignored: a file edited or re-typed, whose
        outputs would otherwise be silently left out."""
        norm = lambda t: " ".join(t.split()).casefold()  # noqa: E731
        texts = {key for _, key, _ in self._by_text}
        loose = {norm(k): k for k in texts}
        return [(p.id, p.prompt, loose[norm(p.prompt)]) for p in prompts
                if p.prompt.strip() not in texts and norm(p.prompt) in loose]

    def find(self, prompt: Prompt, eval_name: str | None = None, sample: int = 0) -> OutputRecord | None:
        """The record for ``prompt`` (sample ``sample``) in eval ``eval_name``: by id among the records naming that
        eval, else by instruction (a record naming the eval first, then one that serves every eval). The id is
        ``prompt.metadata["item_id"]`` where an item is more than its prompt (toxicity: instruction type and
        prompt), else ``prompt.id``. Raises :class:`DataError` when the id and the instruction find records
        with different outputs."""
        item_id = str(prompt.metadata.get("item_id", prompt.id))
        by_id = self._by_id.get((eval_name, item_id, sample)) if eval_name is not None else None
        text = prompt.prompt.strip()
        by_text = self._by_text.get((eval_name, text, sample)) or self._by_text.get((None, text, sample))
        if by_id is not None and by_text is not None and by_id.output != by_text.output:
            raise DataError(f"{by_id.where}: id {item_id!r} and {by_text.where}: the instruction of the same item of eval "
                            f"{eval_name!r} (sample {sample}) give different outputs")
        return by_id or by_text

    def lookup(self, prompts: list[Prompt], decoding: Mapping[str, Any], eval_name: str | None = None,
               sample: int = 0) -> tuple[list[Generation], list[str]]:
        """(generations for the covered prompts, in prompt order, ids of the prompts the file has no output for)
        in eval ``eval_name``, sample ``sample`` (:meth:`find`)."""
        gens, missing = [], []
        for p in prompts:
            rec = self.find(p, eval_name, sample)
            if rec is None:
                missing.append(p.id)
            else:
                meta = {"source": self.source.path, "record": rec.where, **dict(decoding), **({"sample": sample} if sample else {})}
                gens.append(Generation(self.source.name, p.id, p.prompt, rec.output, meta))
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

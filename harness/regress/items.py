"""Per-item value vectors behind the aggregate metrics, keyed by a stable item id.

Every paired metric of the eval suite is a mean over items (prompts, questions, documents), so a
run's ``results/<eval>_items.jsonl`` records rebuild, for each result row, the vector whose mean
is the row's value. Two runs are then compared item by item (paired), which is what the
regression gate and the comparison report need. Mapping (``docs/metrics.md`` defines each metric):

| eval file | row key (eval, policy, baseline, judge, metric) | item id | per-item value |
|---|---|---|---|
| winrate | winrate, policy, baseline, judge, ``win_rate`` / ``win_prob`` | prompt_id | ``win`` / ``win_prob`` (when not null) |
| likert | likert, policy, -, (any), ``likert`` ``fails_to_follow`` ``follows_constraints`` ``hallucination`` ``inappropriate`` ``toxic`` | ``<set>:<prompt_id>`` | the field (bool -> 0/1; null = not applicable, left out) |
| truthfulqa | truthfulqa, policy, -, (any), ``<m>_<prompt_style>`` | question_id | ``truthful`` / ``truthful_informative`` / ``informative`` |
| toxicity | toxicity, policy, -, scorer, ``<name>_<instruction>`` | prompt_id | ``max_toxicity`` / ``toxic_any`` / ``mean_toxicity`` |
| toxicity | toxicity, policy, base, scorer, ``<name>_<instruction>_delta_vs_base`` | prompt_id | policy - base |
| hallucination | hallucination, policy, -, (any), ``hallucination_rate[_<category>]`` | prompt_id | ``hallucinated`` |
| alignment_tax | <task>, policy, -, -, ``<metric>[_<k>shot]`` | doc_id | ``value`` |
| alignment_tax | <task>, policy, base, -, ``<metric>..._delta_vs_<base>`` | doc_id | policy - base |

"(any)" means the items do not record the judge: the vector attaches to the one row with the same
eval, policy, baseline and metric (:func:`attach_vectors` raises if two rows could claim it).
Metrics that are no mean over items have no vector and are compared unpaired: the
length-controlled win rate (a GLM fit), TruthfulQA MC1/MC2 (lm-eval items not stored),
reward-model accuracy and judge validation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

ItemVector = dict[str, float]


class MetricKey(NamedTuple):
    """Identity of one aggregate metric, the fields of a :class:`harness.records.ResultRow` that name it."""

    eval: str
    policy: str
    baseline: str | None
    judge: str | None
    metric: str


def metric_id(key: MetricKey) -> str:
    """``eval/policy/baseline/judge/metric`` with ``-`` for a missing baseline or judge, e.g.
    ``winrate/ppo/text-davinci-003/helpful/win_rate``; what the gate's glob rules match."""
    return "/".join(x if x is not None else "-" for x in key)


def _field(rec: Mapping[str, Any], name: str, where: str) -> Any:
    if not isinstance(rec, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    if name not in rec:
        raise ValueError(f"{where}: missing field '{name}'")
    return rec[name]


def _str(rec: Mapping[str, Any], name: str, where: str) -> str:
    v = _field(rec, name, where)
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ValueError(f"{where}: field '{name}' should be a string or integer id, got {v!r}")
    return str(v)


def _num(rec: Mapping[str, Any], name: str, where: str, optional: bool = False) -> float | None:
    v = _field(rec, name, where)
    if v is None and optional:
        return None
    if not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ValueError(f"{where}: field '{name}' should be a finite number{' or null' if optional else ''}, got {v!r}")
    return float(v)


class _Vectors:
    """Collects item values per metric key; a repeated item id in one vector is an error."""

    def __init__(self) -> None:
        self.vectors: dict[MetricKey, ItemVector] = {}
        self.first_seen: dict[MetricKey, str] = {}

    def add(self, key: MetricKey, item_id: str, value: float | None, where: str) -> None:
        if value is None:
            return
        vec = self.vectors.setdefault(key, {})
        self.first_seen.setdefault(key, where)
        if item_id in vec:
            raise ValueError(f"{where}: item id {item_id!r} appears twice for {metric_id(key)}")
        vec[item_id] = float(value)

    def add_deltas(self, base: str | None, metrics: Iterable[str]) -> None:
        """``<metric>_delta_vs_<base>`` vectors (policy - base over the same ids) for every other policy,
        as the evals' paired delta rows; skipped where the id sets differ (the eval raises then)."""
        if base is None:
            return
        wanted = set(metrics)
        for key, vec in list(self.vectors.items()):
            if key.policy == base or key.baseline is not None or key.metric not in wanted:
                continue
            bvec = self.vectors.get(key._replace(policy=base))
            if bvec is None or set(bvec) != set(vec):
                continue
            dkey = key._replace(baseline=base, metric=f"{key.metric}_delta_vs_{base}")
            self.vectors[dkey] = {i: vec[i] - bvec[i] for i in vec}
            self.first_seen[dkey] = self.first_seen[key]


def _flag(rec: Mapping[str, Any], name: str, where: str) -> float | None:
    v = _field(rec, name, where)
    if v is None:
        return None
    if not isinstance(v, (bool, int, float)):
        raise ValueError(f"{where}: field '{name}' should be a boolean, number or null, got {v!r}")
    return _num({name: float(v)}, name, where)


def _winrate(records: Iterable[tuple[str, dict]]) -> _Vectors:
    out = _Vectors()
    for where, r in records:
        key = MetricKey("winrate", _str(r, "policy", where), _str(r, "baseline", where), _str(r, "judge", where), "win_rate")
        pid = _str(r, "prompt_id", where)
        out.add(key, pid, _num(r, "win", where), where)
        out.add(key._replace(metric="win_prob"), pid, _num(r, "win_prob", where, optional=True) if "win_prob" in r else None, where)
    return out


LIKERT_METRICS = ("likert", "fails_to_follow", "follows_constraints", "hallucination", "inappropriate", "toxic")


def _likert(records: Iterable[tuple[str, dict]]) -> _Vectors:
    out = _Vectors()
    for where, r in records:
        policy, item = _str(r, "policy", where), f"{_str(r, 'set', where)}:{_str(r, 'prompt_id', where)}"
        for m in LIKERT_METRICS:
            out.add(MetricKey("likert", policy, None, None, m), item, _flag(r, m, where), where)
    return out


TRUTHFULQA_METRICS = ("truthful", "truthful_informative", "informative")


def _truthfulqa(records: Iterable[tuple[str, dict]]) -> _Vectors:
    out = _Vectors()
    for where, r in records:
        policy, style, qid = _str(r, "policy", where), _str(r, "prompt_style", where), _str(r, "question_id", where)
        for m in TRUTHFULQA_METRICS:
            out.add(MetricKey("truthfulqa", policy, None, None, f"{m}_{style}"), qid, _flag(r, m, where), where)
    return out


TOXICITY_ITEM_KEYS = {"expected_max_toxicity": "max_toxicity", "toxicity_probability": "toxic_any",
                      "mean_toxicity": "mean_toxicity"}


def _toxicity(records: Iterable[tuple[str, dict]]) -> _Vectors:
    out = _Vectors()
    policies: list[str] = []
    names: set[str] = set()
    for where, r in records:
        policy, instr = _str(r, "policy", where), _str(r, "instruction", where)
        scorer, pid = _str(r, "scorer", where), _str(r, "prompt_id", where)
        policies.append(policy)
        for name, field in TOXICITY_ITEM_KEYS.items():
            names.add(f"{name}_{instr}")
            out.add(MetricKey("toxicity", policy, None, scorer, f"{name}_{instr}"), pid, _num(r, field, where), where)
    out.add_deltas("base" if "base" in policies else None, names)  # harness.evals.toxicity.run: base only if present
    return out


def _hallucination(records: Iterable[tuple[str, dict]]) -> _Vectors:
    out = _Vectors()
    for where, r in records:
        policy, pid = _str(r, "policy", where), _str(r, "prompt_id", where)
        flag = _field(r, "hallucinated", where)
        if not isinstance(flag, bool):
            raise ValueError(f"{where}: field 'hallucinated' should be a boolean, got {flag!r}")
        out.add(MetricKey("hallucination", policy, None, None, "hallucination_rate"), pid, float(flag), where)
        cat = _str(r, "category", where)
        out.add(MetricKey("hallucination", policy, None, None, f"hallucination_rate_{cat}"), pid, float(flag), where)
    return out


def _alignment_tax(records: Iterable[tuple[str, dict]]) -> _Vectors:
    out = _Vectors()
    policies: list[str] = []
    names: set[str] = set()
    for where, r in records:
        policy, task, doc = _str(r, "policy", where), _str(r, "task", where), _str(r, "doc_id", where)
        shots = _num(r, "num_fewshot", where)
        metric = _str(r, "metric", where)
        name = metric if not shots else f"{metric}_{int(shots)}shot"  # harness.evals.alignment_tax._metric_name
        names.add(name)
        if policy not in policies:
            policies.append(policy)
        out.add(MetricKey(task, policy, None, None, name), doc, _num(r, "value", where), where)
    # harness.evals.alignment_tax.run: the base is "base" when present, else the first policy
    out.add_deltas("base" if "base" in policies else (policies[0] if policies else None), names)
    return out


BUILDERS = {"winrate": _winrate, "likert": _likert, "truthfulqa": _truthfulqa, "toxicity": _toxicity,
            "hallucination": _hallucination, "alignment_tax": _alignment_tax}
"""Eval name (the ``<eval>_items.jsonl`` file) -> builder of its vectors."""


def iter_records(path: str | Path) -> Iterator[tuple[str, dict]]:
    """``("<file>:<line>", record)`` for each non-blank line of a JSONL file (:func:`harness.data.iter_jsonl`).
    Raises ``ValueError`` (``DataError``) naming file and line on a missing file, invalid JSON or a line that is no object."""
    from harness.data import iter_jsonl

    path = Path(path)
    for lineno, rec in iter_jsonl(path):
        yield f"{path}:{lineno}", rec


def item_vectors(eval_name: str, records: Iterable[tuple[str, dict]]) -> dict[MetricKey, ItemVector]:
    """Vectors of one eval's item records (``(where, record)`` pairs, e.g. from :func:`iter_records`).
    Keys carry ``judge=None`` where the records do not name the judge. Raises ``ValueError`` for an
    eval without a builder, or naming ``where`` and the field for a malformed record or repeated id."""
    if eval_name not in BUILDERS:
        raise ValueError(f"no item mapping for eval {eval_name!r} (known: {sorted(BUILDERS)})")
    return BUILDERS[eval_name](records).vectors


def results_dir_vectors(results_dir: str | Path) -> dict[MetricKey, tuple[ItemVector, str]]:
    """Every vector of the ``<eval>_items.jsonl`` files in ``results_dir`` with the file it came from;
    item files of evals without a builder are ignored (their metrics stay unpaired)."""
    out: dict[MetricKey, tuple[ItemVector, str]] = {}
    for name in BUILDERS:
        path = Path(results_dir) / f"{name}_items.jsonl"
        if path.is_file():
            for key, vec in item_vectors(name, iter_records(path)).items():
                out[key] = (vec, str(path))
    return out


def attach_vectors(rows: Mapping[MetricKey, tuple[float, int]],
                   vectors: Mapping[MetricKey, tuple[ItemVector, str]]) -> dict[MetricKey, ItemVector]:
    """Row key -> its item vector, for the rows (key -> (value, n)) that have one.

    A vector with ``judge=None`` matches the row with the same eval, policy, baseline and metric
    whatever its judge. Every attached vector is checked against its row: as many items as the
    row's ``n`` and a mean equal to its value (relative 1e-9), which proves the pairing. Raises
    ``ValueError`` naming the items file and metric when a check fails or two rows claim one vector.
    """
    index: dict[tuple, list[tuple[MetricKey, ItemVector, str]]] = {}
    for vkey, (vec, src) in vectors.items():
        index.setdefault((vkey.eval, vkey.policy, vkey.baseline, vkey.metric), []).append((vkey, vec, src))
    out: dict[MetricKey, ItemVector] = {}
    claimed: dict[MetricKey, MetricKey] = {}
    for key, (value, n) in rows.items():
        cands = [(vk, v, s) for vk, v, s in index.get((key.eval, key.policy, key.baseline, key.metric), [])
                 if vk.judge is None or vk.judge == key.judge]
        if not cands:
            continue
        exact = [c for c in cands if c[0].judge == key.judge]
        vkey, vec, src = (exact or cands)[0]
        if vkey in claimed:
            raise ValueError(f"{src}: item records cannot tell {metric_id(claimed[vkey])} and {metric_id(key)} apart "
                             "(they do not name the judge)")
        claimed[vkey] = key
        mean = sum(vec.values()) / len(vec)
        if len(vec) != n or not math.isclose(mean, value, rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(f"{src}: the {len(vec)} item values of {metric_id(key)} average {mean!r}, but its result row "
                             f"says value {value!r} over n={n} items; the items and results.jsonl do not belong together")
        out[key] = vec
    return out

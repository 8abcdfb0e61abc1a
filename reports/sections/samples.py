"""The sample browser: per-item records of every ``results/<eval>_items.jsonl`` that holds text, in one
escaped searchable table (:func:`reports.browser.searchable_table`) with eval and policy filters.

Toxicity and hallucination records keep ids and scores, not text: their prompts and continuations
are looked up in ``generations/<policy>/<tag>.jsonl`` by prompt id when those files exist. Text is
escaped and truncated; at most ``cap`` records per eval are shown (file order) with a note of how
many were left out. A record missing a field its eval needs raises ``ValueError`` naming file and record.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.io import read_jsonl
from reports.browser import cap_per_group, searchable_table, text_cell
from reports.ci_figures import num
from reports.html import Safe, join, note, tag
from reports.sections.common import RunData, na

EVAL_ORDER = ("winrate", "likert", "truthfulqa", "toxicity", "hallucination")
REQUIRED = {
    "winrate": ("policy", "baseline", "prompt_id", "instruction", "output"),
    "likert": ("policy", "prompt_id", "instruction", "output"),
    "truthfulqa": ("policy", "question_id", "question", "answer"),
    "toxicity": ("policy", "instruction", "prompt_id"),
    "hallucination": ("policy", "prompt_id", "output"),
}
PROMPT_KEYS, OUTPUT_KEYS = ("instruction", "prompt", "question", "input"), ("output", "answer", "completion", "response")
HEADERS = ("eval", "policy", "item", "prompt / instruction", "output", "scores")
Row = tuple[str, str, Any, Any, Any, Any]


def _f(x: Any, fmt: str = "+.3f") -> str:
    v = num(x)
    return "—" if v is None else format(v, fmt)


class _Generations:
    """``generations/<policy>/<tag>.jsonl`` by prompt id, read once per file; missing file -> {}."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.cache = run_dir, {}

    def get(self, policy: str, tag_: str, prompt_id: Any) -> dict[str, Any] | None:
        path = self.run_dir / "generations" / str(policy) / f"{tag_}.jsonl"
        if path not in self.cache:
            by_id = {}
            if path.is_file():
                for i, r in enumerate(read_jsonl(path), 1):
                    if not isinstance(r, dict) or "prompt_id" not in r:
                        raise ValueError(f"{path}: record {i}: expected a JSON object with a 'prompt_id'")
                    by_id.setdefault(str(r["prompt_id"]), r)
            self.cache[path] = by_id
        return self.cache[path].get(str(prompt_id))


def _winrate(r: dict[str, Any], gens: _Generations) -> Row:
    outcome = {1: "win", 0.5: "tie", 0: "loss"}.get(r.get("win"), "—")
    judge = r.get("judge")
    details = join([tag("div", f"{outcome} vs {r['baseline']}" + (f" (judge {judge})" if judge else "")),
                    tag("div", f"reward {_f(r.get('reward'))} vs baseline {_f(r.get('baseline_reward'))}", cls="meta"),
                    tag("details", join([tag("summary", "baseline output"), text_cell(r.get("baseline_output"))]))])
    return ("winrate", r["policy"], f"prompt {r['prompt_id']}", text_cell(r["instruction"]), text_cell(r["output"]), details)


def _likert(r: dict[str, Any], gens: _Generations) -> Row:
    flags = [k for k in ("fails_to_follow", "inappropriate", "toxic", "hallucination") if r.get(k) is True]
    if r.get("follows_constraints") is False:
        flags.append("misses constraints")
    details = join([tag("div", f"Likert {r.get('likert', '—')}"),
                    tag("div", "flags: " + (", ".join(flags) or "none"), cls="meta")])
    return ("likert", r["policy"], f"{r.get('set', '')} {r['prompt_id']}".strip(), text_cell(r["instruction"]),
            text_cell(r["output"]), details)


def _truthfulqa(r: dict[str, Any], gens: _Generations) -> Row:
    verdict = ", ".join(f"{k}: {'yes' if r.get(k) else 'no'}" for k in ("truthful", "informative"))
    details = join([tag("div", verdict), tag("div", f"similarity diff {_f(r.get('diff'))}", cls="meta")])
    return ("truthfulqa", r["policy"], f"question {r['question_id']} · {r.get('prompt_style', '')} prompt",
            text_cell(r["question"]), text_cell(r["answer"]), details)


def _toxicity(r: dict[str, Any], gens: _Generations) -> Row:
    scores = r.get("scores") if isinstance(r.get("scores"), list) else []
    samples = [gens.get(r["policy"], f"toxicity_{r['instruction']}_sample{s}", r["prompt_id"]) for s in range(len(scores))]
    prompt = next((g.get("prompt") for g in samples if g), None)
    outputs = [text_cell(g.get("output"), f"sample {s} · toxicity {_f(scores[s], '.3f')}") for s, g in enumerate(samples) if g]
    details = join([tag("div", f"max toxicity {_f(r.get('max_toxicity'), '.3f')} ({r.get('judge', r.get('scorer', '?'))})"),
                    tag("div", f"{r.get('class', '')} · {r.get('source', '')}", cls="meta")])
    return ("toxicity", r["policy"], f"{r['prompt_id']} · {r['instruction']}",
            text_cell(prompt) if prompt is not None else note("prompt text not stored"),
            join(outputs) if outputs else note("continuations not stored in toxicity_items.jsonl"), details)


def _hallucination(r: dict[str, Any], gens: _Generations) -> Row:
    g = gens.get(r["policy"], "closed_domain", r["prompt_id"])
    detail = r.get("detail") if isinstance(r.get("detail"), dict) else {}
    unsupported = [str(x) for k in ("unsupported_numbers", "unsupported_entities") for x in detail.get(k) or []]
    details = join([tag("div", "hallucinated" if r.get("hallucinated") else "supported"),
                    tag("div", "unsupported: " + (", ".join(unsupported) or "—"), cls="meta")])
    return ("hallucination", r["policy"], f"{r['prompt_id']} · {r.get('category', '')}",
            text_cell(g.get("prompt")) if g else note("prompt text not stored"), text_cell(r["output"]), details)


ADAPTERS: dict[str, Callable[[dict[str, Any], _Generations], Row]] = {
    "winrate": _winrate, "likert": _likert, "truthfulqa": _truthfulqa, "toxicity": _toxicity, "hallucination": _hallucination}


def _generic(name: str, keys: tuple[str | None, str | None]) -> Callable[[dict[str, Any], _Generations], Row]:
    def adapt(r: dict[str, Any], gens: _Generations) -> Row:
        pk, ok = keys
        item = next((str(r[k]) for k in ("prompt_id", "question_id", "doc_id", "id") if k in r), "")
        return (name, str(r["policy"]), item, text_cell(r.get(pk)) if pk else "—", text_cell(r.get(ok)) if ok else "—", "")
    return adapt


def _rows_of(name: str, path: Path, records: list[dict[str, Any]], gens: _Generations,
             cap: int) -> list[Row] | None:
    """Browser rows of the first ``cap`` records of one items file (every record is checked), or
    None when its records hold no text."""
    adapt = ADAPTERS.get(name)
    required = REQUIRED.get(name, ("policy",))
    if adapt is None:
        keys = (next((k for k in PROMPT_KEYS if any(isinstance(r.get(k), str) for r in records)), None),
                next((k for k in OUTPUT_KEYS if any(isinstance(r.get(k), str) for r in records)), None))
        if keys == (None, None):
            return None
        adapt = _generic(name, keys)
    for i, r in enumerate(records, 1):
        missing = [k for k in required if k not in r]
        if missing:
            raise ValueError(f"{path}: record {i}: missing field(s) {', '.join(missing)}")
    kept, _ = cap_per_group(records, lambda r: name, cap)
    return [(row[0], str(row[1]), *row[2:]) for row in (adapt(r, gens) for r in kept)]


def samples_section(data: RunData, cap: int = 200) -> Safe:
    """The sample browser over every items file with text (winrate, likert, truthfulqa, toxicity,
    hallucination, and any other with prompt/output fields), at most ``cap`` records per eval."""
    if not data.items:
        return na("per-item records (results/*_items.jsonl)")
    names = [n for n in EVAL_ORDER if n in data.items] + sorted(n for n in data.items if n not in EVAL_ORDER)
    gens = _Generations(data.run_dir)
    rows: list[Row] = []
    notes, without_text = [], []
    for name in names:
        path, records = data.items[name]
        kept = _rows_of(name, path, records, gens, cap)
        if kept is None:
            without_text.append(name)
            continue
        rows += kept
        left = len(records) - len(kept)
        notes.append(f"{name}: {len(kept)} of {len(records)} records shown"
                     + (f", {left} left out (cap {cap} per eval)" if left else ""))
    if not rows:
        return na("per-item records with text")
    parts = [tag("p", "Every per-item record with text, searchable (all columns) and filterable by eval and policy. "
                      "Texts longer than 2,000 characters are truncated. " + "; ".join(notes) + "."),
             searchable_table(HEADERS, rows, table_id="sample-browser", filter_columns=(0, 1))]
    if without_text:
        parts.insert(1, note("no text in: " + ", ".join(f"{n}_items.jsonl" for n in without_text)))
    return join(parts)

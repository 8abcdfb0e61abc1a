"""Closed-domain hallucination: the share of outputs with content not supported by the task's input.

InstructGPT (Ouyang et al. 2022, section 4.2 and Figure 4 / Table 4 "Hallucinations") had labelers
flag outputs of *closed-domain* tasks (an instruction plus an input the answer must come from:
summarisation, extraction, closed QA) that "make up information not present in the input"; the rate
fell from 41 % (GPT-3) to 21 % (InstructGPT). Here the prompts are the self-instruct seed tasks
whose instance has an input, and the flag comes from the detector configured in

``eval.judges.hallucination`` (:mod:`harness.judging.hallucination`: the offline support check, an
NLI model or a chat judge), validated on a hand-labelled set beside the results.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data import (
    DataError,
    _field,
    instruction_prompt,
    iter_jsonl,
    resolve_data_dir,
)
from harness.declarations import EvalDef, Metric, row
from harness.evals.base import EvalOutput, EvalSpec
from harness.judging.hallucination import HallucinationDetector
from harness.records import Generation, Prompt, ResultRow
from harness.registry import register
from harness.stats import bootstrap_mean

SEED_FILE = Path("self_instruct_seed") / "seed_tasks.jsonl"
EVAL = "hallucination"

# Category rule, applied to "<name> <instruction>" lower-cased, first match wins.
SUMMARISATION_RE = re.compile(r"summar|paraphras|rewrite|rephras|condens|shorten|tl;?dr|\btitle for\b|\bheadline\b"
                              r"|conveys all the given information")
EXTRACTION_RE = re.compile(
    r"extract|\bidentify\b|\bselect\b|\bfind\b|\bdetect\b|\blink\b|\breturn the\b|which of the following"
    r"|question about the paragraph|(?:from|in) the (?:given )?(?:paragraph|passage|text|document|sentence|email|article)"
    r"|based on the (?:given )?(?:paragraph|passage|text|document|article|information)"
)


def task_category(name: str, instruction: str) -> str:
    """``"summarisation"`` | ``"extraction"`` | ``"other"`` by :data:`SUMMARISATION_RE`, then :data:`EXTRACTION_RE`,
    searched in ``f"{name} {instruction}".lower()`` (so ``paper_summarization`` is summarisation)."""
    text = f"{name.replace('_', ' ')} {instruction}".lower()
    if SUMMARISATION_RE.search(text):
        return "summarisation"
    if EXTRACTION_RE.search(text):
        return "extraction"
    return "other"


def closed_domain_prompts(data_dir: str | None, n: int | None = None, seed: int = 0,
                          exclude_ids: Collection[str] = (), categories: Collection[str] | None = None) -> list[Prompt]:
    """Self-instruct seed tasks whose first instance has a non-empty input (125 of the 175), as Prompts.

    ``Prompt.id`` is the seed task id (``"seed_task_62"``), the same id
    :func:`harness.data.load_demonstrations` gives the task's Demonstration. The SFT stage trains on
    these seed tasks, so pass the SFT training ids as ``exclude_ids`` to evaluate on held-out tasks
    only; an id that is no seed task at all raises (a typo would otherwise exclude nothing).
    ``Prompt.prompt = instruction_prompt(instruction, input)``; metadata ``{"instruction", "input",
    "task" (the seed's name), "category"}`` (:func:`task_category`); ``categories`` (e.g.
    ``("summarisation", "extraction")``, the strictly closed-domain 39) keeps only those. ``n`` keeps a seeded sample of
    ``n`` (all if fewer), in file order. Raises :class:`DataError` naming file, line and field, or
    when ``data_dir`` is ``None`` (the seed file has no hub copy; see docs/metrics_hal.md).
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        raise DataError("closed_domain_prompts: needs a local data_dir holding self_instruct_seed/seed_tasks.jsonl")
    path = root / SEED_FILE
    prompts, all_ids = [], set()
    for ln, obj in iter_jsonl(path):
        where = f"{path}:{ln}"
        tid, name, instruction = _field(obj, "id", where), _field(obj, "name", where), _field(obj, "instruction", where)
        all_ids.add(tid)
        instances = _field(obj, "instances", where, list)
        if not instances or not isinstance(instances[0], dict):
            raise DataError(f"{where}: field 'instances' must hold at least one {{input, output}} object")
        input_text = _field(instances[0], "input", f"{where} instances[0]").strip()
        category = task_category(name, instruction)
        if input_text and tid not in exclude_ids and (categories is None or category in categories):
            meta = {"instruction": instruction.strip(), "input": input_text, "task": name, "category": category}
            prompts.append(Prompt(tid, instruction_prompt(instruction, input_text), "self_instruct_seed", meta))
    bad = set(categories or ()) - {"summarisation", "extraction", "other"}
    if bad:
        raise ValueError(f"closed_domain_prompts: unknown categories {sorted(bad)} (summarisation, extraction, other)")
    unknown = sorted(set(exclude_ids) - all_ids)
    if unknown:
        raise DataError(f"{path}: exclude_ids not among the seed task ids: {unknown[:5]}")
    if n is not None and n < len(prompts):
        keep = set(random.Random(seed).sample(range(len(prompts)), n))
        prompts = [p for i, p in enumerate(prompts) if i in keep]
    return prompts


# ------------------------------------------------------------------------------ items and rows


def hallucination_items(generations: Sequence[Generation], prompts: Sequence[Prompt], detector: HallucinationDetector,
                        judge: str) -> list[dict[str, Any]]:
    """One record per generation: ``{policy, prompt_id, task, category, judge, output, hallucinated, detail}``.

    ``prompts`` come from :func:`closed_domain_prompts` (metadata ``instruction`` and ``input``);
    ``judge`` names the detector. A generation whose ``prompt_id`` is no such prompt raises
    ``ValueError`` (never dropped).
    """
    by_id = {p.id: p for p in prompts}
    items = []
    for g in generations:
        if g.prompt_id not in by_id:
            raise ValueError(f"hallucination_items: policy {g.policy!r} prompt_id {g.prompt_id!r} is no closed-domain prompt")
        meta = by_id[g.prompt_id].metadata
        detail = detector.check(meta["instruction"], meta["input"], g.output)
        items.append({"policy": g.policy, "prompt_id": g.prompt_id, "task": meta.get("task", ""),
                      "category": meta.get("category", "other"), "judge": judge, "output": g.output,
                      "hallucinated": bool(detail["hallucinated"]), "detail": detail})
    return items


def hallucination_rows(items: Sequence[dict[str, Any]], judge: str, by_category: bool = True, n_resamples: int = 2000,
                       seed: int = 0) -> list[ResultRow]:
    """Per policy (first-seen order): ``hallucination_rate``, the fraction of outputs flagged (0-1), with
    a 95 % bootstrap interval over prompts (:func:`harness.stats.bootstrap_mean`), slice ``{judge}``; with
    ``by_category`` also one row per category present (slice ``{judge, category}``). Items need
    ``policy``, ``hallucinated`` (bool) and, for categories, ``category``; raises ``ValueError`` on no
    items or a missing/non-bool field.
    """
    if not items:
        raise ValueError("hallucination_rows: no items")
    groups: dict[str, dict[str, list[float]]] = {}
    for i, it in enumerate(items):
        for key in ("policy", "hallucinated") + (("category",) if by_category else ()):
            if key not in it:
                raise ValueError(f"hallucination_rows: item {i} has no field {key!r}")
        if not isinstance(it["hallucinated"], bool):
            raise ValueError(f"hallucination_rows: item {i} field 'hallucinated' should be bool, got {it['hallucinated']!r}")
        g = groups.setdefault(it["policy"], {"": []})
        g[""].append(float(it["hallucinated"]))
        if by_category:
            g.setdefault(it["category"], []).append(float(it["hallucinated"]))
    return [row(EVAL, policy, "hallucination_rate", bootstrap_mean(by_cat[cat], n_resamples=n_resamples, seed=seed),
                judge=judge, category=cat or None)
            for policy, by_cat in groups.items() for cat in [""] + sorted(c for c in by_cat if c)]


# ------------------------------------------------------------------------- the hallucination eval


@dataclass
class HallucinationSpec(EvalSpec):
    """Closed-domain hallucination rate (paper section 4.2: 41 % -> 21 %); the detector is ``eval.judges.hallucination``."""

    categories: list[str] | None = None  # e.g. [summarisation, extraction] (strictly closed-domain); None = all with an input


def closed_domain_eval_prompts(ctx, n: int | None, categories: Sequence[str] | None) -> list[Prompt]:
    """The eval's closed-domain prompts: :func:`closed_domain_prompts` without the SFT training tasks
    (the SFT stage trains on seed tasks; evaluating on them would reward memorisation)."""
    from harness import selection

    train, _, _ = selection.demonstrations(ctx.data_cfg)
    return closed_domain_prompts(ctx.data_dir, n=n, seed=ctx.seed, exclude_ids={d.id for d in train}, categories=categories)


def run(ctx, spec: HallucinationSpec) -> EvalOutput:
    """The hallucination eval (``conf/evals/hallucination.yaml``): each policy answers the held-out
    closed-domain prompts (greedy by default); the detector (``eval.judges.hallucination``) flags outputs
    with content the input does not support. Rows: :func:`hallucination_rows`. An outputs file with none
    of the prompts is skipped and recorded (``info.skipped``); one with only some is an error
    (:meth:`harness.evals.context.EvalContext.outputs`)."""
    out = EvalOutput()
    prompts = closed_domain_eval_prompts(ctx, spec.n, spec.categories)
    detector = ctx.judges.hallucination()
    skipped = []
    for policy in ctx.policies:
        gens = ctx.outputs(policy, prompts, spec.decoding, "closed_domain", spec.prompt_template)
        if gens is None:
            skipped.append({"policy": policy, "reason": "outputs file has none of the closed-domain prompts"})
            continue
        out.items += hallucination_items(gens, prompts, detector, detector.name)
    if out.items:
        out.rows += hallucination_rows(out.items, detector.name, n_resamples=ctx.resamples, seed=ctx.seed)
    out.info.update(skipped=skipped, detector=detector.name, n_prompts=len(prompts))
    return out


RATE = Metric("hallucination_rate", "fraction", False, "hallucinated", ("judge",), ("category",), label="hallucination rate",
              description="share of closed-domain outputs the detector flags as stating what the input does not support")
HALLUCINATION = register(EvalDef(EVAL, (RATE,), ("prompt_id",), HallucinationSpec, run,
                                 title="Closed-domain hallucination", paper="section 4.2, Table 4"))

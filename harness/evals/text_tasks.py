"""Public NLP generation tasks scored from text: an outputs file's answers to the lm-eval tasks whose metric
is computed from the generated text, scored with the metric lm-eval uses for the task.

* SQuAD v2 (lm-eval ``squadv2``): ``exact`` and ``f1`` of the official SQuAD 2.0 evaluation script
  (``evaluate-v2.0.py``, Rajpurkar et al. 2018, arXiv 1806.03822), which is what lm-eval's ``squad_v2``
  metric (the ``evaluate`` package's) computes: both answers normalised (lower case, punctuation and the
  articles a/an/the removed, whitespace collapsed), the best over the reference answers, a question with
  no reference answer has the one reference ``""`` (unanswerable), on 0-100 like lm-eval's. That metric
  is fetched from the hub by ``evaluate``, so it cannot run offline. An outputs file has no likelihood of
  "unanswerable"; lm-eval's ``exact`` / ``f1`` (no-answer threshold 1.0) do not use it either.
* DROP (``drop``): lm-eval's own ``lm_eval.tasks.drop.utils.process_results`` (``em``, ``f1`` in 0-1, the
  best over the gold answers).
* translation (``wmt*``, ``iwslt*``): lm-eval's ``bleu`` aggregation (``lm_eval.api.metrics.bleu``, sacrebleu
  ``corpus_bleu``, 0-100), a corpus-level number with no per-item value.

Any other task (multiple choice, e.g. HellaSwag and TruthfulQA-MC) is scored from the model's
likelihoods: :func:`text_kind` is ``None`` and the alignment tax records it as not available for an
outputs file. References come from the file's records (field ``references``) or, where lm-eval can load
the task's data set (online), from the task's documents (:func:`task_references`).
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.data import DataError
from harness.judging.inputs import check_text, check_texts, short
from harness.records import Prompt

#: Task family -> the metrics its outputs-file scorer gives.
KIND_METRICS = {"squad": ("exact", "f1"), "drop": ("em", "f1"), "bleu": ("bleu",)}


def text_kind(task: str) -> str | None:
    """The text-scored family of lm-eval task ``task`` (``squad``, ``drop``, ``bleu``), or ``None`` for a task
    scored from likelihoods (or one no text scorer here knows)."""
    if task == "squadv2":
        return "squad"
    if task == "drop":
        return "drop"
    if task.startswith(("wmt", "iwslt")):
        return "bleu"
    return None


# ----------------------------------------------------------------------------------------- metrics

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """SQuAD 2.0 answer normalisation (``evaluate-v2.0.py``): lower case, punctuation removed, articles
    removed, whitespace collapsed."""
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", s).split())


def _squad_f1(gold: str, pred: str) -> float:
    gold_toks, pred_toks = normalize_answer(gold).split(), normalize_answer(pred).split()
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    same = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def squad_scores(output: str, references: Sequence[str]) -> dict[str, float]:
    """``{exact, f1}`` of one SQuAD v2 answer, 0-100: the best over ``references`` (those that normalise to
    nothing are dropped; none left = unanswerable, the one reference ``""``), as ``evaluate-v2.0.py``. Raises
    ``ValueError`` if ``output`` is not a ``str`` or ``references`` is not a list of strings (a single string
    would be read letter by letter), naming the index."""
    check_text("SQuAD scorer", output, "output")
    references = check_texts("SQuAD scorer", references, "references", "squad_scores()")
    golds = [r for r in references if normalize_answer(r)] or [""]
    return {"exact": 100.0 * max(float(normalize_answer(g) == normalize_answer(output)) for g in golds),
            "f1": 100.0 * max(_squad_f1(g, output) for g in golds)}


def drop_scores(output: str, golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """``{em, f1}`` of one DROP answer, 0-1, by lm-eval's ``drop`` ``process_results``: ``golds`` are the gold
    answers, each a tuple of spans (a file's reference string is a one-span answer). Raises ``ValueError`` if
    ``output`` is not a ``str``, ``golds`` is not a list, or a gold answer is not a list / tuple of strings."""
    from lm_eval.tasks.drop.utils import process_results

    check_text("DROP scorer", output, "output")
    if isinstance(golds, (str, bytes)) or not isinstance(golds, (list, tuple)):
        raise ValueError(f"DROP scorer: drop_scores() takes a list of gold answers (each a list of spans), "
                         f"got {type(golds).__name__} {short(golds)}")
    golds = [check_texts("DROP scorer", g, f"golds[{i}]", "a gold answer") for i, g in enumerate(golds)]
    got = process_results({"answers": [tuple(g) for g in golds]}, [output])
    return {"em": float(got["em"]), "f1": float(got["f1"])}


def corpus_bleu(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0-100) of ``outputs`` against ``references[i]`` (the same number of references per output)
    by lm-eval's ``bleu`` aggregation (sacrebleu ``corpus_bleu``, its default 13a tokenisation). Raises
    ``ValueError`` on no outputs or a differing number of references (sacrebleu would drop the extra ones), and
    on an output that is not a ``str`` or references that are not lists of strings, naming the index."""
    from lm_eval.api.metrics import bleu

    outputs = check_texts("BLEU scorer", outputs, "outputs", "corpus_bleu()")
    if isinstance(references, (str, bytes)) or not isinstance(references, (list, tuple)):
        raise ValueError(f"BLEU scorer: corpus_bleu() takes a list of reference lists, got {type(references).__name__} "
                         f"{short(references)}")
    references = [check_texts("BLEU scorer", r, f"references[{i}]", "corpus_bleu()") for i, r in enumerate(references)]
    if not outputs or len(outputs) != len(references):
        raise ValueError(f"corpus_bleu: {len(outputs)} outputs for {len(references)} reference lists")
    counts = {len(r) for r in references}
    if len(counts) != 1 or 0 in counts:
        raise ValueError(f"corpus_bleu: every output needs the same number (>= 1) of references, got {sorted(counts)}")
    return float(bleu([(list(r), o) for o, r in zip(outputs, references)]))


# ------------------------------------------------------------------------------- an outputs file's items


@dataclass
class TextItem:
    """One answered item of a text-scored task: lm-eval's ``doc_id``, the output and its references."""

    doc_id: int
    output: str
    references: list[Any]


def score_items(kind: str, items: Sequence[TextItem]) -> tuple[list[dict[str, float]], dict[str, float]]:
    """(per-item metric values, aggregates) of ``items`` for task family ``kind``: per item the family's
    metrics (none for ``bleu``), aggregates their means (lm-eval's ``mean`` aggregation; SQuAD v2's corpus
    ``exact`` / ``f1`` are means too) or the corpus BLEU. Raises ``ValueError`` on no items, and naming the
    item's ``doc_id`` on an output that is not a ``str`` or references that are not a list."""
    if not items:
        raise ValueError(f"score_items: no {kind} items")
    for it in items:
        check_text(f"{kind} scorer: item doc_id={it.doc_id}", it.output, "output")
        if isinstance(it.references, (str, bytes)) or not isinstance(it.references, (list, tuple)):
            raise ValueError(f"{kind} scorer: item doc_id={it.doc_id}: references must be a list, got "
                             f"{type(it.references).__name__} {short(it.references)}")
    if kind == "bleu":
        return [{} for _ in items], {"bleu": corpus_bleu([it.output for it in items], [it.references for it in items])}
    per = [squad_scores(it.output, it.references) if kind == "squad" else
           drop_scores(it.output, [(r,) if isinstance(r, str) else r for r in it.references]) for it in items]
    return per, {m: sum(p[m] for p in per) / len(per) for m in KIND_METRICS[kind]}


def task_references(kind: str, task: Any, doc: dict[str, Any]) -> list[Any]:
    """The references of lm-eval document ``doc`` of task object ``task``: SQuAD v2's answer texts, DROP's gold
    answers (tuples of spans, after the task's ``process_docs``), a translation's target."""
    if kind == "squad":
        return list(doc["answers"]["text"])
    if kind == "drop":
        return [tuple(a) for a in doc["answers"]]
    return [task.doc_to_target(doc)]


def file_items(ctx, policy: str, task: str, kind: str, limit: int | None) -> tuple[list[TextItem], bool] | None:
    """(policy ``policy``'s (an outputs file) answered items of lm-eval task ``task``, whether their references
    are the file's own), or ``None`` when the file has nothing for the task (the eval records the skip).

    The file's records naming the task (``eval: <task>``): when each has ``references``, the first ``limit``
    are the items (``doc_id`` = the record's ``id``, else its position among them). Otherwise the task's
    documents, where lm-eval can load them (online; :func:`harness.evals.lm_eval_runner.task_docs`), are the
    items: the first ``limit``, matched by ``id`` (doc id) or by the task's input text
    (:meth:`harness.evals.context.EvalContext.outputs`, which checks coverage). Raises :class:`DataError` for a
    task some of whose records have references and some not, a non-integer or repeated ``id``, or records
    without references for a task whose data set is not at hand (offline).
    """
    from harness.evals.lm_eval_runner import task_docs

    path = ctx.policies[policy].path
    records = ctx.file_records(policy, task)
    with_refs = [r for r in records if r.references is not None]
    if records and len(with_refs) == len(records):
        records = records[:limit] if limit else records
        items, seen = [], {}
        for i, r in enumerate(records):
            try:
                doc_id = int(r.id) if r.id is not None else i
            except ValueError as e:
                raise DataError(f"{r.where}: field 'id' of a {task} record should be the task's integer doc id, "
                                f"got {r.id!r}") from e
            if doc_id in seen:
                raise DataError(f"{r.where}: doc id {doc_id} of task {task} repeats {seen[doc_id]}")
            seen[doc_id] = r.where
            items.append(TextItem(doc_id, r.output, list(r.references or ())))
        if kind == "bleu" and len({len(it.references) for it in items}) != 1:
            raise DataError(f"{path}: the records for task {task} need the same number of references each for corpus "
                            f"BLEU, got {sorted({len(it.references) for it in items})}")
        return items, True
    if with_refs:
        lacking = next(r for r in records if r.references is None)
        raise DataError(f"{path}: {len(records) - len(with_refs)} of the {len(records)} records for task {task} lack field "
                        f"'references' (e.g. {lacking.where}): give every record of the task its references, or none")
    loaded = task_docs(task, data_dir=ctx.data_dir, limit=limit)
    if loaded is None:
        if not records:
            return None
        raise DataError(f"{path}: the {len(records)} records for task {task} have no 'references' and lm-eval cannot "
                        f"load the task's data set here (data.data_dir={ctx.data_dir}: offline, only the tasks under "
                        "harness/evals/tasks): add the references to each record")
    obj, docs = loaded
    prompts = [Prompt(str(i), obj.doc_to_text(doc), task) for i, doc in enumerate(docs)]
    gens = ctx.outputs(policy, prompts, {}, f"alignment_tax_{task}", eval_name=task)
    if gens is None:
        return None
    return [TextItem(int(g.prompt_id), g.output, task_references(kind, obj, docs[int(g.prompt_id)])) for g in gens], False

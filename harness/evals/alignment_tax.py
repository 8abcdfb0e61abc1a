"""Alignment tax: a public-benchmark score per policy and its paired change vs the base model.

InstructGPT (Ouyang et al. 2022, section 4.2, Table 14) reports that RLHF fine-tuning
lowers scores on public NLP tasks (HellaSwag, DROP, SQuADv2, WMT fr->en, ...) relative to GPT-3 and
calls this the "alignment tax"; PPO-ptx is meant to shrink it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.declarations import EvalDef, Metric, deltas, row
from harness.evals.base import EvalOutput, EvalSpec
from harness.ranges import ranged
from harness.records import ResultRow
from harness.registry import register
from harness.stats import bootstrap_mean, paired_bootstrap_delta

EVAL = "alignment_tax"


def _scores_by_doc(items: Sequence[Mapping], *, policy: str, task: str, metric: str) -> dict[int, float]:
    scores: dict[int, float] = {}
    for item in items:
        if item.get("task", task) != task:
            continue
        doc_id = int(item["doc_id"])
        if doc_id in scores:
            raise ValueError(f"alignment_tax: policy {policy!r} has doc_id {doc_id} twice for task {task!r}")
        if metric not in item:
            raise ValueError(f"alignment_tax: policy {policy!r} doc_id {doc_id} has no metric {metric!r}")
        scores[doc_id] = float(item[metric])
    if not scores:
        raise ValueError(f"alignment_tax: policy {policy!r} has no items for task {task!r}")
    return scores


def score_and_delta_rows(eval_: str, items_by_policy: dict[str, list[dict]], *, task: str, metric: str = "acc",
                         base_policy: str = "base", n_resamples: int = 2000, seed: int = 0,
                         slice_: dict | None = None, common_items: bool = False,
                         pairs: Sequence[Sequence[str]] = ()) -> list[ResultRow]:
    """Per-policy benchmark score and paired delta vs ``base_policy``, as result rows of ``eval_``.

    ``items_by_policy`` maps policy name -> per-item records as returned by
    :func:`harness.evals.lm_eval_runner.run_lm_eval` (``{"task", "doc_id", <metric>: 0/1}``);
    records of other tasks are ignored. For every policy (in the mapping's order) one row
    ``metric`` holds the mean with a 95 % bootstrap interval (:func:`harness.stats.bootstrap_mean`);
    for every policy other than the base, one more row ``<metric>_delta`` with ``baseline=base_policy``
    in its slice holds the mean paired difference policy - base over the same doc_ids
    (:func:`harness.stats.paired_bootstrap_delta`). Values are in the metric's unit (accuracy 0-1),
    deltas in the same unit. ``slice_`` goes into every row's slice (with ``baseline`` added to the deltas').

    The alignment tax is the negative of that delta: a positive tax means the aligned policy
    scores lower than the base model (paper section 4.2, Table 14).

    ``pairs``: more ``(policy, other)`` paired deltas, each a ``<metric>_delta`` row of ``policy`` with
    ``baseline=other`` (skipped unless both policies are scored): ``("ppo_ptx", "ppo")`` is the difference of their
    two deltas vs base over the same items, i.e. how much of PPO's tax the pretraining mix (ptx) gives back.

    Raises ``ValueError`` if ``base_policy`` is missing, a policy has no items for ``task``, an
    item lacks ``metric``, a doc_id repeats, or a policy's doc_id set differs from the base's
    (items are never dropped silently: paired comparisons need the same items), unless ``common_items``
    (``eval.outputs_missing=warn``, whose warning counted what an outputs file lacks): then a delta is over
    the doc_ids both have.
    """
    if base_policy not in items_by_policy:
        raise ValueError(f"alignment_tax: base policy {base_policy!r} not in {sorted(items_by_policy)}")
    scores = {p: _scores_by_doc(items, policy=p, task=task, metric=metric) for p, items in items_by_policy.items()}
    base = scores[base_policy]
    doc_ids = sorted(base)
    slice_ = dict(slice_ or {})
    rows: list[ResultRow] = []
    for policy, by_doc in scores.items():
        rows.append(row(eval_, policy, metric, bootstrap_mean([by_doc[d] for d in sorted(by_doc)], n_resamples=n_resamples,
                                                             seed=seed), **slice_))
        if policy == base_policy:
            continue
        if set(by_doc) != set(base) and not common_items:
            only_p, only_b = sorted(set(by_doc) - set(base)), sorted(set(base) - set(by_doc))
            raise ValueError(
                f"alignment_tax: {task} doc_ids differ between {policy!r} and {base_policy!r}: "
                f"{len(only_p)} only in {policy!r} (e.g. {only_p[:5]}), {len(only_b)} only in {base_policy!r} (e.g. {only_b[:5]})"
            )
        ids = [d for d in doc_ids if d in by_doc]
        delta = paired_bootstrap_delta([by_doc[d] for d in ids], [base[d] for d in ids], n_resamples=n_resamples, seed=seed)
        rows.append(row(eval_, policy, f"{metric}_delta", delta, **slice_, baseline=base_policy))
    for policy, other in pairs:
        if policy not in scores or other not in scores or base_policy in (policy, other):
            continue
        a, b = scores[policy], scores[other]
        if set(a) != set(b) and not common_items:
            raise ValueError(f"alignment_tax: {task} doc_ids differ between {policy!r} and {other!r} "
                             f"({len(set(a) ^ set(b))} not in both)")
        ids = sorted(set(a) & set(b))
        delta = paired_bootstrap_delta([a[d] for d in ids], [b[d] for d in ids], n_resamples=n_resamples, seed=seed)
        rows.append(row(eval_, policy, f"{metric}_delta", delta, **slice_, baseline=other))
    return rows


_ONE = {"slices": ("task", "shots"), "item_required": False}  # each item record carries its task's one metric
TASK_METRICS = (
    Metric("acc", "fraction", True, "acc", label="accuracy", **_ONE),
    Metric("acc_norm", "fraction", True, "acc_norm", label="length-normalised accuracy", **_ONE),
    Metric("exact_match", "fraction", True, "exact_match", label="exact match", **_ONE),
    Metric("em", "fraction", True, "em", label="exact match", **_ONE),
    Metric("f1", "score", True, "f1", tolerance=2.0, label="F1 (the task's scale)", **_ONE),
    Metric("bleu", "score", True, None, tolerance=1.0, label="BLEU (corpus level)", **_ONE),
)
"""lm-eval task metrics the alignment tax reports (``spec.task_metrics`` must name one of them)."""


@dataclass
class AlignmentTaxSpec(EvalSpec):
    """Public NLP tasks through lm-eval, scored per policy with a paired delta vs base (paper Table 14)."""

    tasks: list[str] = field(default_factory=lambda: ["hellaswag_local", "truthfulqa_mc2_local"])  # offline tasks
    # lm-eval built-ins used instead when data.data_dir is null (online)
    online_tasks: list[str] = field(default_factory=lambda: ["squadv2", "drop", "wmt14-fr-en", "winogrande", "lambada_openai",
                                                             "hellaswag", "truthfulqa_mc2"])
    # the metric scored per task (default acc; one of TASK_METRICS); corpus-level metrics (bleu) get no paired delta
    task_metrics: dict[str, str] = field(default_factory=lambda: {"squadv2": "f1", "drop": "f1", "wmt14-fr-en": "bleu",
                                                                  "lambada_openai": "acc", "truthfulqa_mc2_local": "acc"})
    num_fewshot: list[int] = field(default_factory=lambda: [0])  # one run per shot count, e.g. [0, 5]
    limit: int | None = ranged(100, ge=1)  # items per task; None = all
    # more paired deltas [policy, other] beside the ones vs base: ppo_ptx - ppo = how much of PPO's tax ptx gives back
    delta_pairs: list[list[str]] = field(default_factory=lambda: [["ppo_ptx", "ppo"]])


#: Why an outputs-file policy has no score on a task scored from likelihoods (recorded in ``skipped``).
LIKELIHOOD_NOTE = "likelihood-only task: not available for an outputs file"


def _file_scores(ctx, spec: AlignmentTaxSpec, tasks: list[str], skipped: list[dict]) -> dict[str, dict[str, tuple]]:
    """``{task: {file policy: (per-item records, aggregates, paired)}}`` for the text-scored tasks
    (:mod:`harness.evals.text_tasks`); ``paired`` is whether the items are the task's documents (the file's own
    references need not be). Likelihood-only tasks and tasks the file has nothing for go to ``skipped``."""
    from harness.evals.text_tasks import (
        KIND_METRICS,
        file_items,
        score_items,
        text_kind,
    )

    scored: dict[str, dict[str, tuple]] = {}
    for policy in (p for p in ctx.policies if ctx.policies[p].is_file):
        for task in tasks:
            kind = text_kind(task)
            if kind is None:
                skipped.append({"policy": policy, "task": task, "reason": f"{task}: {LIKELIHOOD_NOTE}"})
                continue
            metric = dict(spec.task_metrics).get(task, "acc")
            if metric not in KIND_METRICS[kind]:
                raise ValueError(f"evals.alignment_tax.task_metrics.{task}={metric!r}: an outputs file's {task} answers are "
                                 f"scored {list(KIND_METRICS[kind])}; set evals.alignment_tax.task_metrics.{task}")
            got = file_items(ctx, policy, task, kind, spec.limit)
            if got is None:
                skipped.append({"policy": policy, "task": task, "reason": f"{task}: outputs file has no records for it"})
                continue
            items, own_references = got
            per, aggregates = score_items(kind, items)
            records = [{"task": task, "doc_id": it.doc_id, "output": it.output, **v} for it, v in zip(items, per)]
            scored.setdefault(task, {})[policy] = (records, aggregates, not own_references)
    return scored


def run(ctx, spec: AlignmentTaxSpec) -> EvalOutput:
    """The alignment_tax eval (``conf/evals/alignment_tax.yaml``): lm-eval tasks for every policy.

    Offline (a local ``data_dir``) it runs ``spec.tasks`` (our task YAMLs on local files); online
    (``data.data_dir=null``) lm-eval's built-ins ``spec.online_tasks``. One pass per shot count in
    ``spec.num_fewshot``; rows have slice ``{task, shots}`` and the paired delta vs the ``base`` policy
    (:func:`score_and_delta_rows`). The per-task metric is ``spec.task_metrics[task]`` (default ``acc``).
    A metric lm-eval only aggregates over the corpus (WMT BLEU) has no per-item values: it gets its
    aggregate row (no interval) and no paired delta.

    An outputs-file policy is scored on the text-scored tasks (SQuAD v2, DROP, translation:
    :mod:`harness.evals.text_tasks`) with the metric lm-eval uses, against the references of its records or
    of the task's documents, once, under ``shots: 0`` (the harness gave it no examples). Items that are the
    task's documents are paired with the checkpoints' (deltas vs base); items with the file's own references
    get rows of their own, without a delta. Likelihood-only tasks are recorded under ``skipped`` as
    :data:`LIKELIHOOD_NOTE`. Raises ``ValueError`` for an undeclared task metric.
    """
    out = EvalOutput()
    declared = {m.name for m in TASK_METRICS}
    bad = {t: m for t, m in dict(spec.task_metrics).items() if m not in declared}
    if bad:
        raise ValueError(f"evals.alignment_tax.task_metrics {bad}: not a declared task metric ({sorted(declared)})")
    for i, pair in enumerate(spec.delta_pairs):
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"evals.alignment_tax.delta_pairs[{i}]={list(pair)!r}: expected [policy, other policy]")
    tasks = list(spec.tasks if ctx.data_dir else spec.online_tasks)
    checkpoints = ctx.checkpoint_policies()
    skipped: list[dict] = []
    scored = _file_scores(ctx, spec, tasks, skipped)
    base = "base" if "base" in checkpoints else (checkpoints or list(ctx.policies))[0]
    common = ctx.outputs_missing == "warn"
    for shots in list(spec.num_fewshot) + ([0] if scored and 0 not in spec.num_fewshot else []):
        runs = checkpoints if shots in spec.num_fewshot else []
        per_policy = {p: ctx.lm_eval(p, tasks, spec.limit, shots or None) for p in runs}
        for task in tasks:
            metric = dict(spec.task_metrics).get(task, "acc")
            slice_ = {"task": task, "shots": int(shots)}
            items = {p: [it for it in its if it["task"] == task and metric in it] for p, its in per_policy.items()}
            aggregates = {p: ctx.lm_eval_aggregates[(p, task, spec.limit, shots or None)] for p in runs}
            sizes = {p: spec.limit or 0 for p in runs}
            alone = []  # file policies scored against their own references: rows without a delta
            for p, (records, agg, paired) in (scored.get(task, {}) if shots == 0 else {}).items():
                if paired:
                    items[p] = [r for r in records if metric in r]
                else:
                    alone.append(p)
                aggregates[p], sizes[p] = agg, len(records)
            for group in ([items] if items else []) + [{p: [r for r in scored[task][p][0] if metric in r]} for p in alone]:
                if all(group.values()):
                    b = base if base in group else next(iter(group))
                    out.rows += score_and_delta_rows(EVAL, group, task=task, metric=metric, base_policy=b, n_resamples=ctx.resamples,
                                                     seed=ctx.seed, slice_=slice_, common_items=common,
                                                     pairs=[tuple(p) for p in spec.delta_pairs])
                    out.items += [{"policy": p, "task": task, "shots": int(shots), "doc_id": it["doc_id"], metric: it[metric],
                                   **({"output": it["output"]} if "output" in it else {})} for p, its in group.items() for it in its]
                    continue
                for p in group:  # corpus-level metric: aggregate only
                    if metric not in aggregates[p]:
                        raise ValueError(f"alignment_tax: lm-eval task {task!r} reported no metric {metric!r} "
                                         f"(it has {sorted(aggregates[p])}); set evals.alignment_tax.task_metrics.{task}")
                    out.rows.append(ResultRow("", p, EVAL, metric, float(aggregates[p][metric]), None, None, sizes[p], slice_))
    out.info.update(tasks=tasks, base_policy=base, skipped=skipped)
    return out


ALIGNMENT_TAX = register(EvalDef(EVAL, (*TASK_METRICS, *deltas(*(m for m in TASK_METRICS if m.item_field))), ("doc_id",),
                                 AlignmentTaxSpec,
                                 run, title="Alignment tax (public NLP tasks)", paper="section 4.2, Table 14"))

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
                         slice_: dict | None = None) -> list[ResultRow]:
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

    Raises ``ValueError`` if ``base_policy`` is missing, a policy has no items for ``task``, an
    item lacks ``metric``, a doc_id repeats, or a policy's doc_id set differs from the base's
    (items are never dropped silently: paired comparisons need the same items).
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
        if set(by_doc) != set(base):
            only_p, only_b = sorted(set(by_doc) - set(base)), sorted(set(base) - set(by_doc))
            raise ValueError(
                f"alignment_tax: {task} doc_ids differ between {policy!r} and {base_policy!r}: "
                f"{len(only_p)} only in {policy!r} (e.g. {only_p[:5]}), {len(only_b)} only in {base_policy!r} (e.g. {only_b[:5]})"
            )
        delta = paired_bootstrap_delta([by_doc[d] for d in doc_ids], [base[d] for d in doc_ids], n_resamples=n_resamples,
                                       seed=seed)
        rows.append(row(eval_, policy, f"{metric}_delta", delta, **slice_, baseline=base_policy))
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


def run(ctx, spec: AlignmentTaxSpec) -> EvalOutput:
    """The alignment_tax eval (``conf/evals/alignment_tax.yaml``): lm-eval tasks for every checkpoint policy.

    Offline (a local ``data_dir``) it runs ``spec.tasks`` (our task YAMLs on local files); online
    (``data.data_dir=null``) lm-eval's built-ins ``spec.online_tasks``. One pass per shot count in
    ``spec.num_fewshot``; rows have slice ``{task, shots}`` and the paired delta vs the ``base`` policy
    (:func:`score_and_delta_rows`). The per-task metric is ``spec.task_metrics[task]`` (default ``acc``).
    A metric lm-eval only aggregates over the corpus (WMT BLEU) has no per-item values: it gets its
    aggregate row (no interval) and no paired delta. Outputs-file policies cannot be scored by
    likelihood and are listed under ``skipped``. Raises ``ValueError`` for an undeclared task metric.
    """
    out = EvalOutput()
    declared = {m.name for m in TASK_METRICS}
    bad = {t: m for t, m in dict(spec.task_metrics).items() if m not in declared}
    if bad:
        raise ValueError(f"evals.alignment_tax.task_metrics {bad}: not a declared task metric ({sorted(declared)})")
    policies = ctx.checkpoint_policies()
    skipped = [{"policy": p, "reason": "outputs file: lm-eval needs the model's likelihoods"} for p in ctx.policies
               if p not in policies]
    if not policies:
        out.info["skipped"] = skipped
        return out
    tasks = list(spec.tasks if ctx.data_dir else spec.online_tasks)
    base = "base" if "base" in policies else policies[0]
    for shots in spec.num_fewshot:
        per_policy = {p: ctx.lm_eval(p, tasks, spec.limit, shots or None) for p in policies}
        for task in tasks:
            metric = dict(spec.task_metrics).get(task, "acc")
            items = {p: [it for it in its if it["task"] == task and metric in it] for p, its in per_policy.items()}
            if all(items.values()):
                out.rows += score_and_delta_rows(EVAL, items, task=task, metric=metric, base_policy=base,
                                                 n_resamples=ctx.resamples, seed=ctx.seed, slice_={"task": task, "shots": int(shots)})
                out.items += [{"policy": p, "task": task, "shots": int(shots), "doc_id": it["doc_id"], metric: it[metric]}
                              for p, its in items.items() for it in its]
            else:  # corpus-level metric: aggregate only
                for p in policies:
                    agg = ctx.lm_eval_aggregates[(p, task, spec.limit, shots or None)]
                    if metric not in agg:
                        raise ValueError(f"alignment_tax: lm-eval task {task!r} reported no metric {metric!r} "
                                         f"(it has {sorted(agg)}); set evals.alignment_tax.task_metrics.{task}")
                    out.rows.append(ResultRow("", p, EVAL, metric, float(agg[metric]), None, None, spec.limit or 0,
                                              {"task": task, "shots": int(shots)}))
    out.info.update(tasks=tasks, base_policy=base, skipped=skipped)
    return out


ALIGNMENT_TAX = register(EvalDef(EVAL, (*TASK_METRICS, *deltas(*(m for m in TASK_METRICS if m.item_field))), ("doc_id",),
                                 AlignmentTaxSpec,
                                 run, title="Alignment tax (public NLP tasks)", paper="section 4.2, Table 14"))

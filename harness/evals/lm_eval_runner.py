"""Public NLP benchmarks through EleutherAI lm-eval on an already-loaded model (alignment tax).

Tasks come from ``harness/evals/tasks`` only (``include_defaults=False`` skips indexing lm-eval's
~14k built-in tasks) and read local files; the data directory reaches the task's
``custom_dataset`` loader as TaskManager metadata. Source: lm-eval 0.4.x
lm_eval/models/huggingface.py (``HFLM(pretrained=<PreTrainedModel>)``), lm_eval/evaluator.py
(``simple_evaluate``) and lm_eval/api/task.py (``custom_dataset`` receives the task metadata).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import torch

TASKS_DIR = Path(__file__).resolve().parent / "tasks"


def _aggregates(results: dict[str, Any]) -> dict[str, float]:
    """``{"acc,none": 0.3, "acc_stderr,none": ..., "alias": ...}`` -> ``{"acc": 0.3}``."""
    out = {}
    for key, value in results.items():
        metric, _, filt = key.partition(",")
        if filt == "none" and not metric.endswith("_stderr") and isinstance(value, (int, float)):
            out[metric] = float(value)
    return out


def task_manager(data_dir: str | None):
    """lm-eval's ``TaskManager``: offline (``data_dir`` set) only our local tasks under :data:`TASKS_DIR` (skips
    indexing ~14k built-ins), which get ``data_dir`` as metadata; online (``None``) lm-eval's built-ins too."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=data_dir is None, metadata={"data_dir": str(data_dir)})


def task_docs(task: str, *, data_dir: str | None, limit: int | None) -> tuple[Any, list[dict]] | None:
    """(lm-eval task object, its first ``limit`` evaluation documents, all for ``None``) of ``task``, in the
    order lm-eval numbers them (``doc_id`` = position), or ``None`` when the task is not known here
    (:func:`task_manager`: offline, only the local tasks). Loading the documents may read the hub (online)."""
    import itertools

    from lm_eval.tasks import get_task_dict

    manager = task_manager(data_dir)
    if task not in manager.all_subtasks:
        return None
    obj = get_task_dict([task], manager)[task]
    return obj, list(itertools.islice(obj.eval_docs, limit))


def run_lm_eval(
    model,
    tokenizer,
    tasks: list[str],
    *,
    data_dir: str,
    limit: int | None,
    num_fewshot: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Score a causal LM on lm-eval tasks defined under ``harness/evals/tasks``.

    ``model`` is a ``transformers.PreTrainedModel`` (decoder-only) already placed on the run's device and
    dtype (:func:`harness.devices.place`); ``tokenizer`` its tokenizer. lm-eval runs it there: for a
    pre-initialised model HFLM ignores its own ``device`` / ``dtype`` arguments and takes ``model.device``
    (lm_eval/models/huggingface.py, ``HFLM.__init__``), which is checked here. The model is wrapped in
    :class:`harness.evals.lm_eval_prefix.PrefixSharingHFLM`: HFLM with a prompt prefix shared by many requests
    (TruthfulQA MC's QA primer) run once, equal to HFLM's log-likelihoods to ~1e-5. Log-softmaxes are taken in
    float32 (HFLM's ``softmax_dtype``), so a bfloat16 model's log-likelihoods are not rounded to bf16.
    ``limit`` keeps the first ``limit`` items of each task in file order (lm-eval does not shuffle),
    so every model sees the same items and comparisons are paired; ``None`` runs all items.
    All four lm-eval seeds are set to ``seed`` (this reseeds the global ``random``, numpy and
    torch generators). Few-shot examples (``num_fewshot``) are drawn from the same split, never
    the item being scored. The model's train/eval mode is restored on return.

    Returns ``(aggregates, items)``: aggregates maps task -> {metric: value} for the
    unfiltered ("none") metrics, e.g. ``{"hellaswag_local": {"acc": 0.31, "acc_norm": 0.33}}``
    (fractions, stderr dropped); items is one dict per scored item
    ``{"task", "doc_id", <metric>: 0.0/1.0, ...}`` sorted by (task, doc_id); metrics lm-eval only
    aggregates over the corpus (BLEU) appear in the aggregates, not per item.
    With ``data_dir=None`` (online) lm-eval's built-in tasks are indexed too (squadv2, drop, ...).
    Raises ``ValueError`` for a name that is not a single task there (groups and tags are
    refused, their results would not be per task) or for ``limit < 1``, and ``RuntimeError`` if HFLM
    would run anywhere but on the model's device.
    """
    import lm_eval

    from harness.evals import lm_eval_prefix

    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit} (lm-eval reads limit < 1 as a fraction)")
    manager = task_manager(data_dir)
    unknown = [t for t in tasks if t not in manager.all_subtasks]
    if unknown:
        raise ValueError(f"unknown lm-eval task(s) {unknown}; available under {TASKS_DIR}: {sorted(manager.all_subtasks)}")

    # backend="causal": harness policies are decoder-only; skips lm-eval's guess from the config.
    # HFLM puts a pre-initialised model in eval mode; give the caller back the mode it had.
    was_training = model.training
    device = next(model.parameters()).device
    try:
        lm = lm_eval_prefix.PrefixSharingHFLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=batch_size,
                                              softmax_dtype=torch.float32, min_prefix=lm_eval_prefix.MIN_PREFIX)
        if lm.device != device:
            raise RuntimeError(f"lm-eval's HFLM would run on {lm.device}, the model is on {device}")
        # simple_evaluate ends with add_env_info (torch's collect_env: subprocesses, ~1 s a call, once per policy and
        # eval); the harness records its own environment in run.json, so it is skipped here
        with mock.patch("lm_eval.evaluator.add_env_info", lambda results: None):
            out = lm_eval.simple_evaluate(
                model=lm,
                tasks=list(tasks),
                num_fewshot=num_fewshot,
                limit=limit,
                log_samples=True,
                task_manager=manager,
                bootstrap_iters=0,  # intervals come from harness.stats on the per-item records
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
            )
    finally:
        model.train(was_training)
    aggregates = {task: _aggregates(out["results"][task]) for task in tasks}
    items = []
    for task in tasks:
        for sample in out["samples"][task]:
            record = {"task": task, "doc_id": int(sample["doc_id"])}
            # per-item numbers only: corpus-level metrics (e.g. WMT BLEU) keep (ref, pred) tuples per sample
            record.update({m: float(sample[m]) for m in sample["metrics"] if isinstance(sample[m], (int, float, bool))})
            items.append(record)
    items.sort(key=lambda r: (r["task"], r["doc_id"]))
    return aggregates, items

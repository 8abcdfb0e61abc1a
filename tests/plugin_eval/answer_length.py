"""The ``answer_length`` eval: how long each policy's answers to AlpacaEval instructions are.

Added without editing the harness: this module declares the spec, the metric and ``run``, and
registers them; ``conf/evals/answer_length.yaml`` beside it configures it. Run it with
``HARNESS_EVAL_MODULES=tests.plugin_eval.answer_length`` and
``hydra.searchpath=[file://<this folder>/conf] +evals@evals.answer_length=answer_length``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness import selection
from harness.declarations import EvalDef, Metric, row
from harness.evals.base import EvalOutput, EvalSpec
from harness.registry import register
from harness.stats import bootstrap_mean

COUNTS = {"words": lambda s: float(len(s.split())), "chars": lambda s: float(len(s))}


@dataclass
class AnswerLengthSpec(EvalSpec):
    """Which lengths to report (``words``, ``chars``)."""

    counts: list[str] = field(default_factory=lambda: ["words", "chars"])


def run(ctx, spec: AnswerLengthSpec) -> EvalOutput:
    """Mean answer length per policy and count, with a 95 % bootstrap interval over prompts."""
    out = EvalOutput()
    prompts, _ = selection.eval_prompts(ctx.data_cfg, n=spec.n)
    for policy in ctx.policies:
        gens = ctx.outputs(policy, prompts, spec.decoding, "alpaca_eval", spec.prompt_template)
        for count in spec.counts:
            items = [{"policy": policy, "prompt_id": g.prompt_id, "count": count, "length": COUNTS[count](g.output)} for g in gens]
            out.items += items
            est = bootstrap_mean([it["length"] for it in items], n_resamples=ctx.resamples, seed=ctx.seed)
            out.rows.append(row("answer_length", policy, "mean_length", est, count=count))
    return out


MEAN_LENGTH = Metric("mean_length", "score", True, "length", ("count",), tolerance=1.0, label="mean answer length",
                     description="mean length of the policy's answers, in the slice's count (words or characters)")
ANSWER_LENGTH = register(EvalDef("answer_length", (MEAN_LENGTH,), ("prompt_id",), AnswerLengthSpec, run,
                                   title="Answer length"))

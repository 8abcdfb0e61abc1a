"""Report sections on benchmark evals: TruthfulQA (paper Fig. 6), toxicity by instruction type
(paper Fig. 7) and closed-domain hallucination (paper section 4.2)."""

from __future__ import annotations

import pandas as pd

from reports.ci_figures import ci_facet_figure
from reports.figures import order_policies
from reports.html import Safe, figure_div, join, note, table, tag
from reports.paper_ref import find
from reports.sections.common import (
    NO_RESULTS,
    RunData,
    by_judge,
    ci,
    col,
    delta,
    index,
    judges,
    n_of,
    na,
    slug,
)
from reports.sections.trust import trust_table

TQA_STYLES = {"qa": "QA prompt", "instruction_qa": "Instruction + QA prompt", "no_primer": "no primer (TruthfulQA null)",
              "chat": "chat log (TruthfulQA chat)", "long": "blog post (TruthfulQA long)",
              "help": "Professor Smith instruction (TruthfulQA help)", "outputs_file": "outputs file (answers as given)"}
TQA_VALIDATION = "truthfulqa_reference_loo"  # judge_validation labels of the truthfulness scorers (harness/judging/validation.py)
TQA_BASELINES = ("always_truthful", "refusal_only")
TQA_GEN = ("truthful", "truthful_informative", "informative")  # the generation metrics, in table order
TOX_METRICS = ("expected_max_toxicity", "toxicity_probability", "mean_toxicity")


def _name(judge: str | None) -> str:
    return judge if judge is not None else "unnamed scorer"


def _fig_id(base: str, i: int, judge: str | None) -> str:
    return base if i == 0 else f"{base}-{slug(_name(judge))}"


def truthfulqa_section(data: RunData) -> Safe:
    """% truthful and % truthful × informative for the QA and Instruction+QA prompts per policy
    (``fig-truthfulqa``, scorer named), and MC1 / MC2 with their paired deltas vs base
    (``fig-truthfulqa-mc``). The paper's Table 14 % true × informative (QA prompt) sits in the table."""
    if data.results is None:
        return na(NO_RESULTS)
    sub = data.rows("truthfulqa")
    if sub.empty:
        return na("TruthfulQA results")
    parts = []
    gen = sub[sub["metric"].isin(list(TQA_GEN))]
    if gen.empty:
        parts.append(na("TruthfulQA generation results (truthful / informative)"))
    gen = gen.assign(measure=gen["metric"], style=col(gen, "prompt_style"))
    for i, judge in enumerate(judges(gen)):
        rows = by_judge(gen, judge)
        plotted = rows[rows["measure"].isin(["truthful", "truthful_informative"])]
        fig = ci_facet_figure(plotted, facet="style", x="policy", group="measure",
                              facet_order=[s for s in TQA_STYLES if s in set(plotted["style"])], facet_labels=TQA_STYLES,
                              group_order=["truthful", "truthful_informative"],
                              group_labels={m: data.label("truthfulqa", m) for m in TQA_GEN},
                              title=f"TruthfulQA generation — scorer: {_name(judge)}", y_title="share of questions",
                              legend_title="measure")
        parts.append(figure_div(fig, _fig_id("fig-truthfulqa", i, judge)))
        by = index(rows, "policy", "metric", "style")
        measures = [m for m in TQA_GEN if m in set(rows["measure"])]
        out = []
        for pol in order_policies(rows["policy"]):
            for style in [s for s in TQA_STYLES if s in set(rows["style"])]:
                cells = [by.get((pol, m, style)) for m in measures]
                ref = find(data.paper, "truthfulqa", "truthful_informative", ours=pol, prompt_style=style)
                out.append([pol, TQA_STYLES[style], *(ci(c) for c in cells), n_of(*cells),
                            f"{ref.text()} ({ref.label})" if ref else "—"])
        parts.append(table(["policy", "prompt", *(data.label("truthfulqa", m) for m in measures), "n (questions)",
                            "paper % true × informative (Table 14, rated by humans / GPT-judge)"],
                           out, numeric=range(2, len(measures) + 3)))
    parts.append(_truthfulness_validation(data))
    mc = sub[sub["metric"].isin(["mc1", "mc2"])]
    if mc.empty:
        parts.append(na("TruthfulQA multiple-choice results (MC1/MC2)"))
        return join(parts)
    parts.append(figure_div(ci_facet_figure(mc, x="policy", group="metric", group_labels={"mc1": "MC1", "mc2": "MC2"},
                                            title="TruthfulQA multiple choice (MC1, MC2; lm-eval likelihoods)",
                                            y_title="score", legend_title="metric"), "fig-truthfulqa-mc"))
    by = index(sub, "policy", "metric")
    out = [(pol, ci(by.get((pol, "mc1"))), delta(by.get((pol, "mc1_delta"))) if pol != "base" else "— (reference)",
            ci(by.get((pol, "mc2"))), delta(by.get((pol, "mc2_delta"))) if pol != "base" else "— (reference)",
            n_of(by.get((pol, "mc1")), by.get((pol, "mc2")))) for pol in order_policies(mc["policy"])]
    parts.append(table(["policy", "MC1 [95% CI]", "MC1 delta vs base", "MC2 [95% CI]", "MC2 delta vs base", "n"],
                       out, numeric=(1, 2, 3, 4, 5)))
    return join(parts)


def _truthfulness_validation(data: RunData) -> Safe:
    """The truthfulness scorers' agreement with TruthfulQA's labels of its reference answers (``judge_validation``
    rows with ``labels=truthfulqa_reference_loo``), scorers first, then the trivial baselines on the same items."""
    val = data.rows("judge_validation")
    if not val.empty:
        val = val[col(val, "labels") == TQA_VALIDATION]
    if val.empty:  # said, not hidden; worded apart from na(): a run made before these rows existed is still complete
        return note("No truthfulness scorer validation in this run's results (judge_validation rows with "
                    "labels=truthfulqa_reference_loo; runs made before the harness wrote them have none).")
    by = index(val, "policy", "metric")
    names = sorted(set(val["policy"]), key=lambda p: (p in TQA_BASELINES, TQA_BASELINES.index(p) if p in TQA_BASELINES else 0, p))
    out = [(f"{p} (trivial baseline)" if p in TQA_BASELINES else p, ci(by.get((p, "accuracy"))),
            ci(by.get((p, "kappa")), percent=False), ci(by.get((p, "roc_auc")), percent=False),
            n_of(by.get((p, "accuracy")))) for p in names]
    return join([tag("h3", "Truthfulness scorer validation"),
                 tag("p", "Leave-one-out on TruthfulQA's own reference answers: each question's best answer (truthful) "
                          "and first incorrect answer (untruthful), scored against the other references. No independent "
                          "human labels of model answers are available offline, so this is the scorer's agreement on "
                          "the data set's reference answers, not on model outputs.", cls="meta"),
                 table(["scorer", "accuracy [95% CI]", "Cohen's kappa [95% CI]", "ROC-AUC [95% CI]", "n (answers)"],
                       out, numeric=(1, 2, 3, 4))])


def _toxicity_frame(data: RunData, sub: pd.DataFrame) -> pd.DataFrame:
    """Toxicity rows with ``measure`` (the metric, or what a delta is of), ``is_delta`` (from the declarations)
    and ``stratum`` (the prompt-toxicity bin of a per-stratum row, else None)."""
    decls = [data.metric("toxicity", m) for m in sub["metric"]]
    return sub.assign(measure=[d.delta_of or d.name if d else m for d, m in zip(decls, sub["metric"])],
                      is_delta=[bool(d and d.delta_of) for d in decls], instruction=col(sub, "instruction"),
                      stratum=col(sub, "stratum"))


def _strata_table(rows: pd.DataFrame, instructions: list[str]) -> Safe:
    """Expected maximum toxicity and toxicity probability per prompt-toxicity stratum, instruction and policy."""
    by = index(rows, "policy", "metric", "instruction", "stratum")
    strata = sorted(set(rows["stratum"]))
    out = []
    for instr in instructions:
        for pol in order_policies(rows.loc[rows["instruction"] == instr, "policy"]):
            for st in strata:
                emt = by.get((pol, "expected_max_toxicity", instr, st))
                if emt is not None:
                    out.append((instr, pol, st, ci(emt, percent=False),
                                ci(by.get((pol, "toxicity_probability", instr, st))), n_of(emt)))
    return join([tag("p", "By the prompt's own Perspective toxicity (RealToxicityPrompts prompts, equal counts per "
                          "stratum; InstructGPT Fig. 39):", cls="meta"),
                 table(["instruction", "policy", "prompt toxicity", "expected max toxicity [95% CI]",
                        "toxicity probability [95% CI]", "n (prompts)"], out, numeric=(3, 4, 5))])


def toxicity_section(data: RunData) -> Safe:
    """Expected maximum toxicity, toxicity probability and mean toxicity per policy for each
    instruction type (``fig-toxicity``; one figure per scorer, scorer named), with the paired delta
    of expected maximum toxicity vs base and the paper's Perspective values in the table, the metrics per
    prompt-toxicity stratum when the run has them, and the scorer's validation (against Perspective on
    held-out text, beside the trivial baseline ``text_length``; :func:`reports.sections.trust.trust_table`)."""
    if data.results is None:
        return na(NO_RESULTS)
    sub = _toxicity_frame(data, data.rows("toxicity"))
    if sub.empty:
        return na("toxicity results")
    parts = [tag("p", "Per prompt: maximum / mean toxicity over k samples and whether any sample scores ≥ 0.5; "
                      "averaged over prompts (Gehman et al. 2020). Prompts: RealToxicityPrompts, stratified by the "
                      "prompt's Perspective toxicity. Instructions: basic (the prefix alone), "
                      "respectful, biased. Scorers differ: compare policies within one scorer only.")]
    for i, judge in enumerate(judges(sub)):
        rows = by_judge(sub, judge)
        per_stratum = rows[rows["stratum"].notna()]
        rows = rows[rows["stratum"].isna()]
        values = rows[~rows["is_delta"]]
        instructions = order_policies(values["instruction"], order=("basic", "respectful", "biased"))
        fig = ci_facet_figure(values, facet="instruction", x="policy", group="measure", facet_order=instructions,
                              facet_labels={k: f"instruction: {k}" for k in instructions},
                              group_order=[m for m in TOX_METRICS if m in set(values["measure"])],
                              group_labels={m: data.label("toxicity", m) for m in TOX_METRICS},
                              title=f"Toxicity by instruction type — scorer: {_name(judge)}", y_title="toxicity (0–1)",
                              legend_title="measure")
        parts.append(figure_div(fig, _fig_id("fig-toxicity", i, judge)))
        by = index(rows, "policy", "metric", "instruction")
        out = []
        for instr in instructions:
            for pol in order_policies(values.loc[values["instruction"] == instr, "policy"]):
                emt = by.get((pol, "expected_max_toxicity", instr))
                d = by.get((pol, "expected_max_toxicity_delta", instr))
                ref = find(data.paper, "toxicity", "mean_toxicity", ours=pol, instruction=instr)
                out.append((instr, pol, ci(emt, percent=False),
                            delta(d, percent=False) if d else ("— (reference)" if pol == "base" else "—"),
                            ci(by.get((pol, "toxicity_probability", instr))),
                            ci(by.get((pol, "mean_toxicity", instr)), percent=False), n_of(emt),
                            f"{ref.value:.3f} ({ref.label}, Perspective API)" if ref else "—"))
        parts.append(table(["instruction", "policy", "expected max toxicity [95% CI]", "delta vs base",
                            "toxicity probability [95% CI]", "mean toxicity [95% CI]", "n (prompts)",
                            "paper mean toxicity (175B)"], out, numeric=(2, 3, 4, 5, 6)))
        if not per_stratum.empty:
            parts.append(_strata_table(per_stratum[~per_stratum["is_delta"]], instructions))
    parts.append(trust_table(data, ("toxicity",), "the toxicity scores: the scorer's validation"))
    return join(parts)


def hallucination_section(data: RunData) -> Safe:
    """Closed-domain hallucination rate per policy, overall and per category (``fig-hallucination``;
    one figure per detector, detector named), with the paper's labeler-rated rates in the table."""
    if data.results is None:
        return na(NO_RESULTS)
    sub = data.rows("hallucination", ["hallucination_rate"])
    if sub.empty:
        return na("hallucination results")
    sub = sub.assign(category=[c if c is not None else "overall" for c in col(sub, "category")])
    parts = []
    for i, judge in enumerate(judges(sub)):
        rows = by_judge(sub, judge)
        cats = order_policies(rows["category"], order=("overall",))
        fig = ci_facet_figure(rows, x="policy", group="category", group_order=cats,
                              title=f"Closed-domain hallucination rate — detector: {_name(judge)}",
                              y_title="share of outputs flagged", legend_title="category")
        parts.append(figure_div(fig, _fig_id("fig-hallucination", i, judge)))
        by = index(rows, "policy", "category")
        out = []
        for pol in order_policies(rows["policy"]):
            ref = find(data.paper, "hallucination", "hallucination_rate", ours=pol)
            out.append([pol, *(ci(by.get((pol, c))) for c in cats), n_of(by.get((pol, "overall"))),
                        f"{ref.text()} ({ref.label})" if ref else "—"])
        parts.append(table(["policy", *(f"{c} [95% CI]" for c in cats), "n (prompts)",
                            "paper rate (175B, labelers)"], out, numeric=range(1, len(cats) + 2)))
    parts.append(trust_table(data, ("hallucination",), "the hallucination rates: the detector's validation"))
    return join(parts)

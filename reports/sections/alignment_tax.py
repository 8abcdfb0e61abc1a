"""The alignment-tax section: each public NLP task's score per policy, its paired delta vs base,
and the paper's Table 14 value of the mirrored 175B model beside ours (paper section 4.2)."""

from __future__ import annotations

import pandas as pd

from reports.ci_figures import RefLine, ci_facet_figure, num
from reports.figures import order_policies
from reports.html import Safe, figure_div, fmt_pp, join, table, tag
from reports.paper_ref import PaperValue, find, paper_task
from reports.sections.common import NO_RESULTS, RunData, ci, col, delta, index, n_of, na

EVAL = "alignment_tax"


def tasks(data: RunData) -> list[str]:
    """The alignment-tax tasks of the run (slice ``task`` of its rows), tasks named in ``evals.json`` first."""
    if data.results is None:
        return []
    named = list(data.eval_info(EVAL).get("tasks") or [])
    present = [t for t in order_policies(col(data.rows(EVAL), "task"), order=()) if t is not None]
    return [t for t in named if t in present] + [t for t in present if t not in named]


def _paper_for(data: RunData, task: str, policy: str) -> tuple[PaperValue | None, PaperValue | None]:
    """(the paper's value for the model mirroring ``policy`` on ``task``, the paper's GPT-3 value)."""
    info = paper_task(task)
    if info is None:
        return None, None
    return find(data.paper, info[0], info[1], ours=policy, **info[2]), find(data.paper, info[0], info[1], ours="base", **info[2])


def _paper_delta(ref: PaperValue | None, base: PaperValue | None) -> str:
    if ref is None or base is None or ref is base:
        return "—"
    d = ref.value - base.value
    return f"{d:+.2f} ({ref.unit})" if ref.unit else fmt_pp(d)


def alignment_tax_section(data: RunData) -> Safe:
    """Figures of task scores (``fig-alignment-tax``) and paired deltas vs base
    (``fig-alignment-tax-delta``) for fraction-valued metrics, and per task a table: score [95% CI],
    delta vs base, n, the paper's value of the mirrored 175B model and the paper's delta vs GPT-3."""
    if data.results is None:
        return na(NO_RESULTS)
    names = tasks(data)
    if not names:
        return na("public NLP task results (e.g. HellaSwag)")
    sub = data.rows(EVAL)
    decls = [data.metric(EVAL, m) for m in sub["metric"]]
    sub = sub.assign(base_metric=[(d.delta_of or d.name) if d else m for d, m in zip(decls, sub["metric"])],
                     is_delta=[bool(d and d.delta_of) for d in decls])
    sub = sub.assign(metric_shots=[m if not s else f"{m}, {s}-shot" for m, s in zip(sub["base_metric"], col(sub, "shots"))])
    sub = sub.assign(series=[f"{t} ({m})" for t, m in zip(col(sub, "task"), sub["metric_shots"])])
    base_policy = data.eval_info(EVAL).get("base_policy") or "base"
    other = sub["is_delta"] & (col(sub, "baseline") != base_policy)  # e.g. ppo_ptx - ppo: a table of its own
    pair_rows, sub = sub[other], sub[~other]
    frac = sub[[data.is_fraction(EVAL, m) for m in sub["base_metric"]]]
    parts = [tag("p", "Delta: the mean paired difference policy − base over the same items (paired bootstrap 95 % "
                      "interval); a negative delta is an alignment tax. Paper columns: the 175B model of the paper "
                      "that each policy mirrors (GPT-3 ↔ base, PPO ↔ ppo, PPO-ptx ↔ ppo_ptx), from "
                      "harness/evals/data/paper_reference.yaml; other models, prompts and scale — the shape to look "
                      "for, not numbers to match.")]
    if not frac.empty:
        series = order_policies(frac["series"], order=())
        values, deltas = frac[~frac["is_delta"]], frac[frac["is_delta"]]
        if not values.empty:
            parts.append(figure_div(ci_facet_figure(values, x="policy", group="series", group_order=series,
                                                    title="Public NLP task scores (alignment tax)", y_title="score",
                                                    legend_title="task (metric)"), "fig-alignment-tax"))
        if not deltas.empty:
            lo = min([0.0] + [v for v in (num(x) for x in deltas["ci_low"].tolist() + deltas["value"].tolist()) if v is not None])
            hi = max([0.0] + [v for v in (num(x) for x in deltas["ci_high"].tolist() + deltas["value"].tolist()) if v is not None])
            pad = max(0.02, 0.15 * (hi - lo))
            parts.append(figure_div(ci_facet_figure(
                deltas, x="policy", group="series", group_order=series, y_range=[lo - pad, hi + pad],
                title="Alignment tax: paired delta vs base (negative = tax)", y_title="delta vs base",
                legend_title="task (metric)", ref_lines=[RefLine(0.0, "no change", dash="dash", color="grey")]),
                "fig-alignment-tax-delta"))
    for task in names:
        parts.append(_task_table(data, task, sub[col(sub, "task") == task]))
    if not pair_rows.empty:
        out = [(t, m, f"{p} − {b}", delta(r, percent=data.is_fraction(EVAL, bm)), r["n"])
               for t, m, p, b, bm, r in zip(col(pair_rows, "task"), pair_rows["metric_shots"], pair_rows["policy"],
                                            col(pair_rows, "baseline"), pair_rows["base_metric"], pair_rows.to_dict("records"))]
        parts += [tag("h3", "Does the pretraining mix give the tax back? Paired differences between policies"),
                  tag("p", "ppo_ptx − ppo over the same items: the difference of their two deltas vs base. Above 0: "
                           "PPO-ptx pays less tax than PPO (paper section 4.2).", cls="meta"),
                  table(["task", "metric", "policies", "paired difference [95% CI]", "n"], out, numeric=(3, 4))]
    return join(parts)


def _task_table(data: RunData, task: str, rows: pd.DataFrame) -> Safe:
    info = paper_task(task)
    values = rows[~rows["is_delta"]]
    by = index(rows[rows["is_delta"]], "policy", "metric_shots")
    out = []
    for metric in order_policies(values["metric_shots"], order=()):
        frac = data.is_fraction(EVAL, values.loc[values["metric_shots"] == metric, "metric"].iloc[0])
        mrows = index(values[values["metric_shots"] == metric], "policy")
        for pol in order_policies(p for (p,) in mrows):
            r, d = mrows[(pol,)], by.get((pol, metric))
            ref, base = _paper_for(data, task, pol)
            out.append((metric, pol, ci(r, percent=frac), delta(d, percent=frac) if d else
                        ("— (reference)" if pol == "base" else "—"), n_of(r, d),
                        f"{ref.text()} ({ref.label})" if ref else "—", _paper_delta(ref, base)))
    caption = (f"Paper row shown: {info[3]} — {info[4]}." if info else
               "The paper gives no value for this task in harness/evals/data/paper_reference.yaml.")
    return join([tag("h3", f"Alignment tax: {task}"), tag("p", caption, cls="meta"),
                 table(["metric", "policy", "score [95% CI]", "delta vs base [95% CI]", "n",
                        f"paper ({info[3] if info else '—'}, 175B)", "paper delta vs GPT-3"],
                       out, numeric=(2, 3, 4, 5, 6), cls="tax")])

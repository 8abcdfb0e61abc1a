"""Report sections judged by preference: win rate against each baseline (paper Fig. 1) and the
1-7 Likert score with the labelers' metadata flags (paper Fig. 4)."""

from __future__ import annotations

from reports.ci_figures import RefLine, ci_facet_figure
from reports.figures import order_policies
from reports.html import Safe, figure_div, join, table, tag
from reports.paper_ref import find
from reports.sections.trust import trust_table
from reports.sections.common import (
    NO_RESULTS,
    RunData,
    by_judge,
    ci,
    index,
    judges,
    n_of,
    na,
    slug,
)

WIN_METRICS = ("win_rate", "lc_win_rate")  # the plotted ones; labels come from the declarations
BASELINE_ORDER = ("text-davinci-003", "base", "base_fewshot", "sft")



def _judge_name(judge: str | None) -> str:
    return judge if judge is not None else "unnamed judge"


def winrate_section(data: RunData) -> Safe:
    """Win rate (raw and length-controlled) of every policy against each baseline, one figure and
    one table per judge (the ``helpful`` judge first: figure ``fig-winrate``; others
    ``fig-winrate-<judge>``). The paper's 175B values (human labelers) sit in the table."""
    if data.results is None:
        return na(NO_RESULTS)
    sub = data.rows("winrate", ["win_rate", "lc_win_rate", "win_prob"])
    if sub.empty:
        return na("win-rate results")
    sub = sub.assign(baseline=sub["baseline"].fillna("?"))
    baselines = order_policies(sub["baseline"], order=tuple(data.eval_info("winrate").get("baselines") or BASELINE_ORDER))
    m = int(data.eval_info("winrate").get("samples_per_prompt") or 1)
    samples = (f" Each policy of the run answered every prompt {m} times (a file baseline once): a prompt's win is the "
               "share of its sample pairs the policy wins, which estimates the same win rate as one answer a side with "
               "a narrower interval; n counts prompts.") if m > 1 else ""
    parts = [tag("p", "Share of prompts on which the judge prefers the policy's output to the baseline's "
                      "(tie = 0.5; dashed line = parity). The length-controlled win rate (AlpacaEval 2.0 style) "
                      "removes the judge's preference for longer outputs. Bars: 95 % bootstrap intervals over "
                      "prompts. Each judge has its own figure: two judges are never mixed in one bar group." + samples)]
    for i, judge in enumerate(judges(sub)):
        rows = by_judge(sub, judge)
        name = _judge_name(judge)
        fig_id = "fig-winrate" if i == 0 else f"fig-winrate-{slug(name)}"
        plotted = rows[rows["metric"].isin(list(WIN_METRICS))]
        parts.append(tag("h3", f"Judge: {name}" + (" (main)" if i == 0 else "")))
        if not plotted.empty:
            fig = ci_facet_figure(plotted, facet="metric", x="policy", group="baseline",
                                  facet_order=[m for m in WIN_METRICS if m in set(plotted["metric"])],
                                  facet_labels={m: data.label("winrate", m) for m in WIN_METRICS}, group_order=baselines,
                                  title=f"Win rate against each baseline — judge: {name}", y_title="win rate",
                                  legend_title="baseline", ref_lines=[RefLine(0.5, "parity", dash="dash", color="grey")])
            parts.append(figure_div(fig, fig_id))
        by = index(rows, "policy", "baseline", "metric")
        table_rows = []
        for baseline in [b for b in baselines if b in set(rows["baseline"])]:
            for pol in order_policies(rows.loc[rows["baseline"] == baseline, "policy"]):
                w, lc, p = (by.get((pol, baseline, m)) for m in ("win_rate", "lc_win_rate", "win_prob"))
                row = [pol, baseline, ci(w), ci(lc), ci(p), n_of(w, lc, p)]
                if i == 0:  # the paper's labelers judged overall preference: shown beside the main judge only
                    ref = find(data.paper, "winrate", "win_rate", ours=pol, baseline=baseline)
                    row.append(f"{ref.text()} ({ref.label})" if ref else "—")
                table_rows.append(row)
        headers = ["policy", "baseline", "win rate [95% CI]", "LC win rate [95% CI]",
                   "mean Bradley-Terry win prob [95% CI]", "n"]
        parts.append(table(headers + (["paper, 175B, human labelers"] if i == 0 else []), table_rows,
                           numeric=(2, 3, 4, 5)))
    parts.append(trust_table(data, ("reward_model", "chat"), "these win rates: the judges' validation"))
    return join(parts)


def likert_section(data: RunData) -> Safe:
    """Mean 1-7 Likert score per policy (``fig-likert``) and the share of outputs with each
    metadata flag (``fig-likert-flags``), each flag named with its detector (``judge`` column)."""
    if data.results is None:
        return na(NO_RESULTS)
    sub = data.rows("likert")
    if sub.empty:
        return na("Likert results")
    parts = []
    scores = sub[sub["metric"] == "likert"]
    ref = data.eval_info("likert").get("reference_mean_likert")
    for i, judge in enumerate(judges(scores)):
        rows = by_judge(scores, judge)
        lines = [RefLine(float(ref), f"{data.eval_info('likert').get('calibration', 'reference')} outputs ({float(ref):g})",
                         color="grey")] if isinstance(ref, (int, float)) else []
        fig = ci_facet_figure(rows, x="policy", title=f"Likert score (1–7) — scored by judge: {_judge_name(judge)}",
                              y_title="mean Likert score (1–7)", percent=False, y_range=[1, 7.3], ref_lines=lines)
        parts.append(figure_div(fig, "fig-likert" if i == 0 else f"fig-likert-{slug(_judge_name(judge))}"))
    flags = sub[sub["metric"] != "likert"]
    flags = flags.assign(flag=[f"{m} ({_judge_name(j)})" for m, j in zip(flags["metric"], flags["judge"])])
    declared = [m.name for m in data.declarations["likert"].metrics if m.name != "likert"] if "likert" in data.declarations else []
    flag_order = [f for m in (*declared, *order_policies(flags["metric"], order=()))
                  for f in order_policies(flags.loc[flags["metric"] == m, "flag"], order=())]
    flag_order = list(dict.fromkeys(flag_order))
    if not flags.empty:
        fig = ci_facet_figure(flags, x="flag", group="policy", x_order=flag_order,
                              title="Metadata flags: share of outputs flagged (detector in brackets)",
                              y_title="share of outputs", legend_title="policy")
        parts.append(figure_div(fig, "fig-likert-flags"))
    labelled = sub.assign(flag=[f"{m} ({_judge_name(j)})" for m, j in zip(sub["metric"], sub["judge"])])
    by = index(labelled, "policy", "flag")
    policies = order_policies(sub["policy"])
    measures = order_policies((f for m, f in zip(labelled["metric"], labelled["flag"]) if m == "likert"), order=()) + flag_order
    rows_out = []
    for f in measures:
        cells = [by.get((pol, f)) for pol in policies]
        ns = sorted({c["n"] for c in cells if c and c.get("n") is not None})
        rows_out.append([f, *(ci(c, percent=f in flag_order, digits=2) for c in cells),
                         "—" if not ns else (str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}")])
    parts.append(tag("p", "Likert: 1 + the number of septile edges of the judge's rewards on reference outputs below "
                          "the output's reward (reference outputs average 4). Flags: share of outputs (fails to follow, "
                          "inappropriate, toxic: all outputs; follows constraints: outputs with a parsed constraint; "
                          "hallucination: closed-domain outputs). Detectors: see docs/metrics.md."))
    parts.append(table(["measure (judge or detector)", *policies, "n"], rows_out, numeric=range(1, len(policies) + 2)))
    parts.append(trust_table(data, ("reward_model", "chat", "hallucination", "toxicity"),
                             "these scores and flags: the judges' and detectors' validation"))
    return join(parts)

"""The judge-validation section: judges' agreement with people (and with GPT-4) against the paper's
72.6 % inter-labeler agreement, the detectors' validation scores, and the generation cache."""

from __future__ import annotations

import re
from typing import Any

from reports.ci_figures import RefLine, ci_facet_figure
from reports.figures import HUMAN_AGREEMENT, order_policies
from reports.html import Safe, figure_div, join, table, tag
from reports.paper_ref import find
from reports.sections.common import NO_RESULTS, RunData, ci, na

AGREEMENT = r"(human_agreement(_.+)?|gpt4_agreement)"


def _agreement_label(metric: str) -> str:
    if metric == "human_agreement":
        return "hh-rlhf, all"
    if metric == "gpt4_agreement":
        return "GPT-4 (davinci-003 vs -001)"
    return "hh-rlhf " + metric[len("human_agreement_"):]


def judge_validation_section(data: RunData) -> Safe:
    """``fig-judge-validation``: each judge's agreement with held-out human preferences (overall, per
    hh-rlhf subset) and with GPT-4, with the paper's inter-labeler agreement as a reference line;
    ``fig-detector-validation``: the other validation scores (toxicity scorer ROC-AUC, hallucination
    detector precision / recall / F1), each named with its scorer; then tables and the cache."""
    parts = []
    if data.results is None:
        parts.append(na(NO_RESULTS))
    else:
        sub = data.rows("judge_validation")
        parts.append(_validation(data, sub) if not sub.empty else na("judge validation results"))
    parts += [tag("h3", "Generation cache and evals run"), _cache(data)]
    return join(parts)


def _validation(data: RunData, sub: Any) -> Safe:
    ref = find(data.paper, "judge_validation", "human_agreement")
    ref_y = ref.value if ref is not None else HUMAN_AGREEMENT
    ref_name = ref.label if ref is not None else "paper"
    excluded = sub["metric"].astype(str).str.endswith("_excluded_share")
    agree = sub[sub["metric"].astype(str).str.fullmatch(AGREEMENT) & ~excluded]
    other = sub[~sub["metric"].astype(str).str.fullmatch(AGREEMENT) & ~excluded]
    parts = []
    if not agree.empty:
        agree = agree.assign(set=[_agreement_label(m) for m in agree["metric"]])
        fig = ci_facet_figure(agree, x="set", group="policy", x_order=order_policies(agree["set"], order=()),
                              title="Judge agreement with human preferences (and with GPT-4)",
                              y_title="agreement", x_title="comparison set", legend_title="judge",
                              ref_lines=[RefLine(ref_y, f"paper inter-labeler agreement ({ref_y:.1%})"),
                                         RefLine(0.5, "chance", dash="dash", color="grey")])
        parts.append(figure_div(fig, "fig-judge-validation"))
    if not other.empty:
        other = other.assign(score=[f"{m} ({j if j is not None else p})"
                                    for m, j, p in zip(other["metric"], other["judge"], other["policy"])])
        parts.append(figure_div(ci_facet_figure(other, x="score", title="Detector and scorer validation "
                                                "(held-out labelled sets; scorer in brackets)", y_title="score",
                                                percent=False, y_range=[0, 1.05]),
                                "fig-detector-validation"))
    rows = [(r["policy"], r["metric"], r["judge"] if r["judge"] is not None else "—",
             ci(r, percent=re.fullmatch(AGREEMENT, r["metric"]) is not None or r["metric"].endswith("_share")), r["n"])
            for r in sub.to_dict("records")]
    if ref is not None:
        rows.append((ref.label, "human_agreement", "training labelers vs each other", ref.text(), "paper"))
    parts.append(tag("p", f"Reference line: {ref_name}, the paper's agreement between its training labelers "
                          "(section 3.4) — a practical ceiling for agreement with one labeler. *_excluded_share: "
                          "share of pairs left out (labeler ties, missing verdicts).", cls="meta"))
    parts.append(table(["judge / detector", "metric", "judge or scorer", "value [95% CI]", "n"], rows, numeric=(3, 4)))
    return join(parts)


def _cache(data: RunData) -> Safe:
    if data.evals is None:
        return na("results/evals.json")
    parts = []
    cache = data.evals.get("generation_cache")
    if isinstance(cache, dict):
        hits, misses = cache.get("hits"), cache.get("misses")
        rate = (f"{hits / (hits + misses):.1%}" if isinstance(hits, int) and isinstance(misses, int) and hits + misses
                else "—")
        parts.append(table(["cache directory", "hits", "misses", "generated", "hit rate"],
                           [(tag("code", cache.get("dir")), hits, misses, cache.get("generated"), rate)],
                           numeric=(1, 2, 3, 4)))
    else:
        parts.append(na("generation-cache statistics"))
    evals = data.evals.get("evals")
    if isinstance(evals, dict) and evals:
        rows = []
        for name, info in evals.items():
            info = info if isinstance(info, dict) else {}
            skipped = info.get("skipped") or []
            rows.append((name, info.get("version", "—"),
                         "; ".join(f"{s.get('policy')}: {s.get('reason')}" if isinstance(s, dict) else str(s)
                                   for s in skipped) or "none"))
        parts.append(table(["eval", "version", "policies skipped"], rows))
    return join(parts)

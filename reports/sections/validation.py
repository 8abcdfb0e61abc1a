"""The judge-validation section: judges' agreement with people (and with GPT-4) against the paper's
72.6 % inter-labeler agreement, the detectors' validation scores, and the generation cache."""

from __future__ import annotations

from typing import Any

from reports.ci_figures import RefLine, ci_facet_figure
from reports.figures import HUMAN_AGREEMENT, order_policies
from reports.html import Safe, figure_div, join, table, tag
from reports.paper_ref import find
from reports.sections.common import NO_RESULTS, RunData, ci, col, na

LABEL_SETS = {"hh_rlhf_human": "hh-rlhf", "alpaca_eval_gpt4": "GPT-4 (davinci-003 vs -001)"}


def _agreement_label(labels: str | None, subset: str | None) -> str:
    name = LABEL_SETS.get(str(labels), str(labels))
    return f"{name} {subset}" if subset else (f"{name}, all" if labels == "hh_rlhf_human" else name)


LENGTH_ORDER = (("agreement", None), ("agreement", "longer_preferred"), ("agreement", "shorter_preferred"),
                ("balanced_agreement", None), ("lc_agreement", None), ("prefers_longer", None))


def _length_measure(data: RunData, metric: str, length: str | None) -> str:
    label = data.label("judge_validation", metric)
    return f"{label}, {str(length).replace('_', ' ')} pairs" if isinstance(length, str) else label


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
    ref = find(data.paper, "judge_validation", "agreement", labels="hh_rlhf_human")
    ref_y = ref.value if ref is not None else HUMAN_AGREEMENT
    ref_name = ref.label if ref is not None else "paper"
    excluded = sub["metric"] == "excluded_share"
    by_length = col(sub, "length").notna()
    length_metrics = sub["metric"].isin(["balanced_agreement", "lc_agreement", "prefers_longer"])
    agree = sub[(sub["metric"] == "agreement") & ~by_length]
    length = sub[((sub["metric"] == "agreement") & col(sub, "subset").isna()) | length_metrics]
    other = sub[(sub["metric"] != "agreement") & ~excluded & ~length_metrics]
    parts = []
    if not agree.empty:
        agree = agree.assign(set=[_agreement_label(lab, sset) for lab, sset in zip(col(agree, "labels"), col(agree, "subset"))])
        fig = ci_facet_figure(agree, x="set", group="policy", x_order=order_policies(agree["set"], order=()),
                              title="Judge agreement with human preferences (and with GPT-4)",
                              y_title="agreement", x_title="comparison set", legend_title="judge",
                              ref_lines=[RefLine(ref_y, f"paper inter-labeler agreement ({ref_y:.1%})"),
                                         RefLine(0.5, "chance", dash="dash", color="grey")])
        parts.append(figure_div(fig, "fig-judge-validation"))
    if (by_length | length_metrics).any():
        measure = [_length_measure(data, m, lg) for m, lg in zip(length["metric"], col(length, "length"))]
        length = length.assign(measure=measure, set=[LABEL_SETS.get(str(x), str(x)) for x in col(length, "labels")])
        fig = ci_facet_figure(length, facet="set", x="measure", group="policy", x_order=list(dict.fromkeys(
                                  _length_measure(data, m, lg) for m, lg in LENGTH_ORDER)),
                              title="How much of the agreement is length (\"longer output wins\" is the trivial baseline)",
                              y_title="share of pairs", legend_title="judge",
                              ref_lines=[RefLine(0.5, "chance / length-neutral", dash="dash", color="grey")])
        parts.append(figure_div(fig, "fig-judge-length"))
        parts.append(tag("p", "Shorter-preferred pairs: the labeler preferred the shorter output, where \"longer wins\" "
                              "scores 0. Length-balanced agreement: the mean over shorter- and longer-preferred pairs "
                              "(0.5 for any judge that decides by length alone). Length-controlled agreement: AlpacaEval's "
                              "length-controlled GLM at equal length (left out where length separates the judge's "
                              "verdicts completely, as for \"longer wins\").", cls="meta"))
    if not other.empty:
        other = other.assign(score=[f"{m} on {lab} ({p})" for m, lab, p in zip(other["metric"], col(other, "labels"), other["policy"])])
        parts.append(figure_div(ci_facet_figure(other, x="score", title="Detector and scorer validation "
                                                "(held-out labelled sets; scorer in brackets)", y_title="score",
                                                percent=False, y_range=[0, 1.05]),
                                "fig-detector-validation"))
    rows = [(r["policy"], _length_measure(data, r["metric"], r.get("length")), _agreement_label(r.get("labels"), r.get("subset")),
             ci(r, percent=data.is_fraction("judge_validation", r["metric"])), r["n"])
            for r in sub.to_dict("records")]
    if ref is not None:
        rows.append((ref.label, "agreement", "training labelers vs each other", ref.text(), "paper"))
    parts.append(tag("p", f"Reference line: {ref_name}, the paper's agreement between its training labelers "
                          "(section 3.4) — a practical ceiling for agreement with one labeler. excluded_share: "
                          "share of pairs left out (labeler ties, missing verdicts).", cls="meta"))
    parts.append(table(["judge / scorer", "metric", "labels", "value [95% CI]", "n"], rows, numeric=(3, 4)))
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
    warnings = data.evals.get("warnings") or []
    if warnings:
        parts.append(tag("p", f"{len(warnings)} warning(s) of the evaluation run:", cls="neg"))
        parts.append(table(["warning"], [(str(w),) for w in warnings]))
    return join(parts)

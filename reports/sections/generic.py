"""The section of an eval that has no section of its own (an eval added by another package, or a new one):
drawn from its declarations alone, so adding an eval needs no report code.

Per declared metric of the eval that has rows: one figure of value with its 95 % interval by policy,
one facet per value of the metric's first slice key and the remaining keys as bar groups (``fig-<eval>-<metric>``),
then one table of every row with its slice. Labels and units (% or number) come from the declaration.
"""

from __future__ import annotations

from reports.ci_figures import ci_facet_figure
from reports.figures import order_policies
from reports.html import Safe, figure_div, join, table, tag
from reports.sections.common import NO_RESULTS, RunData, ci, col, na, slug


def _slice_text(sl: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(sl.items())) or "—"


def generic_section(data: RunData, eval_: str) -> Safe:
    """Figures and a table for every declared metric of ``eval_`` in the run (see the module docstring)."""
    if data.results is None:
        return na(NO_RESULTS)
    rows = data.rows(eval_)
    if rows.empty:
        return na(f"{eval_} results")
    defn = data.declarations.get(eval_)
    parts = [tag("p", f"{defn.title or eval_}" + (f" ({defn.paper})" if defn and defn.paper else "") +
                 ". Bars: 95 % bootstrap intervals over items.", cls="meta")]
    for name in order_policies(rows["metric"], order=[m.name for m in defn.metrics] if defn else ()):
        sub = rows[rows["metric"] == name]
        decl = data.metric(eval_, name)
        keys = list(decl.slices) + list(decl.marginal) if decl else sorted({k for s in sub["slice"] for k in s})
        keys = [k for k in keys if col(sub, k).notna().any()]
        label = data.label(eval_, name)
        percent = data.is_fraction(eval_, name)
        plotted = sub.assign(group=[_slice_text({k: r[k] for k in keys[1:] if r.get(k) is not None})
                                    for r in sub.to_dict("records")],
                             facet=[f"{keys[0]}={r[keys[0]]}" if keys else "" for r in sub.to_dict("records")])
        direction = "higher" if decl is None or decl.higher_is_better else "lower"
        fig = ci_facet_figure(plotted, facet="facet" if keys else None, x="policy", group="group" if len(keys) > 1 else None,
                              title=f"{label} ({direction} is better)", y_title=label,
                              legend_title=", ".join(keys[1:]), percent=percent)
        parts.append(figure_div(fig, f"fig-{slug(eval_)}-{slug(name)}"))
    out = [(r["policy"], data.label(eval_, r["metric"]), _slice_text(r["slice"]), ci(r, percent=data.is_fraction(eval_, r["metric"])),
            r["n"]) for r in rows.sort_values(["metric", "policy"], key=lambda s: s.astype(str)).to_dict("records")]
    parts.append(table(["policy", "metric", "slice", "value [95% CI]", "n"], out, numeric=(3, 4)))
    return join(parts)


def extra_evals(data: RunData, covered: set[str]) -> list[str]:
    """Evals of the run (in results order) that no dedicated section covers."""
    if data.results is None:
        return []
    return [e for e in order_policies(data.results["eval"], order=()) if e not in covered]


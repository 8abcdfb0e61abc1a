"""Report sections on training: reward-model accuracy (overall and per K) and PPO curves, including
proxy vs gold reward against KL (Gao et al. 2022)."""

from __future__ import annotations

from reports import figures
from reports.html import Safe, figure_div, join, note, table, tag
from reports.ppo_figures import overoptimisation_figure
from reports.sections.common import NO_RESULTS, RunData, ci, na

PPO_RUNS = ("ppo", "ppo_ptx")


def rm_section(data: RunData) -> Safe:
    """Pairwise accuracy of each reward model on held-out comparisons (``fig-rm-accuracy``), with the
    per-K rows (``pairwise_accuracy_k<K>``) listed under their model in the table."""
    if data.results is None:
        return na(NO_RESULTS)
    rm = data.rows("reward_model")
    sub = rm[rm["metric"] == "pairwise_accuracy"]
    if sub.empty:
        return na("reward-model accuracy")
    per_k = rm[rm["metric"].astype(str).str.fullmatch(r"pairwise_accuracy_k\d+")]
    rows = []
    for r in sub.to_dict("records"):
        rows.append((r["policy"], ci(r), r["n"]))
        mine = sorted(per_k[per_k["policy"] == r["policy"]].to_dict("records"), key=lambda x: int(x["metric"].rsplit("k", 1)[1]))
        rows += [(f"{r['policy']}, K = {x['metric'].rsplit('k', 1)[1]}", ci(x), x["n"]) for x in mine]
    return join([figure_div(figures.rm_accuracy_figure(sub), "fig-rm-accuracy"),
                 table(["reward model", "pairwise accuracy [95% CI]", "n (pairs)"], rows, numeric=(1, 2))])


def ppo_section(data: RunData) -> Safe:
    """PPO training curves per step (``fig-ppo-curves``) and proxy / gold reward against KL
    (``fig-overoptimisation``) for the ``ppo`` and ``ppo_ptx`` runs whose logs exist."""
    logs = {r: data.logs[r] for r in PPO_RUNS if data.logs.get(r)}
    if not logs:
        return na("PPO training logs")
    parts = [figure_div(figures.ppo_curves_figure(logs), "fig-ppo-curves"),
             tag("p", "Over-optimisation view (Gao et al. 2022): the proxy reward is the reward model PPO "
                      "optimises, the gold reward the held-out helpful judge it never sees. A gold curve that "
                      "falls while the proxy keeps rising with KL is reward over-optimisation.")]
    over = overoptimisation_figure(logs)
    parts.append(figure_div(over, "fig-overoptimisation") if over.data else
                 na("reward / KL pairs in the PPO logs (over-optimisation view)"))
    missing = [r for r in PPO_RUNS if r not in logs]
    if missing:
        parts.append(note(f"training log not available in this run for: {', '.join(missing)}"))
    return join(parts)

"""``sweep_report.html``: one self-contained page over a Hydra multirun directory of pipeline jobs.

For each RL policy the jobs trained (``ppo`` in ``experiment=ppo_beta_gamma``): the win rate against
text-davinci-003 (helpful judge), the alignment-tax delta vs base per public task, PPO's final KL and
gold reward (``train_log.jsonl``) against the swept parameters (heatmaps for two parameters, lines
for one), and the paper's trade-off view, win rate against the mean accuracy change vs base
(appendix E, Figs. 33-34). When ``seed`` is swept, an "Over seeds" section gives each win rate per seed and its mean
over seeds with a t interval (:func:`reports.sweep_data.seed_summaries`). Every job is listed; failed (``error.json``), incomplete and missing
ones in a table of their own with their parameters and error. Data: :mod:`reports.sweep_data`;
figures: :mod:`reports.sweep_figures`; page: :mod:`reports.html` (everything escaped, plotly.js once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from harness.io import atomic_write_text
from reports.html import Section, figure_div, join, note, render_page, table, tag
from reports.sweep_data import (
    FINISHED,
    SEED,
    WIN_BASELINE,
    WIN_JUDGE,
    Sweep,
    load_sweep,
    reference_metrics,
    seed_summaries,
    sweep_frame,
    tax_tasks,
)
from reports.sweep_figures import (
    Metric,
    axis_values,
    fmt_metric,
    fmt_value,
    metric_figure,
    point_label,
    seed_figure,
    short,
    tradeoff_figure,
)

WIN = Metric("win_rate", "win rate", "pct", ("win_rate_ci_low", "win_rate_ci_high"))
TAX_MEAN = Metric("tax_mean_delta", "mean Δ accuracy vs base", "pp")
KL = Metric("kl_final", "final KL(π_RL ‖ π_SFT) (nats)")
GOLD = Metric("gold_reward_final", "final gold reward (helpful judge)")
MAX_ERROR_CHARS = 4000


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower() or "x"


def _per_policy(df: pd.DataFrame, policies: list[str], metric: Metric, title: str, params: list[str], fig_id: str) -> list[Any]:
    """One figure per RL policy; the failed / incomplete rows (policy None) fill their cells."""
    out = []
    for pol in policies:
        sub = df[(df["policy"] == pol) | df["policy"].isna()]
        suffix = f" ({pol})" if len(policies) > 1 or pol != "ppo" else ""
        out.append(figure_div(metric_figure(sub, params, metric, title + suffix), f"{fig_id}-{_slug(pol)}"))
    return out


def _overview(sweep: Sweep) -> Any:
    counts = {s: sum(j.status == s for j in sweep.jobs) for s in (FINISHED, "failed", "incomplete")}
    values = {p: ", ".join(fmt_value(v) for v in axis_values([j.values.get(p) for j in sweep.jobs])) for p in sweep.params}
    rows = [["sweep directory", str(sweep.path)], ["command-line overrides", " ".join(sweep.command) or "—"],
            ["upstream (reused SFT, RM, judges)", sweep.upstream or "— (each job trained its own)"],
            ["swept parameters", "; ".join(f"{p} ({short(p)}): {values[p]}" for p in sweep.params) or "none"],
            ["jobs", f"{len(sweep.jobs)}: {counts[FINISHED]} finished, {counts['failed']} failed, {counts['incomplete']} incomplete"
                     + (f"; {len(sweep.missing)} grid point(s) without a job folder" if sweep.missing else "")],
            ["win rate", f"against {WIN_BASELINE}, judged by the held-out {WIN_JUDGE} reward model (95 % bootstrap CI)"]]
    return table(["", "value"], rows)


def _jobs_table(sweep: Sweep, df: pd.DataFrame, tasks: list[str]) -> Any:
    headers = ["job", *[short(p) for p in sweep.params], "status", "policy", "win rate [95 % CI]", "mean Δ acc vs base",
               *[f"Δ {t}" for t in tasks], "final KL", "final gold reward"]
    rows = []
    for r in df.to_dict("records"):
        ci = ""
        if r.get("win_rate_ci_low") is not None and r.get("win_rate_ci_high") is not None:
            ci = f" [{fmt_metric(r['win_rate_ci_low'], 'pct')}, {fmt_metric(r['win_rate_ci_high'], 'pct')}]"
        rows.append([r["job"], *[fmt_value(r.get(p)) for p in sweep.params], r["status"], r.get("policy") or "—",
                     fmt_metric(r.get("win_rate"), "pct") + (ci if r.get("win_rate") is not None else ""),
                     fmt_metric(r.get("tax_mean_delta"), "pp"), *[fmt_metric(r.get(f"delta:{t}"), "pp") for t in tasks],
                     fmt_metric(r.get("kl_final"), "num"), fmt_metric(r.get("gold_reward_final"), "num")])
    n = len(sweep.params)
    return table(headers, rows, numeric=range(n + 4, len(headers)))


def _failures(sweep: Sweep) -> Any:
    bad = [j for j in sweep.jobs if j.status != FINISHED]
    parts = []
    if bad:
        rows = []
        for j in bad:
            err = j.error or {}
            tb = (err.get("traceback") or "")[-MAX_ERROR_CHARS:]
            detail = tag("details", join([tag("summary", "traceback"), tag("pre", tb, cls="out")])) if tb else "—"
            rows.append([j.name, *[fmt_value(j.values.get(p)) for p in sweep.params], j.status,
                         err.get("type") or ("no results and no error.json (still running, killed or timed out)"
                                             if j.status == "incomplete" else "—"),
                         err.get("message") or "—", detail, " ".join(f"{k}={v}" for k, v in j.texts.items())])
        parts.append(table(["job", *[short(p) for p in sweep.params], "status", "error", "message", "traceback", "overrides"], rows))
    if sweep.missing:
        parts.append(tag("p", "Grid points with no job folder (never launched, or the sweep was stopped):"))
        parts.append(table([short(p) for p in sweep.missing[0]], [list(m.values()) for m in sweep.missing]))
    return join(parts) if parts else note("Every job finished.")


def _seeds(sweep: Sweep, df: pd.DataFrame) -> Any:
    """The "Over seeds" section: per RL policy, point of the other parameters and win rate, each seed's estimate and
    the mean over seeds with its t interval (:func:`harness.stats.seed_spread`), in a figure and a table."""
    summaries = seed_summaries(sweep, df)
    if not summaries:
        return note("No finished seed has a win rate: nothing to summarise over seeds.")
    parts = [tag("p", "The seed is a replicate, not a setting: each job trained its RL policy (and sampled its eval) with "
                      "another seed from the same upstream. The mean over seeds with a Student t interval over seeds is the "
                      "estimate for the training procedure, seed luck included; the SD of the seeds' estimates splits into "
                      "the eval's own error (root mean square of their standard errors, half-width / 1.96) and the seeds' "
                      "spread beyond it (docs/sweeps.md, \"Seeds\"). The t interval treats the seeds' estimates as independent; the jobs "
                      "share the eval's prompts, which it does not see. Failed and incomplete seeds are listed below, not counted.")]
    rows = []
    for k, s in enumerate(summaries):
        where = point_label(s.point, list(s.point)) if s.point else ""
        title = f"{s.policy}: {s.label}" + (f" ({where})" if where else "")
        sp = s.spread
        parts.append(figure_div(seed_figure(s.seeds, s.values, s.ci, sp and sp.mean, sp and (sp.t_low, sp.t_high), title, s.label),
                                f"fig-seeds-{k}"))
        rows.append([s.policy, where or "—", s.label, str(len(s.seeds)),
                     "; ".join(f"{fmt_value(seed)}: {fmt_metric(v, 'pct')}" for seed, v in zip(s.seeds, s.values)),
                     "—" if sp is None else f"{fmt_metric(sp.mean, 'pct')} [{fmt_metric(sp.t_low, 'pct')}, {fmt_metric(sp.t_high, 'pct')}]",
                     f"{s.resolved} of {len(s.seeds)}", s.verdict()])
    parts.append(table(["policy", "other parameters", "metric", "seeds", "each seed", "mean over seeds [t 95 % CI]",
                        "seeds resolved alone", "verdict"], rows))
    return join(parts)


def build_sweep_report(sweep_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the sweep report of the Hydra multirun directory ``sweep_dir`` to ``out_path``
    (default ``<sweep_dir>/sweep_report.html``) atomically; returns the path.

    Raises ``ValueError`` naming the file for a directory without ``multirun.yaml`` or a malformed
    ``overrides.yaml``, ``results.jsonl``, ``train_log.jsonl`` or ``error.json`` (:mod:`reports.sweep_data`).
    """
    sweep = load_sweep(sweep_dir)
    df = sweep_frame(sweep)
    params = sweep.params
    finished = df[df["status"] == FINISHED] if len(df) else df
    policies = [p for p in dict.fromkeys(finished["policy"].dropna())] if len(finished) else []
    tasks = list(dict.fromkeys(t for j in sweep.jobs if j.status == FINISHED for t in tax_tasks(j.rows)))
    refs = reference_metrics(sweep)
    for col in ("win_rate", "win_rate_ci_low", "win_rate_ci_high", "win_rate_vs_sft", "win_rate_vs_sft_ci_low",
                "win_rate_vs_sft_ci_high", "lc_win_rate_vs_sft", "lc_win_rate_vs_sft_ci_low", "lc_win_rate_vs_sft_ci_high", "tax_mean_delta", "kl_final", "gold_reward_final",
                *[f"delta:{t}" for t in tasks]):
        if col not in df.columns:
            df[col] = None
    df = df.astype(object).where(df.notna(), None)
    kind = "heatmaps over " + " × ".join(short(p) for p in params) if len(params) == 2 else "lines"

    def figs(metric: Metric, title: str, fig_id: str) -> Any:
        if not policies:
            return note("No finished job: nothing to draw.")
        return join(_per_policy(df, policies, metric, title, params, fig_id))

    win = figs(WIN, f"Win rate against {WIN_BASELINE} ({WIN_JUDGE} judge)", "fig-winrate")
    tax = join([figs(Metric(f"delta:{t}", "Δ accuracy vs base", "pp"), f"Alignment tax: {t} accuracy change vs base",
                     f"fig-tax-{_slug(t)}") for t in tasks] + [figs(TAX_MEAN, "Mean accuracy change vs base over the public tasks",
                                                                    "fig-tax-mean")]) if tasks else note("No alignment-tax rows.")
    ppo = join([figs(KL, "PPO: KL(π_RL ‖ π_SFT) at the last step", "fig-kl"),
                figs(GOLD, "PPO: gold reward (held-out helpful judge) at the last step", "fig-gold")])
    trade = join([figure_div(tradeoff_figure(df[(df["policy"] == p)] if len(df) else df, params, refs),
                             f"fig-tradeoff-{_slug(p)}") for p in policies]) if policies else note("No finished job.")
    sections = [
        Section("overview", "Sweep", _overview(sweep)),
        Section("winrate", "Win rate", win),
        Section("tax", "Alignment tax per public task", tax),
        Section("ppo", "PPO: final KL and gold reward", ppo),
        Section("tradeoff", "Trade-off (paper Figs. 33-34)", join([
            tag("p", "Each point is one job (labelled with its parameter values): up is more helpful, left is a larger "
                     "alignment tax. Stars: base and SFT, evaluated in the same jobs."), trade])),
        *([Section("seeds", "Over seeds", _seeds(sweep, df))] if SEED in params else []),
        Section("jobs", "Jobs", _jobs_table(sweep, df, tasks)),
        Section("failed", "Failed, incomplete and missing jobs", _failures(sweep)),
    ]
    intro = tag("p", f"{len(sweep.jobs)} jobs; figures are {kind}. Swept: "
                     + (", ".join(f"{p} ({short(p)})" for p in params) or "nothing"))
    html = render_page(f"Sweep report: {sweep.path.name}", sections, intro=intro)
    out = Path(out_path) if out_path is not None else sweep.path / "sweep_report.html"
    atomic_write_text(out, html)
    return out


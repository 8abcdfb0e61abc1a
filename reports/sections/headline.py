"""The report's first section: the paper's central contrasts, each with the run's own 95 % interval and
whether that interval resolves it.

a. the proxy reward model and each judge beat chance on held-out pairs of their own kind (pairwise accuracy,
   ``reward_model`` rows; interval above 0.5);
b. PPO (and PPO-ptx) beat SFT on the gold judge's win rate (``winrate`` rows, ``baseline=sft``, ``judge`` =
   ``run.json``'s ``gold_judge``: the judge PPO never optimised; interval above 0.5), the length-controlled
   win rate beside it so that a length-only gain shows as such;
c. over-optimisation (Gao et al. 2022): the proxy reward rises with KL along each PPO run; the gold reward's
   shape is stated from the data (:func:`harness.overoptimisation.reward_shape`);
d. the alignment tax (paper section 4.2): PPO's paired delta vs base on each public NLP task (0-shot, fraction
   metrics) below 0, and PPO-ptx − PPO above 0 (the pretraining mix gives the tax back; ``alignment_tax``
   ``delta_pairs``);
e. the toxicity contrast of the paper's Fig. 7: PPO's (and PPO-ptx's) paired change in expected maximum
   toxicity vs base under the "respectful" instruction, below 0.

An unresolved contrast says its measured effect and the sample size that would resolve it at that effect and
the run's own variance: ``n * (half-width / |effect|)^2`` (the interval's half-width shrinks as 1/sqrt(n)), and, from
the eval's wall time in ``results/evals.json``, about how long the eval would take at that size here.
c is read from the PPO run's probe when it had one (``ppo.probe``, :mod:`trainers.probe`: fixed held-out prompts),
else from the per-iteration batch means of its train log; the label says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from reports.ci_figures import RefLine, ci_facet_figure, num
from reports.html import Safe, figure_div, join, table, tag
from reports.sections.common import NO_RESULTS, RunData, ci, col, delta, na

CHANCE = 0.5


def verdict(row: dict[str, Any] | None, above: float = CHANCE, below: bool = False, seconds: float | None = None) -> str:
    """Whether the row's 95 % interval lies above ``above`` (``below``: below it); if not, the effect and the n
    that would resolve it, and with ``seconds`` (the wall time of the eval that made the row, at the row's ``n``) about
    how long that eval would take at that n on the same machine (linear in n)."""
    if not row or num(row.get("ci_low")) is None or num(row.get("ci_high")) is None:
        return "no interval"
    lo, hi, v, n = float(row["ci_low"]), float(row["ci_high"]), float(row["value"]), int(row["n"])
    side = "below" if below else "above"
    if (hi < above) if below else (lo > above):
        return f"resolved: interval {side} {above:g}"
    effect = (above - v) if below else (v - above)
    if effect <= 0:
        return f"not resolved: the estimate is not {side} {above:g} (effect {v - above:+.3f})"
    half = (hi - lo) / 2
    need = max(math.ceil(round(n * (half / effect) ** 2, 6)), n + 1) if half > 0 else n + 1
    text = f"not resolved: effect {effect:+.3f} at n = {n}; about n = {need} would resolve it at this effect and variance"
    if seconds and n > 0:
        text += f" (the eval took {_duration(seconds)} here at n = {n}: about {_duration(seconds * need / n)} at n = {need})"
    return text


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _eval_seconds(data: RunData, name: str) -> float | None:
    """Wall seconds of eval ``name`` in this run (``results/evals.json``), or None."""
    return num(data.eval_info(name).get("seconds"))


def _first(df, **where) -> dict[str, Any] | None:
    for k, v in where.items():
        df = df[col(df, k) == v]
    recs = df.to_dict("records")
    return recs[0] if recs else None


@dataclass
class Contrast:
    """One headline contrast: ``key`` (a-e), ``label``, the result ``row`` it reads (``value``, ``ci_low``,
    ``ci_high``, ``n``; None when the run lacks it), its ``verdict`` (:func:`verdict`), ``kind`` (``share``: a
    fraction against chance; ``delta``: a paired difference, in pp when ``percent``; ``shape``: the gold curve's
    shape along KL, in ``shape``)."""

    key: str
    label: str
    row: dict[str, Any] | None
    verdict: str
    kind: Literal["share", "delta", "shape"] = "share"
    percent: bool = True
    shape: str | None = None

    def record(self) -> dict[str, Any]:
        """Plain numbers for a benchmark file: contrast, label, value, ci_low, ci_high, n, shape, verdict, resolved (None for
        a shape, which is named by its own tests rather than resolved against a null value)."""
        r = self.row or {}
        return {"contrast": self.key, "label": self.label, "value": num(r.get("value")), "ci_low": num(r.get("ci_low")),
                "ci_high": num(r.get("ci_high")), "n": r.get("n"), "shape": self.shape, "verdict": self.verdict,
                "resolved": None if self.kind == "shape" else self.verdict.startswith("resolved")}


def contrasts(data: RunData) -> list[Contrast]:
    """The contrasts a-e of the module docstring that the run has, in order (stable within each letter)."""
    run = data.run or {}
    gold = run.get("gold_judge") or "helpful"
    out: list[Contrast] = []
    rm = data.rows("reward_model", ["pairwise_accuracy"])
    for pol in [p for p in ("rm", *sorted(set(rm["policy"]) - {"rm"})) if p in set(rm["policy"])]:
        r = _first(rm, policy=pol)
        what = "proxy reward model" if pol == "rm" else f"judge {pol.removeprefix('judge_')}"
        out.append(Contrast("a", f"{what}: pairwise accuracy on its held-out pairs", r, verdict(r)))
    win = data.rows("winrate", ["win_rate", "lc_win_rate"])
    for pol in dict.fromkeys(p for p in ("ppo", "ppo_ptx", *sorted(set(win["policy"]))) if p not in ("base", "sft")):
        r = _first(win, policy=pol, baseline="sft", judge=gold, metric="win_rate")
        if r is None:
            continue
        lc = _first(win, policy=pol, baseline="sft", judge=gold, metric="lc_win_rate")
        secs = _eval_seconds(data, "winrate")
        m = int(data.eval_info("winrate").get("samples_per_prompt") or 1)
        each = f", {m} answers a side per prompt" if m > 1 else ""
        out.append(Contrast("b", f"{pol} vs SFT: win rate, gold judge {gold}{each}", r, verdict(r, seconds=secs)))
        out.append(Contrast("b", f"{pol} vs SFT: length-controlled win rate, gold judge {gold}{each}", lc, verdict(lc, seconds=secs)))
    for run_name, reward, points, shape, text in _shapes(data):
        out.append(Contrast("c", f"{run_name}: {reward} along KL ({points})", None, text, kind="shape", shape=shape))
    tax = data.rows("alignment_tax")
    tax = tax[[bool(d and d.delta_of) and data.is_fraction("alignment_tax", d.delta_of) and str(s) in ("0", "None")
               for d, s in zip((data.metric("alignment_tax", m) for m in tax["metric"]), col(tax, "shots"))]]
    for task in dict.fromkeys(col(tax, "task")):
        t = tax[col(tax, "task") == task]
        ppo, secs = _first(t, policy="ppo", baseline="base"), _eval_seconds(data, "alignment_tax")
        if ppo is not None:
            out.append(Contrast("d", f"ppo − base on {task} (an alignment tax is below 0)", ppo,
                                verdict(ppo, 0.0, below=True, seconds=secs), "delta"))
        ptx = _first(t, policy="ppo_ptx", baseline="ppo")
        if ptx is not None:
            out.append(Contrast("d", f"ppo_ptx − ppo on {task} (ptx gives the tax back: above 0)", ptx, verdict(ptx, 0.0, seconds=secs), "delta"))
    tox = data.rows("toxicity", ["expected_max_toxicity_delta"])
    tox = tox[(col(tox, "instruction") == "respectful") & col(tox, "stratum").isna()]
    for pol in [p for p in ("ppo", "ppo_ptx") if p in set(tox["policy"])]:
        for r in tox[tox["policy"] == pol].to_dict("records"):
            out.append(Contrast("e", f"{pol} − {r.get('baseline')}: expected maximum toxicity, respectful instruction, "
                                     f"scorer {r.get('judge')} (less toxic: below 0)", r,
                                verdict(r, 0.0, below=True, seconds=_eval_seconds(data, "toxicity")), "delta",
                                percent=False))
    out.sort(key=lambda c: c.key)
    return out


def headline_section(data: RunData) -> Safe:
    """The contrasts of :func:`contrasts` as one figure (``fig-headline``: those against chance) and one table."""
    if data.results is None:
        return na(NO_RESULTS)
    gold = (data.run or {}).get("gold_judge")
    found = contrasts(data)
    parts = [tag("p", "The paper's central contrasts, each with this run's 95 % interval. A contrast is resolved "
                      "when its interval excludes its null value (chance, 0.5, for a share; 0 for a difference); an unresolved "
                      "one gives the sample size that would resolve it at the measured effect and variance, and the "
                      "time its eval would take at that size here. c is a shape, named by the tests its row gives (rising, peaked or "
                      "falling only when significant at 0.05, else flat), not resolved against a null value.",
                 cls="meta")]
    if gold is None:  # a harness-eval run records no gold judge: say which judge stands in
        parts.append(tag("p", "run.json records no gold judge (the judge PPO never optimised): contrast b uses the "
                              "'helpful' judge, which may not be held out from this run's training.", cls="neg"))
    if not found:
        return join(parts + [na("reward-model accuracy, win rates against SFT and PPO logs")])
    plotted = [dict(c.row, contrast=f"{c.key}. {c.label}") for c in found if c.kind == "share" and c.row is not None]
    if plotted:
        fig = ci_facet_figure(plotted, x="contrast", title="Headline contrasts (95 % intervals; dashed: chance)",
                              y_title="share", x_title="", ref_lines=[RefLine(CHANCE, "chance", dash="dash", color="grey")])
        parts.append(figure_div(fig, "fig-headline"))
    cells = {"share": lambda c: ci(c.row) if c.row else "—", "delta": lambda c: delta(c.row, percent=c.percent),
             "shape": lambda c: c.shape}
    rows = [(c.key, c.label, cells[c.kind](c), (c.row or {}).get("n", "—"), c.verdict) for c in found]
    parts.append(table(["", "contrast", "value [95% CI]", "n", "verdict"], rows, numeric=(2, 3)))
    if any(c.key == "b" for c in found):
        parts.append(tag("p", "b's interval covers the eval's sampling of prompts and answers for these trained policies, not "
                              "the RL run's own luck: trained again with another seed, a policy can land elsewhere. To read b "
                              "for the training recipe rather than this run, sweep the seed (docs/sweeps.md, \"Seeds\": "
                              "the sweep report's \"Over seeds\" section gives the mean over seeds with its t interval).",
                         cls="meta"))
    return join(parts)


def _shapes(data: RunData) -> list[tuple[str, str, str, str, str]]:
    from reports.sections.training import reward_shapes, rl_runs

    runs = rl_runs(data.run)
    logs = {r: data.logs[r] for r in runs if data.logs.get(r)}
    return reward_shapes(logs, {r: data.probes[r] for r in runs if data.probes.get(r)})

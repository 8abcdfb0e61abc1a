"""Report sections on training: reward-model accuracy (overall and per K) and PPO curves, including
proxy vs gold reward against KL (Gao et al. 2022)."""

from __future__ import annotations

from reports import figures
from reports.html import Safe, figure_div, join, note, table, tag
from reports.ppo_figures import overoptimisation_figure
from reports.sections.common import NO_RESULTS, RunData, ci, col, na

PPO_RUNS = ("ppo", "ppo_ptx")  # the RL runs of a run.json that does not list them


def rl_runs(run: dict | None) -> dict[str, dict]:
    """RL run name -> ``{beta, ptx_coef, ptx}`` from ``run.json``'s ``rl_runs`` (a list of dicts; the
    older shape, name -> {beta, gamma}, is read too); :data:`PPO_RUNS` with no details when absent."""
    recorded = (run or {}).get("rl_runs")
    if isinstance(recorded, list):
        return {str(r["name"]): {k: v for k, v in r.items() if k != "name"} for r in recorded if isinstance(r, dict) and "name" in r}
    if isinstance(recorded, dict):
        return {str(n): {"beta": r.get("beta"), "ptx_coef": r.get("gamma"),
                         "ptx": r.get("gamma") is not None and float(r["gamma"]) > 0} for n, r in recorded.items()}
    return {r: {} for r in PPO_RUNS}


def advantages(run: dict) -> str:
    """How an RL run's advantages were estimated, from its ``rl_runs`` record (``ppo.advantage_estimator``): GAE from the
    value model, or the leave-one-out baseline over a prompt's samples; "GAE (value model)" for a run recorded before
    the option existed, which had no other."""
    if run.get("advantage_estimator") == "rloo":
        return f"leave-one-out baseline over {run.get('samples_per_prompt', '?')} samples of a prompt (no value model)"
    return "GAE (value model)"


def rm_section(data: RunData) -> Safe:
    """Pairwise accuracy of each reward model on held-out comparisons (``fig-rm-accuracy``), with the
    per-K rows (slice ``k``) listed under their model in the table."""
    if data.results is None:
        return na(NO_RESULTS)
    rm = data.rows("reward_model")
    acc = rm[rm["metric"] == "pairwise_accuracy"]
    k = col(acc, "k")
    sub, per_k = acc[k.isna()], acc[k.notna()]
    if sub.empty:
        return na("reward-model accuracy")
    rows = []
    for r in sub.to_dict("records"):
        rows.append((r["policy"], ci(r), r["n"]))
        mine = sorted(per_k[per_k["policy"] == r["policy"]].to_dict("records"), key=lambda x: int(x["k"]))
        rows += [(f"{r['policy']}, K = {x['k']}", ci(x), x["n"]) for x in mine]
    return join([figure_div(figures.rm_accuracy_figure(sub), "fig-rm-accuracy"),
                 table(["reward model", "pairwise accuracy [95% CI]", "n (pairs)"], rows, numeric=(1, 2))])


def curve_points(logs: dict, probes: dict | None = None) -> dict[str, tuple[str, list[dict]]]:
    """Per RL run, the points its reward-over-KL curve is read from: ``("probe", points)`` when the run had a probe
    (:mod:`trainers.probe`: fixed held-out prompts), else ``("batch means", train-log steps)``."""
    probes = probes or {}
    return {run: ("probe", probes[run]) if probes.get(run) else ("batch means", logs.get(run, []))
            for run in dict.fromkeys([*logs, *probes])}


def paired_rewards(rows: list, field: str) -> tuple[list[list[float]] | None, str]:
    """``([prompt][point], note)``: each probe prompt's reward at every point of ``rows`` (a probe's points, each with
    ``field``: per-prompt means in the probe's prompt order), or ``(None, note)`` when no point has them (a probe written
    before they were recorded, or a probe of one prompt: note "") or only some do, or their counts differ (e.g. a run resumed from a training state
    written before they were recorded): the note then says the test fell back to the weighted one, and why."""
    lists = [row.get(field) for row in rows]
    have = [isinstance(x, list) for x in lists]
    if not any(have):
        return None, ""
    if all(have) and len({len(x) for x in lists}) == 1 and len(lists[0]) < 2:
        return None, ""  # one prompt: nothing to pair over (the standard errors' note says so)
    if not all(have) or len({len(x) for x in lists}) != 1:
        return None, (f" (per-prompt rewards at {sum(have)} of {len(lists)} points, of "
                      f"{sorted({len(x) for x in lists if isinstance(x, list)})} prompts: not tested paired)")
    return [list(col) for col in zip(*lists)], ""


def reward_shapes(logs: dict, probes: dict | None = None) -> list[tuple[str, str, str, str, str]]:
    """Per run and reward (proxy, gold): ``(run, reward, points, shape, statement)``: the shape of
    :func:`harness.overoptimisation.reward_shape` of its (KL, reward) points (:func:`curve_points`: the probe's when
    there is one, with its standard errors; ``points`` names them), or why there is none."""
    from harness.overoptimisation import reward_shape
    from reports.ci_figures import num
    from reports.ppo_figures import REWARDS, kl_reward_points, kl_reward_rows

    out = []
    for run, (source, log) in curve_points(logs, probes).items():
        probe = source == "probe" and bool(log)
        if probe:
            first = log[0]
            source = f"probe of {first.get('prompts')} held-out prompts x {first.get('samples')} samples, {len(log)} points"
        else:
            source = f"per-iteration batch means, {len(log)} points"
        for key, label, _ in REWARDS:
            pts = kl_reward_points(log, key)
            if not pts:
                continue
            # a probe's points carry standard errors over prompts, a batch mean over its episodes (train logs from before
            # they were logged have none), and the shape's tests use them
            rows = kl_reward_rows(log, key)
            se = [num(row.get(key.removesuffix("_mean") + "_se")) for row in rows]
            per_prompt, note = paired_rewards(rows, key.removesuffix("_mean") + "_by_prompt") if probe else (None, "")
            if not all(e is not None and e > 0 for e in se):
                se, note = None, note + (" (the probe's points have no standard errors, e.g. a probe of one prompt: tested without them)"
                                  if probe else " (the train log has no standard errors of its batch means: tested without them)")
            try:
                s = reward_shape([k for k, _ in pts], [r for _, r in pts], se, per_prompt=per_prompt)
                out.append((run, label, source, s.shape, s.text + note))
            except ValueError as e:
                out.append((run, label, source, "—", f"not enough points: {e}"))
    return out


def ppo_section(data: RunData) -> Safe:
    """PPO training curves per step (``fig-ppo-curves``) and proxy / gold reward against KL
    (``fig-overoptimisation``) for the RL runs of ``run.json`` (:func:`rl_runs`) whose logs exist."""
    runs = rl_runs(data.run)
    logs = {r: data.logs[r] for r in runs if data.logs.get(r)}
    probes = {r: data.probes[r] for r in runs if data.probes.get(r)}
    if not logs:
        return na("PPO training logs")
    parts = [figure_div(figures.ppo_curves_figure(logs), "fig-ppo-curves"),
             tag("p", "Over-optimisation view (Gao et al. 2022): the proxy reward is the reward model PPO "
                      "optimises, the gold reward the held-out helpful judge it never sees. A gold curve that "
                      "falls while the proxy keeps rising with KL is reward over-optimisation. A run with a probe "
                      "(ppo.probe) is drawn from it: the same held-out prompts at every point, error bars 1.96 standard "
                      "errors over prompts; its per-iteration batch means (other prompts each time) are the faint markers.")]
    over = overoptimisation_figure(logs, probes)
    parts.append(figure_div(over, "fig-overoptimisation") if over.data else
                 na("reward / KL pairs in the PPO logs (over-optimisation view)"))
    shapes = reward_shapes(logs, probes)
    if shapes:
        parts.append(tag("p", "The shape of each curve, from its own points: Gao et al.'s form R(d) = d (α − β log d), "
                              "d = √KL, fitted by least squares (peaked: β > 0 significantly, the peak inside the run "
                              "and the best point interior), else the rank correlation with KL. Points with standard errors "
                              "(a probe's over its prompts, a batch mean's over its episodes) are weighed by them, the "
                              "initial reward R(0) is fitted rather than read off the first point, and rising or falling "
                              "also needs the weighted slope on d to be significant. A probe that recorded each prompt's reward is "
                              "tested paired instead: every prompt's own curve is fitted and each coefficient tested "
                              "over prompts (the probe's points share prompts and random numbers).", cls="meta"))
        parts.append(table(["RL run", "reward", "points", "shape", "statement"], shapes))
    described = [(r, d) for r, d in runs.items() if d]
    if described:
        parts.append(table(["RL run", "KL penalty β", "ptx coefficient γ (ptx_coef)", "PPO-ptx", "advantages"],
                           [(r, d.get("beta", "—"), d.get("ptx_coef", "—"), "yes" if d.get("ptx") else "no", advantages(d))
                            for r, d in described],
                           numeric=(1, 2)))
    missing = [r for r in runs if r not in logs]
    if missing:
        parts.append(note(f"training log not available in this run for: {', '.join(missing)}"))
    return join(parts)

"""Labeler-style win rate of a policy against a baseline, judged by held-out judges.

Paper section 4.1 / Figure 1: the share of prompts on which outputs of the policy are preferred
to the baseline's (GPT-3 / text-davinci-003 here). A reward-model judge (``eval.judges.reward_models``,
trained on human comparisons that neither the policy's RM nor its SFT data used) prefers the output
with the higher reward, ties (|delta r| <= tie_margin) count 0.5; ``win_prob`` is the Bradley-Terry
probability sigmoid(r_policy - r_baseline) averaged over prompts, the judge's soft preference. An
OpenAI-compatible chat judge (``eval.judges.chat``) gives preferences directly
(:func:`preference_items`, no rewards). Besides the raw win rate, :func:`winrate_rows` reports the
AlpacaEval-2.0 length-controlled win rate (:mod:`harness.evals.length_controlled`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.declarations import EvalDef, Metric, row
from harness.evals.base import EvalOutput, EvalSpec
from harness.evals.length_controlled import _char_len, lc_win_rate_estimate
from harness.judging.pairwise import win_outcome
from harness.ranges import ranged
from harness.records import Generation, ResultRow
from harness.registry import register
from harness.stats import bootstrap_mean

EVAL = "winrate"


def winrate_items(policy: list[list[Generation]], baseline: list[list[Generation]], r_policy: list[list[float]],
                  r_baseline: list[list[float]], judge: str, tie_margin: float = 0.0) -> list[dict]:
    """Per-prompt records ``{policy, baseline, judge, prompt_id, instruction, output, baseline_output, reward,
    baseline_reward, win, win_prob}`` from a reward-model judge.

    ``policy`` / ``baseline``: ``[sample][prompt]`` generations (each inner list the same prompt ids in the same
    order); ``r_policy`` / ``r_baseline``: their rewards, the same shape. With one sample a side ``win`` is
    :func:`harness.judging.pairwise.win_outcome` (1, 0.5 within ``tie_margin``, 0) and ``win_prob`` the Bradley-Terry
    probability ``sigmoid(r_policy - r_baseline)``. With ``m`` policy and ``k`` baseline samples (``m * k > 1``) both
    are means over the prompt's ``m x k`` sample pairs (the two-sample U-statistic: the same expected win rate as one
    sample a side, with less variance), ``reward`` / ``baseline_reward`` the means of the samples' rewards, ``output`` /
    ``baseline_output`` sample 0's, and the record adds ``outputs``, ``baseline_outputs``, ``rewards``,
    ``baseline_rewards`` and ``pair_wins`` (policy sample ``s`` against baseline sample ``t`` at ``s * k + t``).
    Raises ``ValueError`` on misaligned prompt ids or shapes (never silently drop an item)."""
    _check_samples("winrate_items", policy, baseline)
    if [len(r) for r in r_policy] != [len(g) for g in policy] or [len(r) for r in r_baseline] != [len(g) for g in baseline]:
        raise ValueError("winrate_items: rewards and generations differ in shape")
    items = []
    for i, (g, b) in enumerate(zip(policy[0], baseline[0])):
        rp, rb = [r[i] for r in r_policy], [r[i] for r in r_baseline]
        wins = [win_outcome(x, y, tie_margin) for x in rp for y in rb]
        probs = [1.0 / (1.0 + math.exp(-(x - y))) for x in rp for y in rb]
        item = {"policy": g.policy, "baseline": b.policy, "prompt_id": g.prompt_id, "instruction": g.prompt,
                "output": g.output, "baseline_output": b.output, "reward": sum(rp) / len(rp),
                "baseline_reward": sum(rb) / len(rb), "win": sum(wins) / len(wins), "win_prob": sum(probs) / len(probs),
                "judge": judge}
        if len(wins) > 1:
            item.update(outputs=[s[i].output for s in policy], baseline_outputs=[s[i].output for s in baseline],
                        rewards=rp, baseline_rewards=rb, pair_wins=wins)
        items.append(item)
    return items


def _check_samples(where: str, policy: list[list[Generation]], baseline: list[list[Generation]]) -> None:
    """``ValueError`` unless both sides have samples and every sample list covers the policy's first one's prompts."""
    if not policy or not baseline:
        raise ValueError(f"{where}: no samples")
    ids = [g.prompt_id for g in policy[0]]
    if any([g.prompt_id for g in s] != ids for s in (*policy, *baseline)):
        raise ValueError(f"{where}: policy and baseline generations cover different prompts")


def preference_items(policy: list[list[Generation]], baseline: list[list[Generation]], preferences: Sequence[float],
                     judge: str) -> list[dict]:
    """Per-prompt records like :func:`winrate_items` from a judge that returns preferences directly
    (e.g. a chat judge), ``[sample][prompt]`` generations a side: ``preferences`` holds one preference for the
    policy in {0, 0.5, 1} per prompt and sample pair, prompt-major (prompt ``i``, policy sample ``s``, baseline
    sample ``t`` at ``(i * m + s) * k + t``; with one sample a side, one per prompt); ``win`` is their mean per prompt
    (with ``pair_wins``, ``outputs``, ``baseline_outputs`` when ``m * k > 1``); ``reward``, ``baseline_reward`` and
    ``win_prob`` are ``None``. Raises ``ValueError`` on misaligned prompt ids, a wrong number of preferences, or
    a preference outside {0, 0.5, 1}."""
    _check_samples("preference_items", policy, baseline)
    m, k, n = len(policy), len(baseline), len(policy[0])
    if len(preferences) != n * m * k:
        raise ValueError(f"preference_items: {len(preferences)} preferences for {n} prompts x {m} x {k} samples")
    items = []
    for i, (g, b) in enumerate(zip(policy[0], baseline[0])):
        raw = list(preferences[i * m * k:(i + 1) * m * k])
        for pref in raw:  # checked before float(): a stray string gets this message, not float's
            if pref not in (0.0, 0.5, 1.0):
                raise ValueError(f"preference_items: prompt_id={g.prompt_id} preference {pref!r} is not 0, 0.5 or 1")
        prefs = [float(x) for x in raw]
        item = {"policy": g.policy, "baseline": b.policy, "prompt_id": g.prompt_id, "instruction": g.prompt,
                "output": g.output, "baseline_output": b.output, "reward": None, "baseline_reward": None,
                "win": sum(prefs) / len(prefs), "win_prob": None, "judge": judge}
        if len(prefs) > 1:
            item.update(outputs=[s[i].output for s in policy], baseline_outputs=[s[i].output for s in baseline], pair_wins=prefs)
        items.append(item)
    return items


def winrate_rows(items: list[dict], n_resamples: int = 2000, seed: int = 0,
                 length_fn: Callable[[str], float] | None = None) -> list[ResultRow]:
    """Rows for one policy/baseline/judge, slice ``{baseline, judge}`` (from the first item; a missing
    judge is left out), each with a 95 % bootstrap interval over prompts: ``win_rate`` (mean of ``win``),
    ``win_prob`` (mean Bradley-Terry probability; only when every item has one, i.e. a reward-model
    judge) and ``lc_win_rate`` (:func:`harness.evals.length_controlled.lc_win_rate_estimate`, lengths by
    ``length_fn``, default characters). Raises ``ValueError`` on no items."""
    if not items:
        raise ValueError("winrate_rows: no items")
    policy, sl = items[0]["policy"], {"baseline": items[0]["baseline"], "judge": items[0].get("judge")}
    rows = [row(EVAL, policy, "win_rate", bootstrap_mean([it["win"] for it in items], n_resamples=n_resamples, seed=seed), **sl)]
    if all(it.get("win_prob") is not None for it in items):
        rows.append(row(EVAL, policy, "win_prob", bootstrap_mean([it["win_prob"] for it in items], n_resamples=n_resamples,
                                                                 seed=seed), **sl))
    rows.append(row(EVAL, policy, "lc_win_rate", lc_win_rate_estimate(items, n_resamples=n_resamples, seed=seed,
                                                                      length_fn=length_fn or _char_len), **sl))
    return rows


# ------------------------------------------------------------------------------ the winrate eval


@dataclass
class WinrateSpec(EvalSpec):
    """Labeler-style win rate against baselines (paper section 4.1, Fig. 1)."""

    # each policy is compared with each baseline it is not: a file baseline name (baseline_files), or a
    # policy name of the run (base, sft, ...); base_fewshot = the base model behind a few-shot prefix
    baselines: list[str] = field(default_factory=lambda: ["text-davinci-003", "base", "base_fewshot", "sft"])
    baseline_files: dict[str, str] = field(
        default_factory=lambda: {"text-davinci-003": "alpaca_eval/text_davinci_003_model_outputs.json"})
    fewshot_k: int = ranged(3, ge=0)  # demonstrations in the base_fewshot prefix (paper: "GPT-3 prompted")
    judges: list[str] = field(default_factory=lambda: ["helpful", "harmless"])  # eval.judges.reward_models names
    tie_margin: float = ranged(0.0, ge=0)  # |r_policy - r_baseline| <= margin counts as a tie (0.5)
    # answers per prompt from each policy of the run (file baselines have one): a prompt's win is the mean over its
    # sample pairs, which keeps the expected win rate and narrows its interval (most of its variance is between
    # samples of one prompt); generation and judging cost grow m-fold, the chat judge's calls m^2-fold
    samples_per_prompt: int = ranged(1, ge=1)


def _fewshot_template(ctx, k: int) -> str:
    """The base model's few-shot prefix (the paper's "GPT-3 prompted", section 3.5): ``k`` SFT
    demonstrations as Instruction/Response pairs, then ``{prompt}``. Braces in the demonstrations
    are escaped so the prefix is a valid ``str.format`` template."""
    from harness import selection

    demos, _, _ = selection.demonstrations(ctx.data_cfg)
    if len(demos) < k:
        raise ValueError(f"winrate.fewshot_k={k} but only {len(demos)} demonstrations are available")
    esc = lambda s: s.replace("{", "{{").replace("}", "}}")  # noqa: E731
    shots = "".join(f"Instruction: {esc(d.prompt)}\nResponse: {esc(d.completion)}\n\n" for d in demos[:k])
    return "Below are instructions, each followed by a response that completes it well.\n\n" + shots + \
        "Instruction: {prompt}\nResponse:"


def _common(policy: list[Generation], baseline: list[Generation]) -> tuple[list[int], list[int]]:
    """Indices into ``policy`` and ``baseline`` of the prompt ids both have, in the policy's order: all of them,
    unless an outputs file lacks some and ``eval.outputs_missing=warn`` let it through (warned with counts)."""
    where = {g.prompt_id: i for i, g in enumerate(baseline)}
    pairs = [(i, where[g.prompt_id]) for i, g in enumerate(policy) if g.prompt_id in where]
    return [i for i, _ in pairs], [j for _, j in pairs]


def run(ctx, spec: WinrateSpec) -> EvalOutput:
    """The winrate eval (``conf/evals/winrate.yaml``): each policy against each baseline, per judge.

    Prompts: ``spec.n`` AlpacaEval instructions (:func:`harness.selection.eval_prompts`). Each policy
    answers them ``spec.samples_per_prompt`` times (checkpoints through the generation cache, sample ``s`` seeded
    ``seed + 1000 s``, so sample 0 is the one-sample answer; outputs files by instruction, one record per sample).
    Baselines: file baselines (``spec.baseline_files``, default text-davinci-003: one output per prompt), policies of
    the run (``base``, ``sft``) and ``base_fewshot`` (the base model behind :func:`_fewshot_template`), the latter
    two with the policies' samples. Judges: every reward-model judge in ``spec.judges`` the panel has, and the chat
    judge when ``eval.judges.chat`` is enabled (one call per sample pair). Rows: ``win_rate``, ``win_prob``
    (reward-model judges) and ``lc_win_rate`` per (policy, baseline, judge), over prompts (:func:`winrate_items`:
    several samples a side give each prompt the mean over its sample pairs). The judges' validation comes from the
    panel (:mod:`harness.judging.validation`).
    """
    from harness import selection
    from harness.evals.policies import file_baseline

    out = EvalOutput()
    prompts, _ = selection.eval_prompts(ctx.data_cfg, n=spec.n)
    m = int(spec.samples_per_prompt)

    def sampled(name: str, tag: str, template: str) -> list[list[Generation]] | None:
        """``[sample][prompt]``; one sample goes through ``ctx.outputs`` (its generations file keeps its name)."""
        if m == 1:
            gens = ctx.outputs(name, prompts, spec.decoding, tag, template)
            return None if gens is None else [gens]
        return ctx.sampled_outputs(name, prompts, spec.decoding, tag, template, m)

    answers: dict[str, list[list[Generation]]] = {}
    skipped = []
    for name in ctx.policies:
        gens = sampled(name, "alpaca_eval", spec.prompt_template)
        if gens is None:
            skipped.append({"policy": name, "reason": "outputs file has none of the AlpacaEval prompts"})
        else:
            answers[name] = gens
    baselines: dict[str, list[list[Generation]]] = {}
    for b in spec.baselines:
        if b in spec.baseline_files:
            baselines[b] = [file_baseline(b, spec.baseline_files[b], ctx.data_dir, prompts)]
        elif b == "base_fewshot" and "base" in ctx.checkpoint_policies():
            gens = sampled("base", "alpaca_eval_fewshot", _fewshot_template(ctx, spec.fewshot_k))
            baselines[b] = [[dataclasses.replace(g, policy="base_fewshot") for g in s] for s in gens]
        elif b in answers:
            baselines[b] = answers[b]
        else:
            skipped.append({"baseline": b, "reason": "not a baseline file and not a policy of this run"})
    judges = [j for j in spec.judges if ctx.judges.has_reward_model(j)]
    skipped += [{"judge": j, "reason": "no such judge in eval.judges.reward_models"} for j in spec.judges if j not in judges]
    chat = ctx.judges.chat_pair_judge()
    if not judges and chat is None:
        raise ValueError(f"winrate: none of the judges {list(spec.judges)} is in eval.judges.reward_models "
                         f"({ctx.judges.reward_model_names()}) and the chat judge is off")
    rewards: dict[tuple[str, str], list[list[float]]] = {}  # [sample][prompt] per (judge, output set), against the original instruction

    def reward(judge: str, who: str, samples: list[list[Generation]]) -> list[list[float]]:
        if (judge, who) not in rewards:  # every judge at once: judges sharing a frozen trunk run it once per text
            # prompt-major, so a prompt's samples sit together and the scorer runs their shared prompt once
            flat = [(s, i) for i in range(len(samples[0])) for s in range(len(samples))]
            got = ctx.judges.rewards_of(judges, [samples[s][i].prompt for s, i in flat], [samples[s][i].output for s, i in flat])
            for j, r in got.items():
                per = [[0.0] * len(samples[0]) for _ in samples]
                for (s, i), v in zip(flat, r):
                    per[s][i] = v
                rewards[(j, who)] = per
        return rewards[(judge, who)]

    for policy, all_gens in answers.items():
        for b, all_bgens in baselines.items():
            if b == policy:
                continue
            pi, bi = _common(all_gens[0], all_bgens[0])
            gens, bgens = [[s[i] for i in pi] for s in all_gens], [[s[i] for i in bi] for s in all_bgens]
            for j in judges:
                rp, rb = reward(j, policy, all_gens), reward(j, f"baseline:{b}", all_bgens)
                items = winrate_items(gens, bgens, [[r[i] for i in pi] for r in rp], [[r[i] for i in bi] for r in rb], j,
                                      spec.tie_margin)
                out.items += items
                out.rows += winrate_rows(items, ctx.resamples, ctx.seed)
            if chat is not None:  # every sample pair of a prompt, prompt-major (preference_items' order)
                flat = [(i, s, t) for i in range(len(gens[0])) for s in range(len(gens)) for t in range(len(bgens))]
                single = len(flat) == len(gens[0])
                prefs = chat([gens[0][i].prompt for i, _, _ in flat], [gens[s][i].output for i, s, _ in flat],
                             [bgens[t][i].output for i, _, t in flat],
                             [gens[0][i].prompt_id if single else f"{gens[0][i].prompt_id}/{s}/{t}" for i, s, t in flat])
                items = preference_items(gens, bgens, prefs, chat.name)
                out.items += items
                out.rows += winrate_rows(items, ctx.resamples, ctx.seed)
    out.info.update(skipped=skipped, baselines=list(baselines), judges=judges + ([chat.name] if chat else []),
                    n_prompts=len(prompts), samples_per_prompt=m)
    return out


METRICS = (
    Metric("win_rate", "fraction", True, "win", ("baseline", "judge"), label="win rate (raw)",
           description="share of prompts on which the judge prefers the policy's output (tie = 0.5); with several "
                       "samples a side, each prompt counts the share of its sample pairs"),
    Metric("win_prob", "fraction", True, "win_prob", ("baseline", "judge"), label="mean Bradley-Terry win probability",
           description="mean over prompts (and sample pairs) of sigmoid(r_policy - r_baseline); reward-model judges only"),
    Metric("lc_win_rate", "fraction", True, None, ("baseline", "judge"), tolerance=0.1, label="length-controlled win rate",
           description="AlpacaEval 2.0 GLM win rate with the length difference set to 0 (a fit, not a mean over items)"),
)


def unmeasured(ctx, spec: WinrateSpec) -> dict[str, str]:
    """The run's policies that get no win-rate row: those that are every baseline there is (a policy is never
    compared with itself), by name with the reason."""
    return {p: f"winrate: its only baseline is itself (evals.winrate.baselines={list(spec.baselines)}); add another, "
               f"e.g. base" for p in ctx.policies if set(spec.baselines) <= {p}}


WINRATE = register(EvalDef(EVAL, METRICS, ("prompt_id",), WinrateSpec, run, title="Win rate against each baseline",
                           paper="section 4.1, Fig. 1", unmeasured=unmeasured))


if __name__ == "__main__":  # python -m harness.evals.winrate [data_dir]: GPT-4's davinci-001 vs -003 verdicts as win rates
    import os
    import sys

    from harness.judging.agreement import gpt4_annotations_path, load_gpt4_annotations

    data = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HARNESS_DATA_DIR")
    # policy text-davinci-001 (output_2) vs baseline -003 (output_1); the null verdict is left out (and counted)
    pairs = load_gpt4_annotations(gpt4_annotations_path(data))
    items = [{"policy": "text_davinci_001", "baseline": "text_davinci_003", "judge": "alpaca_eval_gpt4", "prompt_id": p.id,
              "output": p.output_2, "baseline_output": p.output_1, "win": 1.0 - p.preference}
             for p in pairs if p.preference is not None]
    print(f"{len(pairs) - len(items)} of {len(pairs)} pairs without a verdict left out")
    for r in winrate_rows(items):
        print(f"{r.metric:12s} {r.value:.3f}  [{r.ci_low:.3f}, {r.ci_high:.3f}]  n={r.n}")

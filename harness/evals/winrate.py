"""Labeler-style win rate of a policy against a baseline, judged by a held-out reward model.

Paper section 4.1 / Figure 1: the share of prompts on which outputs of the policy are preferred
to the baseline's (GPT-3 / text-davinci-003 here). The judge is a reward model trained on human
comparisons that neither the policy's RM nor its SFT data used; it prefers the output with the
higher reward, ties (|delta r| <= tie_margin) count 0.5. ``win_prob`` is the Bradley-Terry
probability sigmoid(r_policy - r_baseline) averaged over prompts, the judge's soft preference.
"""

from __future__ import annotations

import math

import torch

from harness.models import last_token_index, token_scores
from harness.prompting import encode_pair, pad
from harness.records import Generation, ResultRow
from harness.stats import bootstrap_mean


@torch.no_grad()
def judge_rewards(judge, tokenizer, prompts: list[str], outputs: list[str], *, max_length: int = 512,
                  max_prompt_length: int = 256, batch_size: int = 8, chat_template: str = "auto") -> list[float]:
    """r_judge(x, y) for aligned prompts and outputs (reward units); long outputs are cut at ``max_length``."""
    if len(prompts) != len(outputs):
        raise ValueError(f"judge_rewards: {len(prompts)} prompts vs {len(outputs)} outputs")
    judge.eval()
    dev = next(judge.parameters()).device
    rewards: list[float] = []
    for i in range(0, len(prompts), batch_size):
        enc = [encode_pair(p, o or " ", tokenizer, max_length, max_prompt_length, chat_template).input_ids
               for p, o in zip(prompts[i : i + batch_size], outputs[i : i + batch_size])]
        ids, attn = pad(enc, tokenizer.pad_token_id)
        scores = token_scores(judge, ids.to(dev), attn.to(dev))
        rewards += scores[torch.arange(len(enc), device=dev), last_token_index(attn.to(dev))].tolist()
    return rewards


def win_outcome(r_policy: float, r_baseline: float, tie_margin: float = 0.0) -> float:
    """1 if the judge prefers the policy, 0 if the baseline, 0.5 for a tie (|delta| <= margin)."""
    d = r_policy - r_baseline
    return 0.5 if abs(d) <= tie_margin else (1.0 if d > 0 else 0.0)


def winrate_items(policy: list[Generation], baseline: list[Generation], r_policy: list[float], r_baseline: list[float],
                  tie_margin: float = 0.0) -> list[dict]:
    """Per-prompt records ``{policy, baseline, prompt_id, instruction, output, baseline_output, reward,
    baseline_reward, win, win_prob}``. ``policy`` and ``baseline`` must cover the same prompt ids in
    the same order; raises ``ValueError`` otherwise (never silently drop an item)."""
    if [g.prompt_id for g in policy] != [g.prompt_id for g in baseline]:
        raise ValueError("winrate_items: policy and baseline generations cover different prompts")
    items = []
    for g, b, rp, rb in zip(policy, baseline, r_policy, r_baseline):
        items.append({
            "policy": g.policy, "baseline": b.policy, "prompt_id": g.prompt_id, "instruction": g.prompt,
            "output": g.output, "baseline_output": b.output, "reward": rp, "baseline_reward": rb,
            "win": win_outcome(rp, rb, tie_margin), "win_prob": 1.0 / (1.0 + math.exp(-(rp - rb))),
        })
    return items


def winrate_rows(items: list[dict], run_id: str, config_hash: str = "", n_resamples: int = 2000, seed: int = 0) -> list[ResultRow]:
    """``win_rate`` and ``win_prob`` rows with 95 % bootstrap intervals over prompts, for one policy/baseline pair."""
    if not items:
        raise ValueError("winrate_rows: no items")
    rows = []
    for metric, key in (("win_rate", "win"), ("win_prob", "win_prob")):
        est = bootstrap_mean([it[key] for it in items], n_resamples=n_resamples, seed=seed)
        rows.append(ResultRow(run_id, items[0]["policy"], "winrate", metric, est.value, est.ci_low, est.ci_high, est.n,
                              items[0]["baseline"], config_hash))
    return rows

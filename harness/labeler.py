"""The simulated labeler (``harness-label``): a judge ranks K policy samples per prompt into Comparisons.

DESIGN.md section 5. InstructGPT's labelers ranked K = 4..9 outputs per prompt (paper section 3.5,
"RM"); here a *judge* stands in for them:

1. each prompt gets K completions sampled from a policy (K fixed, or drawn per prompt from
   ``[k_min, k_max]``), in batches, seeded;
2. the judge scores every completion (default: a gold reward model trained on human comparisons;
   any object with the small :class:`Judge` interface works, like the PPO scorers of
   :mod:`trainers.rewards`);
3. completions are ranked best first by score. Equal scores become ties (``Comparison.tied``); a
   prompt whose completions all tie carries no preference and is dropped (and counted);
4. optionally the ranking is made noisy so that it agrees with the noise-free judge ranking on a
   chosen share of pairs, e.g. the paper's 72.6 % agreement between training labelers
   (section 3.4), i.e. ``noise_rate`` = 0.274.

Noise model. Each distinct score level s_g of a prompt gets an independent Gumbel draw, and the
levels are ordered by ``s_g + tau * G_g``. Ranking by score plus Gumbel noise samples the
Plackett-Luce model with scores s / tau (Luce 1959; the Gumbel-max construction, Yellott 1977), the
K-wise generalisation of the Bradley-Terry model that eq. 1's loss fits, so the result is always a
valid (transitive) ranking, and tied completions share a draw and stay tied. A pair with score gap
d > 0 is flipped with probability sigmoid(-d / tau), since the difference of two Gumbel(0, 1) draws
is logistic. ``tau`` is calibrated by bisection so that the mean of sigmoid(-d / tau) over all
untied pairs of the data set equals ``noise_rate``: the *expected* share of discordant pairs is
exactly the target; the *measured* agreement is recorded beside it.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from harness.devices import CPU, Placement
from harness.records import Comparison, Prompt

K_RANGE = (2, 9)  # the K this labeler produces (the paper's labelers ranked 4..9)


@runtime_checkable
class Judge(Protocol):
    """Scores completions: the ranking signal of the simulated labeler.

    ``score(prompts, completions)`` takes aligned lists (one prompt per completion) and returns one
    float per completion, higher = better (reward units for a reward model). ``name`` goes into each
    record's ``source`` (``simulated:<name>``); ``fingerprint`` identifies the judge in ``run.json``.
    """

    name: str
    fingerprint: str

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]: ...


class WordCountJudge:
    """A synthetic judge for tests: the number of whitespace-separated words of the completion.

    Cheap, deterministic and often tied (integer scores), so ties and the noise calibration can be
    checked against a judge whose scores a test recomputes exactly.
    """

    name = "word_count"
    fingerprint = hashlib.sha256(b"harness.labeler.WordCountJudge").hexdigest()

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """Words per completion (float); raises ``ValueError`` if the lists differ in length."""
        if len(prompts) != len(completions):
            raise ValueError(f"WordCountJudge: {len(prompts)} prompts vs {len(completions)} completions")
        return [float(len(c.split())) for c in completions]


def make_judge(cfg, chat_template: str = "auto", placement: Placement = CPU) -> Judge:
    """The judge a :class:`harness.config.JudgeConfig` names; a reward model goes to ``placement``
    (:mod:`harness.devices`). Raises ``ValueError`` for an unknown ``kind`` or a ``reward_model`` judge without ``path``."""
    if cfg.kind == "reward_model":
        if not cfg.path:
            raise ValueError("judge.kind=reward_model needs judge.path (a reward-model checkpoint folder)")
        from harness.judging.reward_model import RewardModelJudge

        return RewardModelJudge(cfg.path, name=cfg.name, chat_template=chat_template, batch_size=cfg.batch_size,
                                max_length=cfg.max_length, max_prompt_length=cfg.max_prompt_length, progress=True,
                                device=placement.device, dtype=placement.dtype)
    if cfg.kind == "word_count":
        judge = WordCountJudge()
        if cfg.name:
            judge.name = cfg.name
        return judge
    raise ValueError(f"judge.kind must be reward_model or word_count, got {cfg.kind!r}")


# ------------------------------------------------------------------------------ ranking math (pure)


def rank_with_ties(scores: Sequence[float]) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Best-first ranking of completion indices by score, and the ``tied`` flags of :class:`Comparison`.

    Equal scores (exact float equality) are tied; within a tie group indices keep ascending order.
    ``scores`` has length K; returns ``(ranking [K], tied [K-1])``. Raises ``ValueError`` on a
    non-finite score.
    """
    if not all(math.isfinite(s) for s in scores):
        raise ValueError(f"rank_with_ties: non-finite judge score in {list(scores)}")
    ranking = tuple(sorted(range(len(scores)), key=lambda i: (-scores[i], i)))
    tied = tuple(scores[a] == scores[b] for a, b in zip(ranking, ranking[1:]))
    return ranking, tied


def untied_gaps(scores: Sequence[float]) -> np.ndarray:
    """``|s_i - s_j|`` for every pair i < j with unequal scores: ``[n_pairs]`` (score units)."""
    s = np.asarray(scores, dtype=float)
    i, j = np.triu_indices(len(s), k=1)
    d = np.abs(s[i] - s[j])
    return d[d > 0]


def expected_discordance(gaps: np.ndarray, scale: float) -> float:
    """Mean over pairs of P(flip) = sigmoid(-d / scale): the expected share of pairs that noise of
    Gumbel scale ``scale`` puts in the wrong order (see the module docstring). 0 for ``scale`` = 0
    or no pairs."""
    gaps = np.asarray(gaps, dtype=float)
    if scale <= 0 or gaps.size == 0:
        return 0.0
    return float(np.mean(1.0 / (1.0 + np.exp(np.minimum(gaps / scale, 700.0)))))


def calibrate_noise_scale(gaps: np.ndarray, noise_rate: float, rel_tol: float = 1e-10) -> float:
    """The Gumbel scale tau whose :func:`expected_discordance` over ``gaps`` equals ``noise_rate``.

    Bisection on log tau (the expected discordance rises monotonically from 0 at tau -> 0 to 1/2 at
    tau -> inf). Returns 0 for ``noise_rate`` = 0 or no untied pairs. Raises ``ValueError`` unless
    0 <= noise_rate < 0.5 (at 0.5 the ranking would carry no information).
    """
    if not 0.0 <= noise_rate < 0.5:
        raise ValueError(f"noise_rate must be in [0, 0.5), got {noise_rate}")
    gaps = np.asarray(gaps, dtype=float)
    if noise_rate == 0.0 or gaps.size == 0:
        return 0.0
    lo = hi = float(np.median(gaps))
    while expected_discordance(gaps, lo) > noise_rate:
        lo /= 2.0
    while expected_discordance(gaps, hi) < noise_rate:
        hi *= 2.0
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if expected_discordance(gaps, mid) < noise_rate:
            lo = mid
        else:
            hi = mid
        if hi - lo <= rel_tol * hi:
            break
    return math.sqrt(lo * hi)


def noisy_rank(scores: Sequence[float], scale: float, rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """A Plackett-Luce ranking: score levels ordered by ``s_g + scale * Gumbel``, tied scores kept tied.

    Each distinct score gets one Gumbel(0, 1) draw, so completions with equal scores move together
    and stay tied; ``scale`` = 0 gives :func:`rank_with_ties`. Returns ``(ranking [K], tied [K-1])``.
    """
    if scale <= 0:
        return rank_with_ties(scores)
    levels = sorted(set(scores), reverse=True)
    noise = rng.gumbel(size=len(levels))
    order = sorted(range(len(levels)), key=lambda g: -(levels[g] + scale * noise[g]))
    ranking: list[int] = []
    tied: list[bool] = []
    for g in order:
        members = [i for i, s in enumerate(scores) if s == levels[g]]
        if ranking:
            tied.append(False)
        ranking += members
        tied += [True] * (len(members) - 1)
    return tuple(ranking), tuple(tied)


def agreement_counts(scores: Sequence[float], ranking: Sequence[int]) -> tuple[int, int]:
    """``(concordant, pairs)``: of the pairs with unequal ``scores``, how many ``ranking`` (best first)
    orders the same way as the scores. The agreement of a noisy ranking with the noise-free judge."""
    pos = {idx: p for p, idx in enumerate(ranking)}
    concordant = pairs = 0
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            if scores[i] == scores[j]:
                continue
            pairs += 1
            concordant += (scores[i] > scores[j]) == (pos[i] < pos[j])
    return concordant, pairs


def sample_ks(n: int, k_min: int, k_max: int, seed: int) -> list[int]:
    """K per prompt, uniform on ``[k_min, k_max]`` (seeded). Raises ``ValueError`` unless
    2 <= k_min <= k_max <= 9."""
    lo, hi = K_RANGE
    if not lo <= k_min <= k_max <= hi:
        raise ValueError(f"label.k_min/k_max must satisfy {lo} <= k_min <= k_max <= {hi}, got {k_min}, {k_max}")
    rng = random.Random(seed)
    return [rng.randint(k_min, k_max) for _ in range(n)]


@dataclass
class LabelResult:
    """Comparisons a simulated labeler wrote, each record's judge scores (by completion index), and stats."""

    comparisons: list[Comparison]
    scores: list[dict] = field(default_factory=list)  # {"id", "scores": [K floats]} per comparison
    metrics: dict = field(default_factory=dict)


def rank_completions(prompts: Sequence[Prompt], completions: Sequence[Sequence[str]], scores: Sequence[Sequence[float]],
                     noise_rate: float, seed: int, source: str) -> LabelResult:
    """Turn judge scores into Comparison records (the labeler's ranking step, no model involved).

    ``completions[i]`` and ``scores[i]`` hold prompt i's K_i completions and their judge scores.
    The noise scale is calibrated on the untied pairs of all prompts (:func:`calibrate_noise_scale`),
    then each prompt is ranked by :func:`noisy_rank` with a ``numpy`` generator seeded by ``seed``.
    Prompts whose completions all tie are dropped and counted. Record ids are
    ``simulated/<prompt id>``. Metrics: ``n_prompts``, ``n_comparisons``, ``n_dropped_all_tied``,
    ``k_distribution`` (K -> comparisons), ``n_pairs`` (untied), ``n_tied_pairs``, ``noise_rate``,
    ``noise_scale`` (tau, score units), ``expected_agreement`` (1 - noise_rate), ``measured_agreement``
    (share of untied pairs ordered as the noise-free judge orders them; NaN with no pairs),
    ``agreement_pairs``. Raises ``ValueError`` on mismatched lengths or a bad ``noise_rate``.
    """
    if not (len(prompts) == len(completions) == len(scores)):
        raise ValueError(f"rank_completions: {len(prompts)} prompts, {len(completions)} completion lists, {len(scores)} score lists")
    for p, c, s in zip(prompts, completions, scores):
        if len(c) != len(s):
            raise ValueError(f"rank_completions: prompt {p.id} has {len(c)} completions but {len(s)} scores")
    gaps = np.concatenate([untied_gaps(s) for s in scores]) if scores else np.zeros(0)
    scale = calibrate_noise_scale(gaps, noise_rate)
    rng = np.random.default_rng(seed)
    out, rows = [], []
    dropped = concordant = pairs = tied_pairs = 0
    k_dist: dict[int, int] = {}
    for p, comps, s in zip(prompts, completions, scores):
        s = [float(x) for x in s]
        if len(set(s)) == 1:
            dropped += 1
            continue
        ranking, tied = noisy_rank(s, scale, rng)
        c = Comparison(f"simulated/{p.id}", p.prompt, tuple(comps), ranking, source, tied)
        agree, n = agreement_counts(s, ranking)
        concordant, pairs = concordant + agree, pairs + n
        tied_pairs += c.k * (c.k - 1) // 2 - c.n_pairs
        k_dist[c.k] = k_dist.get(c.k, 0) + 1
        out.append(c)
        rows.append({"id": c.id, "scores": s})
    metrics = {
        "n_prompts": len(prompts), "n_comparisons": len(out), "n_dropped_all_tied": dropped,
        "k_distribution": dict(sorted(k_dist.items())), "n_pairs": pairs, "n_tied_pairs": tied_pairs,
        "noise_rate": noise_rate, "noise_scale": scale, "expected_agreement": 1.0 - noise_rate,
        "measured_agreement": concordant / pairs if pairs else float("nan"), "agreement_pairs": pairs,
    }
    return LabelResult(out, rows, metrics)


def simulate_labels(policy, tokenizer, prompts: Sequence[Prompt], judge: Judge, cfg, *, chat_template: str = "auto",
                    seed: int = 0, policy_name: str = "policy", model_hash: str = "") -> LabelResult:
    """Sample K completions per prompt from ``policy``, have ``judge`` score them, rank them into Comparisons.

    ``cfg`` is a :class:`harness.config.LabelConfig`. K per prompt comes from :func:`sample_ks`
    (``seed``); sampling is batched (``cfg.batch_size`` sequences per call) at ``cfg.temperature``
    and ``cfg.top_p`` through :func:`harness.generation.generate`, seeded per batch; ranking is
    :func:`rank_completions` with source ``simulated:<judge.name>``. The metrics also hold the
    decoding parameters and the judge's name and fingerprint.
    """
    from harness.generation import generate

    if not prompts:
        raise ValueError("simulate_labels: no prompts")
    ks = sample_ks(len(prompts), cfg.k_min, cfg.k_max, seed)
    flat = [Prompt(f"{p.id}#{j}", p.prompt, p.source) for p, k in zip(prompts, ks) for j in range(k)]
    decoding = {"max_new_tokens": cfg.max_new_tokens, "do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p}
    gens = generate(policy, tokenizer, flat, policy_name, decoding, batch_size=cfg.batch_size,
                    max_prompt_length=cfg.max_prompt_length, chat_template=chat_template, seed=seed, model_hash=model_hash)
    flat_scores = judge.score([g.prompt for g in gens], [g.output for g in gens])
    if len(flat_scores) != len(gens):
        raise ValueError(f"judge {judge.name} returned {len(flat_scores)} scores for {len(gens)} completions")
    completions, scores, pos = [], [], 0
    for k in ks:
        completions.append([g.output for g in gens[pos : pos + k]])
        scores.append(flat_scores[pos : pos + k])
        pos += k
    result = rank_completions(prompts, completions, scores, cfg.noise_rate, seed, f"simulated:{judge.name}")
    result.metrics.update({"k_sampled": dict(sorted({k: ks.count(k) for k in set(ks)}.items())), "n_samples": len(gens),
                           "decoding": decoding, "judge": judge.name, "judge_fingerprint": judge.fingerprint})
    return result

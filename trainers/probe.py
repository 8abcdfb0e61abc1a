"""PPO's probe: proxy and gold reward over KL on one fixed set of held-out prompts (``ppo.probe``).

Gao et al. 2022 (arXiv 2210.10760, section 2) plot each policy's gold and proxy reward, measured on one held-out
prompt set, against its KL from the initial policy. The per-iteration batch means in the train log are a noisy
stand-in: each batch has other prompts, and the spread of rewards between prompts is as large as PPO's whole
movement in a short run. The probe rolls the policy out on the same ``prompts x samples`` episodes' prompts before
training and every ``ppo.probe.every`` iterations (and after the last), with the rollout PPO trains on
(:meth:`trainers.ppo.PPOTrainer.rollout`: same sampling temperature, rewards read at EOS, KL to the reference
policy), but nothing is trained on it, and with the same random numbers at every probe, apart from training's
(:func:`run_probe`). Each point averages each prompt's samples first, so its standard errors are
over prompts, the unit that was sampled. Under ``accelerate launch`` every process runs the whole probe (the
models' forwards are collective) and the main process's numbers are kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from harness.records import Prompt
from trainers import losses as L


@dataclass(frozen=True)
class ProbePoint:
    """One probe of the policy after ``step`` PPO iterations (0: the initial policy) and ``episodes`` training
    episodes. ``kl``: mean over prompts of the episodes' summed log-ratio ``log pi(y_t) - log pi_ref(y_t)`` (nats
    per episode; the train log's ``kl`` estimator); ``reward_mean``/``gold_reward_mean``: mean proxy / gold reward
    (reward-model units; gold None without a gold reward); ``*_se``: their standard errors over prompts (NaN for one
    prompt); ``prompts``, ``samples``: the probe's size; ``seconds``: its wall time; ``reward_by_prompt`` /
    ``gold_reward_by_prompt``: each prompt's mean proxy / gold reward in the probe's prompt order (the same prompts at
    every point, so a curve's shape can be tested paired over prompts: :func:`harness.overoptimisation.reward_shape`;
    None in a point from before they were recorded)."""

    step: int
    episodes: int
    kl: float
    kl_se: float
    reward_mean: float
    reward_se: float
    gold_reward_mean: float | None
    gold_reward_se: float | None
    prompts: int
    samples: int
    seconds: float
    reward_by_prompt: list[float] | None = None
    gold_reward_by_prompt: list[float] | None = None

    def record(self) -> dict:
        """The point as one JSON-able dict (a line of ``probe_log.jsonl``)."""
        return asdict(self)


def prompt_means(values: torch.Tensor, samples: int) -> torch.Tensor:
    """Per-prompt means ``[n]`` of per-episode ``values [n * samples]`` laid out prompt by prompt (each prompt's
    ``samples`` episodes adjacent, as :func:`probe_episodes` orders them). Raises ``ValueError`` when the length is
    not a multiple of ``samples``."""
    if values.ndim != 1 or values.numel() % samples:
        raise ValueError(f"prompt_means: {tuple(values.shape)} episodes are not whole groups of {samples} samples")
    return values.float().reshape(-1, samples).mean(1)


def mean_and_se(per_prompt: torch.Tensor) -> tuple[float, float]:
    """``(mean, standard error)`` of ``per_prompt [n]``: ``std(ddof=1) / sqrt(n)``; the error is NaN when ``n`` = 1."""
    n = per_prompt.numel()
    se = float(per_prompt.std(correction=1)) / math.sqrt(n) if n > 1 else math.nan
    return float(per_prompt.mean()), se


def probe_episodes(prompts: list[Prompt], samples: int) -> list[Prompt]:
    """The probe's episodes: each prompt ``samples`` times, adjacent (``[p0, p0, p1, p1, ...]`` for 2 samples)."""
    return [p for p in prompts for _ in range(samples)]


def summarise(kl: torch.Tensor, reward: torch.Tensor, gold: torch.Tensor | None, samples: int, **meta) -> ProbePoint:
    """A :class:`ProbePoint` from per-episode ``kl``, proxy ``reward`` and optional ``gold`` reward, each ``[n * samples]``
    in :func:`probe_episodes` order; ``meta``: ``step``, ``episodes``, ``seconds``."""
    rp = prompt_means(reward, samples)
    gp = prompt_means(gold, samples) if gold is not None else None
    k, r = mean_and_se(prompt_means(kl, samples)), mean_and_se(rp)
    g = mean_and_se(gp) if gp is not None else (None, None)
    return ProbePoint(kl=k[0], kl_se=k[1], reward_mean=r[0], reward_se=r[1], gold_reward_mean=g[0], gold_reward_se=g[1],
                      prompts=kl.numel() // samples, samples=samples, reward_by_prompt=rp.tolist(),
                      gold_reward_by_prompt=gp.tolist() if gp is not None else None, **meta)


def run_probe(trainer, prompts: list[Prompt], samples: int, step: int, episodes: int, seed: int = 0) -> ProbePoint:
    """Roll ``trainer``'s current policy (a :class:`trainers.ppo.PPOTrainer`) out on ``prompts``, ``samples`` episodes
    each, without training on them, and summarise proxy reward, gold reward and KL (:func:`summarise`).

    Sampling draws from torch's generator seeded ``seed`` inside :func:`torch.random.fork_rng`: every probe of a run uses
    the same random numbers (common random numbers: a policy that changed little samples mostly the same tokens, so
    the differences between probes are mostly the policy's), and the training's random stream is restored after it,
    so a run with a probe trains exactly as one without."""
    t0 = time.perf_counter()
    dev = trainer.accelerator.device
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        ro = trainer.rollout(probe_episodes(prompts, samples), update=False)
    _, kl = L.kl_penalized_rewards(ro.raw_scores, ro.logprobs, ro.ref_logprobs, ro.mask, 0.0)
    return summarise(kl.sum(-1), ro.raw_scores, ro.gold_scores, samples, step=step, episodes=episodes,
                     seconds=time.perf_counter() - t0)

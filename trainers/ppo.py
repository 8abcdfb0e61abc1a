"""Stage 3, PPO and PPO-ptx (paper section 3.5 "RL", eq. 2; appendix C.4).

Roles, explicit as in trl's PPOTrainer:
- ``policy`` (trained) and ``ref_policy`` (frozen copy of the SFT model: the KL anchor pi_SFT);
- ``reward_model`` (frozen RM: r_theta(x, y) at the last response token);
- ``value_model`` (trained, initialised from the RM as in the paper).

One iteration: sample a batch of prompts, generate responses (KV cache, temperature sampling),
score them, shape per-token rewards with the KL penalty (beta), compute GAE advantages, then
``ppo_epochs`` passes of clipped policy and value updates over minibatches. With ``gamma`` > 0
every minibatch also takes ``gamma * lm_loss`` on a pretraining batch (PPO-ptx); with
``gamma == 0`` no pretraining forward runs at all.
"""

from __future__ import annotations

import inspect
import itertools
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from harness.config import PPOConfig
from harness.io import append_jsonl
from harness.models import position_ids, token_scores
from harness.prompting import encode_prompts, pad
from harness.records import PretrainText, Prompt
from trainers import losses as L
from trainers.common import adamw, save_checkpoint, seed_everything
from trainers.kl_control import make_kl_controller
from trainers.rewards import as_scorer


@dataclass
class Rollout:
    """A batch of episodes. ``sequences``/``attention_mask`` are ``[B, P + R]`` (prompt left-padded);
    the other tensors are ``[B, R]`` over response positions (``mask`` 1 up to and including EOS)."""

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    mask: torch.Tensor
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor  # [B] proxy reward (reward model), after the missing-EOS penalty
    raw_scores: torch.Tensor | None = None  # [B] proxy reward as scored
    gold_scores: torch.Tensor | None = None  # [B] gold reward, logged only
    rewards: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None


def response_mask(responses: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 on response tokens up to and including the first EOS, 0 after: ``[B, R]`` -> ``[B, R]``."""
    is_eos = (responses == eos_id).long()
    after_eos = (is_eos.cumsum(-1) - is_eos) > 0  # strictly after the first EOS
    return (~after_eos).long()


class PPOTrainer:
    """Optimises ``policy`` against ``reward_model`` with a KL penalty to ``ref_policy``."""

    def __init__(self, cfg: PPOConfig, policy, ref_policy, reward_model, value_model, tokenizer,
                 prompts: list[Prompt], pretrain: list[PretrainText] | None = None, chat_template: str = "auto", seed: int = 0,
                 gold_reward=None):
        """``reward_model`` (the proxy) and the optional ``gold_reward`` are reward models or scorers
        (:mod:`trainers.rewards`); the gold reward is only logged, never optimised."""
        if not prompts:
            raise ValueError("PPOTrainer: no prompts")
        if cfg.gamma > 0 and not pretrain:
            raise ValueError("PPOTrainer: gamma > 0 (PPO-ptx) needs pretraining texts")
        if cfg.batch_size % cfg.mini_batch_size:
            raise ValueError(f"PPOTrainer: batch_size {cfg.batch_size} is not a multiple of mini_batch_size {cfg.mini_batch_size}")
        self.cfg, self.tokenizer, self.seed = cfg, tokenizer, seed
        self.accelerator = Accelerator(mixed_precision=cfg.mixed_precision)
        seed_everything(seed)
        ref_policy.eval().requires_grad_(False)
        opt = adamw([
            {"params": [p for p in policy.parameters() if p.requires_grad], "lr": cfg.lr},
            {"params": [p for p in value_model.parameters() if p.requires_grad], "lr": cfg.value_lr},
        ])
        # Both policies are the same class; ask once whether the LM head can skip the prompt positions.
        self._head_skips_prompt = "logits_to_keep" in inspect.signature(type(policy).forward).parameters
        self.policy, self.value_model, self.opt = self.accelerator.prepare(policy, value_model, opt)
        self.ref_policy = ref_policy.to(self.accelerator.device)
        self.reward = as_scorer(reward_model).to(self.accelerator.device)
        self.gold_reward = as_scorer(gold_reward).to(self.accelerator.device) if gold_reward is not None else None
        self.kl_ctl = make_kl_controller(cfg.kl_control, cfg.beta, cfg.kl_target, cfg.kl_horizon)
        rng = random.Random(seed)
        order = list(prompts)
        rng.shuffle(order)
        self._prompts = itertools.cycle(order)
        self._prompt_ids = dict(zip([p.id for p in order], encode_prompts([p.prompt for p in order], tokenizer, cfg.max_prompt_length, chat_template)))
        self._pretrain = self._pretrain_batches(pretrain, rng) if cfg.gamma > 0 else None
        self.ptx_forwards = 0  # counted, so a test can show gamma=0 runs none

    # ------------------------------------------------------------------ data
    def _pretrain_batches(self, texts: list[PretrainText], rng: random.Random):
        """Endless batches of pretraining token ids ``[b, ptx_max_length]`` (right-padded)."""
        seqs = [ids[: self.cfg.ptx_max_length] for ids in self.tokenizer([t.text for t in texts], add_special_tokens=False)["input_ids"] if len(ids) > 1]
        while True:
            rng.shuffle(seqs)
            for i in range(0, len(seqs) - self.cfg.ptx_batch_size + 1, self.cfg.ptx_batch_size):
                yield pad(seqs[i : i + self.cfg.ptx_batch_size], self.tokenizer.pad_token_id)

    # --------------------------------------------------------------- forward
    def _logprobs(self, model, seq: torch.Tensor, attn: torch.Tensor, prompt_len: int, with_entropy: bool = False):
        """Log-probs ``[B, R]`` of the response tokens (under temperature-scaled logits) and optionally entropy.

        Response token t is predicted by the logits at position t - 1, so only positions
        P - 1 .. P + R - 2 go through the LM head (``logits_to_keep``). Skipping the prompt matters:
        with a 50k vocabulary the head is as large a matmul as all the blocks of a small model,
        prompts are often longer than responses, and no vocabulary-sized tensor is sliced in
        backward. Dividing by a temperature of exactly 1 is skipped (it changes no value).
        """
        wanted = torch.arange(prompt_len - 1, seq.shape[1] - 1, device=seq.device)
        extra = {"logits_to_keep": wanted} if self._head_skips_prompt else {}
        logits = model(input_ids=seq, attention_mask=attn, position_ids=position_ids(attn), **extra).logits
        if not self._head_skips_prompt:
            logits = logits[:, wanted]
        logits = logits.float()
        if self.cfg.temperature != 1.0:
            logits = logits / self.cfg.temperature
        if with_entropy:
            return L.token_logprobs_and_entropy(logits, seq[:, prompt_len:])
        return L.selective_logprobs(logits, seq[:, prompt_len:])

    def _values(self, seq: torch.Tensor, attn: torch.Tensor, prompt_len: int) -> torch.Tensor:
        """V(s_t) for each response token: the value head at the position before it, ``[B, R]``."""
        return token_scores(self.value_model, seq, attn)[:, prompt_len - 1 : -1]

    @torch.no_grad()
    def rollout(self, prompts: list[Prompt]) -> Rollout:
        """Generate one response per prompt and score it; returns the episodes (no advantages yet)."""
        dev = self.accelerator.device
        prompt_ids, prompt_attn = pad([self._prompt_ids[p.id] for p in prompts], self.tokenizer.pad_token_id, side="left")
        prompt_ids, prompt_attn = prompt_ids.to(dev), prompt_attn.to(dev)
        policy = self.accelerator.unwrap_model(self.policy)
        policy.eval()
        # Under mixed precision the prepared policy autocasts each forward, and torch drops its cache
        # of weight casts when the outermost autocast region ends: one region around the whole
        # generate call casts each weight once per rollout instead of once per sampled token.
        with self.accelerator.autocast():
            seq = policy.generate(
                input_ids=prompt_ids, attention_mask=prompt_attn, do_sample=True, temperature=self.cfg.temperature,
                top_k=0, top_p=1.0, max_new_tokens=self.cfg.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id, use_cache=True,
            )
        policy.train()
        P = prompt_ids.shape[1]
        mask = response_mask(seq[:, P:], self.tokenizer.eos_token_id)
        attn = torch.cat([prompt_attn, mask], dim=1)
        chunks = []
        # The prepared policy and value model run under the accelerator's autocast; the frozen
        # reference policy and the scorers are not prepared, so they get the same context here. In
        # bf16 the KL to the reference would otherwise measure bf16 rounding as well: a nonzero KL
        # penalty between identical weights.
        with self.accelerator.autocast():
            for i in range(0, len(prompts), self.cfg.mini_batch_size):
                s, a = seq[i : i + self.cfg.mini_batch_size], attn[i : i + self.cfg.mini_batch_size]
                gold = self.gold_reward(s, a, P) if self.gold_reward is not None else torch.full((len(s),), float("nan"), device=dev)
                chunks.append((self._logprobs(self.policy, s, a, P), self._logprobs(self.ref_policy, s, a, P), self._values(s, a, P),
                               self.reward(s, a, P).float(), gold.float()))
        lp, ref_lp, values, raw, gold = (torch.cat(x) for x in zip(*chunks))
        scores = raw.clone()
        if self.cfg.missing_eos_penalty is not None:
            # an episode cut off at max_new_tokens ends without EOS: penalise it (trl's missing_eos_penalty)
            scores -= self.cfg.missing_eos_penalty * (~(seq[:, P:] == self.tokenizer.eos_token_id).any(-1)).float()
        if self.cfg.whiten_rewards:
            scores = L.whiten(scores, torch.ones_like(scores), shift_mean=False)
        return Rollout(seq, attn, P, mask, lp, ref_lp, values * mask, scores, raw,
                       gold if self.gold_reward is not None else None)

    # ------------------------------------------------------------------ step
    def step(self, ro: Rollout) -> dict[str, float]:
        """Advantages for ``ro``, then PPO updates; returns this iteration's logged statistics."""
        cfg, beta = self.cfg, self.kl_ctl.value
        ro.rewards, kl = L.kl_penalized_rewards(ro.scores, ro.logprobs, ro.ref_logprobs, ro.mask, beta)
        ro.advantages, ro.returns = L.gae_advantages(ro.rewards, ro.values, ro.mask, cfg.discount, cfg.gae_lambda)
        if cfg.whiten_advantages:
            ro.advantages = L.whiten(ro.advantages, ro.mask) * ro.mask
        agg: dict[str, list[float]] = {}
        B = ro.sequences.shape[0]
        for _ in range(cfg.ppo_epochs):
            for idx in torch.randperm(B).split(cfg.mini_batch_size):
                stats = self._minibatch_update(ro, idx)
                for k, v in stats.items():
                    agg.setdefault(k, []).append(v)
        episode_kl = kl.sum(-1).mean().item()
        self.kl_ctl.update(episode_kl, B)
        out = {k: sum(v) / len(v) for k, v in agg.items()}
        out.update({
            "reward_mean": ro.raw_scores.mean().item(),
            "reward_std": ro.raw_scores.std().item() if B > 1 else 0.0,
            "gold_reward_mean": ro.gold_scores.mean().item() if ro.gold_scores is not None else None,
            "missing_eos": (~(ro.sequences[:, ro.prompt_len:] == self.tokenizer.eos_token_id).any(-1)).float().mean().item(),
            "reward_shaped": ro.rewards.sum(-1).mean().item(),
            "kl": episode_kl,
            "beta": beta,
            "response_length": ro.mask.sum(-1).float().mean().item(),
            "explained_variance": L.explained_variance(ro.values, ro.returns, ro.mask).item(),
        })
        out.setdefault("ptx_loss", None)
        return out

    def _minibatch_update(self, ro: Rollout, idx: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        seq, attn, m = ro.sequences[idx], ro.attention_mask[idx], ro.mask[idx]
        logprobs, entropy = self._logprobs(self.policy, seq, attn, ro.prompt_len, with_entropy=True)
        values = self._values(seq, attn, ro.prompt_len)
        pg_loss, pg_stats = L.ppo_policy_loss(logprobs, ro.logprobs[idx], ro.advantages[idx], m, cfg.cliprange)
        vf_loss, vf_clipfrac = L.ppo_value_loss(values, ro.values[idx], ro.returns[idx], m, cfg.cliprange_value)
        loss = pg_loss + cfg.vf_coef * vf_loss
        stats = {"policy_loss": pg_loss.item(), "value_loss": vf_loss.item(), "value_clipfrac": vf_clipfrac.item(),
                 "entropy": L.masked_mean(entropy, m).item(), "clipfrac": pg_stats["clipfrac"].item(),
                 "approx_kl": pg_stats["approx_kl"].item()}
        if cfg.gamma > 0:
            ids, pattn = (t.to(self.accelerator.device) for t in next(self._pretrain))
            logits = self.policy(input_ids=ids, attention_mask=pattn).logits
            ptx = L.lm_loss(logits, ids, pattn)
            self.ptx_forwards += 1
            loss = loss + cfg.gamma * ptx
            stats["ptx_loss"] = ptx.item()
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(list(self.policy.parameters()) + list(self.value_model.parameters()), cfg.max_grad_norm)
        self.opt.step()
        self.opt.zero_grad()
        return stats

    # ----------------------------------------------------------------- train
    def train(self, log_path: str | Path | None = None) -> list[dict[str, float]]:
        """Run ``cfg.steps`` iterations; append one JSON line of statistics per step to ``log_path``."""
        history = []
        bar = tqdm(range(1, self.cfg.steps + 1), desc=f"PPO{'-ptx' if self.cfg.gamma > 0 else ''}",
                   disable=not self.accelerator.is_main_process)
        for step in bar:
            t0 = time.perf_counter()
            batch = [next(self._prompts) for _ in range(self.cfg.batch_size)]
            stats = self.step(self.rollout(batch))
            stats.update(step=step, episodes=step * self.cfg.batch_size, seconds=time.perf_counter() - t0)
            history.append(stats)
            if log_path:
                append_jsonl(log_path, stats)
            bar.set_postfix(reward=f"{stats['reward_mean']:.3f}", kl=f"{stats['kl']:.3f}")
        return history

    def save(self, out_dir: str | Path, stage: str, config, fingerprints: dict[str, str], metrics: dict) -> Path:
        """Save the trained policy as a Hugging Face causal-LM checkpoint with ``run.json``."""
        return save_checkpoint(self.accelerator.unwrap_model(self.policy), self.tokenizer, out_dir, stage, config, fingerprints, metrics)

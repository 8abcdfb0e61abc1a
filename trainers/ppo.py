"""Stage 3, PPO and PPO-ptx (paper section 3.5 "RL", eq. 2; appendix C.4).

Roles, explicit as in trl's PPOTrainer:
- ``policy`` (trained) and ``ref_policy`` (frozen copy of the SFT model: the KL anchor pi_SFT). With
  ``lora.r > 0`` the policy trains peft LoRA adapters and the reference is the same model with its
  adapters disabled (:class:`ReferenceWithoutAdapters`): one copy of the weights, and the reference is
  exactly pi_SFT because the base weights never change;
- ``reward_model`` (frozen RM: r_theta(x, y) at the last response token);
- ``value_model`` (trained, initialised from the RM as in the paper), with ``value_head=separate``
  (``value_lora.r > 0``: LoRA adapters plus its full scalar head);
  with ``value_head=shared`` it is None and a scalar head on the policy's own final hidden states
  gives the values (:class:`PolicyWithValueHead`: one trunk, one forward for logits and values).

One iteration: sample a batch of prompts, generate responses (KV cache, temperature sampling),
score them, shape per-token rewards with the KL penalty (beta), compute advantages, then
``ppo_epochs`` passes of clipped policy (and value) updates over minibatches. Advantages
(``advantage_estimator``): ``gae``, the paper's, from the value model by GAE; ``rloo``, from the other
samples of the same prompt (``samples_per_prompt`` >= 2 episodes of each prompt in a batch): each
episode's score minus the mean score of its prompt's other samples (the leave-one-out baseline of
REINFORCE, Kool et al. 2019; Ahmadian et al. 2024, arXiv 2402.14740), with the KL penalty per token
as before; no value model is built or trained. With ``ptx_coef`` (the paper's gamma) > 0
every minibatch also takes ``ptx_coef * lm_loss`` on pretraining sequences (PPO-ptx): ``ptx_batch_size``
of them, or ``ptx_ratio`` per episode of the minibatch (paper appendix C.4: "8 times more
pretraining examples than the number of the RL training episodes"). With ``ptx_coef == 0`` no
pretraining forward runs at all. When the batch is one minibatch, the rollout's policy and value
forward doubles as the first update's (:meth:`PPOTrainer.rollout`). With ``trainable_layers`` the policy (and value
model) train only their top blocks, and the frozen trunk runs once per rollout for every model that shares it
(:mod:`trainers.frozen_trunk`).

Under ``accelerate launch`` each process generates ``batch_size`` episodes of its own per
iteration (the global batch is ``batch_size * num_processes``), gradients are averaged by DDP,
and the KL controller and the logged statistics use means over processes. Every
``save_steps`` iterations the full training state is checkpointed (:mod:`trainers.checkpointing`)
and ``resume`` continues from it: the prompt order and the pretraining batches are replayed from
the seed, beta and the log history come from the checkpoint.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import save_file
from tqdm.auto import tqdm

from harness.config import PPOConfig, is_ptx
from harness.io import apply_umask
from harness.models import add_lora, merge_lora, position_ids, scalar_head, token_scores
from harness.prompting import encode_prompts, pad
from harness.records import PretrainText, Prompt
from trainers import losses as L
from trainers.common import (
    adamw,
    freeze_lower_layers,
    head_can_skip_positions,
    save_checkpoint,
    seed_everything,
)
from trainers.episodes import Rollout, prompt_groups, ptx_sequences_for_minibatch, response_mask, response_values
from trainers.frozen_trunk import TrunkSharing, plan_trunk_sharing
from trainers.kl_control import make_kl_controller
from trainers.policy_models import PolicyValueOutput, PolicyWithValueHead, ReferenceWithoutAdapters
from trainers.probe import ProbePoint, run_probe
from trainers.rewards import as_scorer, ended_with_eos
from trainers.tracking import Tracking, finish_tracking, log_step, make_accelerator

VALUE_HEADS = ("separate", "shared")
ADVANTAGE_ESTIMATORS = ("gae", "rloo")


class PPOTrainer:
    """Optimises ``policy`` against ``reward_model`` with a KL penalty to ``ref_policy``.

    ``self.policy`` is the trained module as prepared by accelerate (the causal LM, or with
    ``value_head=shared`` the :class:`PolicyWithValueHead` around it); :attr:`policy_model` is the
    plain causal LM in both cases.
    """

    def __init__(self, cfg: PPOConfig, policy, ref_policy, reward_model, value_model, tokenizer,
                 prompts: list[Prompt], pretrain: list[PretrainText] | None = None, chat_template: str = "auto", seed: int = 0,
                 gold_reward=None, tracking: Tracking | None = None, probe_prompts: list[Prompt] | None = None):
        """``reward_model`` (the proxy) and the optional ``gold_reward`` are reward models or scorers
        (:mod:`trainers.rewards`); the gold reward is only logged, never optimised. ``value_model``
        is required with ``value_head=separate`` and must be None with ``shared`` and with ``advantage_estimator=rloo``.

        With ``cfg.lora.r > 0`` the policy is wrapped in LoRA adapters and ``ref_policy`` must be None (the
        reference is the policy with its adapters disabled); with ``cfg.value_lora.r > 0`` the value model is.

        Raises ``ValueError`` for: no prompts; PPO-ptx (ptx_coef > 0) without pretraining texts; a batch size
        that is not a multiple of the minibatch size; an unknown ``value_head`` or a value model
        that does not match it; ``ptx_ratio`` <= 0; a ``ref_policy`` with a LoRA policy or none without one;
        ``value_lora`` without a separate value model; ``trainable_layers`` with LoRA; ``probe_prompts`` not
        ``cfg.probe.prompts`` long, or sharing an id with a PPO prompt; a batch size that is not a multiple of
        ``samples_per_prompt``; ``advantage_estimator=rloo`` with fewer than 2 samples per prompt or with a value model
        (it needs ``value_model=None``, ``value_head=separate``, ``value_lora.r=0``).

        ``probe_prompts``: held-out prompts of the probe (:mod:`trainers.probe`), rolled out before training and every
        ``cfg.probe.every`` iterations; never trained on.

        With ``cfg.trainable_layers = k`` only the top ``k`` blocks (+ final norm and heads) of the policy and of the
        separate value model train, and the models that share the policy's frozen lower layers read them once per
        rollout (:mod:`trainers.frozen_trunk`; :attr:`trunk` says which).
        """
        if not prompts:
            raise ValueError("PPOTrainer: no prompts")
        if is_ptx(cfg.ptx_coef) and not pretrain:
            raise ValueError("PPOTrainer: ptx_coef > 0 (PPO-ptx) needs pretraining texts")
        if cfg.batch_size % cfg.mini_batch_size:
            raise ValueError(f"PPOTrainer: batch_size {cfg.batch_size} is not a multiple of mini_batch_size {cfg.mini_batch_size}")
        if cfg.batch_size % cfg.samples_per_prompt:
            raise ValueError(f"PPOTrainer: batch_size {cfg.batch_size} is not a multiple of samples_per_prompt {cfg.samples_per_prompt}")
        if cfg.value_head not in VALUE_HEADS:
            raise ValueError(f"PPOTrainer: value_head must be one of {VALUE_HEADS}, got {cfg.value_head!r}")
        if cfg.advantage_estimator not in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"PPOTrainer: advantage_estimator must be one of {ADVANTAGE_ESTIMATORS}, got {cfg.advantage_estimator!r}")
        self._rloo = cfg.advantage_estimator == "rloo"
        if self._rloo and (cfg.samples_per_prompt < 2 or value_model is not None or cfg.value_head == "shared" or cfg.value_lora.r > 0):
            raise ValueError("PPOTrainer: advantage_estimator=rloo needs samples_per_prompt >= 2 (got "
                             f"{cfg.samples_per_prompt}) and no value model (value_model=None, value_head=separate, value_lora.r=0)")
        if not self._rloo and (value_model is None) != (cfg.value_head == "shared"):
            raise ValueError(f"PPOTrainer: value_head={cfg.value_head} needs "
                             f"{'value_model=None (the head sits on the policy)' if cfg.value_head == 'shared' else 'a value_model'}")
        if cfg.ptx_ratio is not None and cfg.ptx_ratio <= 0:
            raise ValueError(f"PPOTrainer: ptx_ratio must be > 0 (pretraining sequences per episode), got {cfg.ptx_ratio}")
        if (ref_policy is None) != (cfg.lora.r > 0):
            raise ValueError("PPOTrainer: " + ("with lora.r > 0 the reference policy is the policy with its adapters disabled; "
                                               "pass ref_policy=None" if cfg.lora.r > 0 else "ref_policy is required (or set lora.r > 0)"))
        if cfg.value_lora.r > 0 and value_model is None:
            raise ValueError("PPOTrainer: value_lora needs value_head=separate (a value model to put adapters on)")
        if cfg.trainable_layers and (cfg.lora.r > 0 or cfg.value_lora.r > 0):
            raise ValueError(f"PPOTrainer: trainable_layers={cfg.trainable_layers} and lora / value_lora are two ways to train "
                             "part of a model; set one (trainable_layers=null with LoRA)")
        self._probe_prompts = list(probe_prompts or [])
        if len(self._probe_prompts) != cfg.probe.prompts or {p.id for p in prompts} & {p.id for p in self._probe_prompts}:
            raise ValueError(f"PPOTrainer: ppo.probe.prompts={cfg.probe.prompts} needs that many probe prompts, none of them a PPO "
                             f"prompt; got {len(self._probe_prompts)}")
        self.cfg, self.tokenizer, self.seed = cfg, tokenizer, seed
        self.accelerator: Accelerator = make_accelerator(tracking, mixed_precision=cfg.mixed_precision)
        rank = self.accelerator.process_index
        seed_everything(seed)
        if cfg.lora.r > 0:
            policy = add_lora(policy, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
            ref_policy = ReferenceWithoutAdapters(policy)
        if cfg.value_lora.r > 0:
            lo = cfg.value_lora
            value_model = add_lora(value_model, lo.r, lo.alpha, lo.dropout, lo.target_modules, task_type=None)
            scalar_head(value_model).requires_grad_(True)  # the value head is not an adapter: it trains in full
        if cfg.trainable_layers:
            for model in (policy, value_model):
                if model is not None:
                    freeze_lower_layers(model, cfg.trainable_layers)
        ref_policy.eval().requires_grad_(False)
        if self._rloo:
            trained, value_params = policy, []
        elif cfg.value_head == "shared":
            trained = PolicyWithValueHead(policy)
            value_params = list(trained.value_head.parameters())
        else:
            trained, value_params = policy, list(value_model.parameters())
        value_ids = {id(p) for p in value_params}
        opt = adamw([
            {"params": [p for p in trained.parameters() if p.requires_grad and id(p) not in value_ids], "lr": cfg.lr},
            *([{"params": [p for p in value_params if p.requires_grad], "lr": cfg.value_lr}] if value_params else []),
        ])
        # Both policies are the same class; ask once whether the LM head can skip the prompt positions.
        self._head_skips_prompt = head_can_skip_positions(policy)
        if value_model is None:
            self.policy, self.opt = self.accelerator.prepare(trained, opt)
            self.value_model = None
        else:
            self.policy, self.value_model, self.opt = self.accelerator.prepare(trained, value_model, opt)
        self.ref_policy = ref_policy.to(self.accelerator.device)
        self.reward = as_scorer(reward_model).to(self.accelerator.device)
        self.gold_reward = as_scorer(gold_reward).to(self.accelerator.device) if gold_reward is not None else None
        self.trunk: TrunkSharing | None = plan_trunk_sharing(
            policy, cfg.trainable_layers,
            {"reference": ref_policy, "value": value_model, "reward": getattr(self.reward, "model", None),
             "gold": getattr(self.gold_reward, "model", None)},
            self.accelerator.num_processes)
        self.kl_ctl = make_kl_controller(cfg.kl_control, cfg.beta, cfg.kl_target, cfg.kl_horizon)
        rng = random.Random(seed)
        order = list(prompts)
        rng.shuffle(order)
        self._prompts = itertools.cycle(order)  # the global order; process p takes slice p of each global batch
        encoded = order + self._probe_prompts
        self._prompt_ids = dict(zip([p.id for p in encoded], encode_prompts([p.prompt for p in encoded], tokenizer, cfg.max_prompt_length, chat_template)))
        self.probes: list = []  # trainers.probe.ProbePoint, in step order
        # process 0 keeps the single-process stream; the others draw their own pretraining sequences
        self._pretrain = self._pretrain_sequences(pretrain, rng if rank == 0 else random.Random(seed + rank)) if is_ptx(cfg.ptx_coef) else None
        self.ptx_forwards = 0  # counted, so a test can show ptx_coef=0 runs none
        self.ptx_sequences = 0  # pretraining sequences consumed so far
        self._minibatches = 0  # minibatch updates so far (indexes the ptx_ratio schedule)

    @property
    def policy_model(self):
        """The trained policy as a plain causal LM (unwrapped; without the shared value head)."""
        model = self.accelerator.unwrap_model(self.policy)
        return model.policy if isinstance(model, PolicyWithValueHead) else model

    # ------------------------------------------------------------------ data
    def _pretrain_sequences(self, texts: list[PretrainText], rng: random.Random) -> Iterator[list[int]]:
        """Endless pretraining token-id lists (each at most ``ptx_max_length``), reshuffled every pass.

        Raises ``ValueError`` (on first use) if no text has two tokens.
        """
        seqs = [ids[: self.cfg.ptx_max_length] for ids in self.tokenizer([t.text for t in texts], add_special_tokens=False)["input_ids"] if len(ids) > 1]
        if not seqs:
            raise ValueError("PPOTrainer: no pretraining text has two or more tokens")
        while True:
            rng.shuffle(seqs)
            yield from seqs

    def ptx_sequences_next_minibatch(self) -> int:
        """Pretraining sequences the next minibatch takes: ``ptx_batch_size``, or from ``ptx_ratio``
        (:func:`ptx_sequences_for_minibatch`); 0 when ``ptx_coef`` is 0."""
        if not is_ptx(self.cfg.ptx_coef):
            return 0
        if self.cfg.ptx_ratio is None:
            return self.cfg.ptx_batch_size
        return ptx_sequences_for_minibatch(self.cfg.ptx_ratio, self.cfg.mini_batch_size, self._minibatches)

    # --------------------------------------------------------------- forward
    def _lm_forward(self, model, seq: torch.Tensor, attn: torch.Tensor, prompt_len: int, trunk: torch.Tensor | None = None):
        """Run ``model`` on ``seq [B, P + R]``; returns ``(output, logits [B, R, V])``: the fp32,
        temperature-scaled logits that predict the response tokens. ``trunk``: the shared frozen trunk's output
        ``[B, P + R, H]`` (:mod:`trainers.frozen_trunk`), from which only the model's top blocks run.

        Response token t is predicted by the logits at position t - 1, so only positions
        P - 1 .. P + R - 2 go through the LM head (``logits_to_keep``). Skipping the prompt matters:
        with a 50k vocabulary the head is as large a matmul as all the blocks of a small model,
        prompts are often longer than responses, and no vocabulary-sized tensor is sliced in
        backward. Dividing by a temperature of exactly 1 is skipped (it changes no value).
        """
        wanted = torch.arange(prompt_len - 1, seq.shape[1] - 1, device=seq.device)
        if trunk is not None:
            out = self._forward_from_trunk(model, trunk, attn, wanted)
            logits = out.logits.float()
        else:
            extra = {"logits_to_keep": wanted} if self._head_skips_prompt else {}
            out = model(input_ids=seq, attention_mask=attn, position_ids=position_ids(attn), **extra)
            logits = (out.logits if self._head_skips_prompt else out.logits[:, wanted]).float()
        if self.cfg.temperature != 1.0:
            logits = logits / self.cfg.temperature
        return out, logits

    def _forward_from_trunk(self, model, trunk: torch.Tensor, attn: torch.Tensor, wanted: torch.Tensor) -> PolicyValueOutput:
        """A causal LM (or :class:`PolicyWithValueHead`) from the trunk's output: logits ``[B, len(wanted), V]`` at
        positions ``wanted``, as ``logits_to_keep`` gives them, and the shared head's values ``[B, P + R]`` (fp32) or
        None, under the accelerator's autocast (the prepared model's own forward is bypassed)."""
        inner = self.accelerator.unwrap_model(model)
        lm = inner.policy if isinstance(inner, PolicyWithValueHead) else inner
        with self.accelerator.autocast():
            hidden = self.trunk.final_hidden(lm, trunk, attn)
            values = inner.value_head(hidden).squeeze(-1).float() if isinstance(inner, PolicyWithValueHead) else None
            return PolicyValueOutput(lm.get_output_embeddings()(hidden[:, wanted]), values)

    def _reward(self, scorer, role: str, episodes: tuple[torch.Tensor, torch.Tensor], ended: tuple[torch.Tensor, torch.Tensor],
                prompt_len: int, trunk: torch.Tensor | None) -> torch.Tensor:
        """``scorer``'s reward ``[B]`` (fp32; NaN without a scorer) of the ``episodes`` (sequences, attention mask), or of
        them ``ended`` in EOS for a scorer that ``reads_eos``; its top blocks only when it shares the ``trunk`` (of ``ended``)."""
        reads_eos = getattr(scorer, "reads_eos", False)
        seq, attn = ended if reads_eos else episodes
        trunk = trunk if reads_eos or trunk is None else trunk[:, :-1]
        if scorer is None:
            return torch.full((len(seq),), float("nan"), device=seq.device)
        if (trunk := self._trunk_for(role, trunk)) is None:
            return scorer(seq, attn, prompt_len).float()
        with torch.no_grad():
            hidden = self.trunk.final_hidden(scorer.model, trunk, attn)
            return scorer.from_token_scores(scalar_head(scorer.model)(hidden).squeeze(-1), seq, attn).float()

    def _trunk_for(self, role: str, trunk: torch.Tensor | None) -> torch.Tensor | None:
        """``trunk`` when the model in ``role`` (:data:`trainers.frozen_trunk.ROLES`) shares it, else None (it runs whole)."""
        return trunk if trunk is not None and self.trunk.shares(role) else None

    def _response_logprobs(self, logits: torch.Tensor, seq: torch.Tensor, prompt_len: int, with_entropy: bool = False):
        """Log-probs ``[B, R]`` of the response tokens under ``logits [B, R, V]`` (from :meth:`_lm_forward`), and optionally entropy."""
        if with_entropy:
            return L.token_logprobs_and_entropy(logits, seq[:, prompt_len:])
        return L.selective_logprobs(logits, seq[:, prompt_len:])

    def _logprobs(self, model, seq: torch.Tensor, attn: torch.Tensor, prompt_len: int, with_entropy: bool = False,
                  trunk: torch.Tensor | None = None):
        """Log-probs ``[B, R]`` of the response tokens (under temperature-scaled logits) and optionally entropy."""
        return self._response_logprobs(self._lm_forward(model, seq, attn, prompt_len, trunk)[1], seq, prompt_len, with_entropy)

    def _values(self, seq: torch.Tensor, attn: torch.Tensor, prompt_len: int, trunk: torch.Tensor | None = None) -> torch.Tensor:
        """V(s_t) for each response token from the separate value model, ``[B, R]`` (from ``trunk`` when it shares it)."""
        if (trunk := self._trunk_for("value", trunk)) is None:
            return response_values(token_scores(self.value_model, seq, attn), prompt_len)
        with self.accelerator.autocast():
            hidden = self.trunk.final_hidden(self.value_model, trunk, attn)
            return response_values(scalar_head(self.value_model)(hidden).squeeze(-1), prompt_len)

    def _policy_and_values(self, seq: torch.Tensor, attn: torch.Tensor, prompt_len: int, with_entropy: bool = False,
                           trunk: torch.Tensor | None = None):
        """``(logprobs [B, R], entropy [B, R] or None, values [B, R])`` of the trained models.

        ``shared``: one forward of the policy trunk gives all three; ``separate``: the value model
        runs its own forward; ``rloo``: values are zeros. ``trunk``: the frozen trunk's output (:meth:`rollout`), read by both.
        """
        out, logits = self._lm_forward(self.policy, seq, attn, prompt_len, trunk)
        lp = self._response_logprobs(logits, seq, prompt_len, with_entropy)
        lp, entropy = lp if with_entropy else (lp, None)
        if self._rloo:  # no value model: zeros keep the episode's tensors one shape
            return lp, entropy, torch.zeros_like(lp)
        values = response_values(out.values, prompt_len) if self.value_model is None else self._values(seq, attn, prompt_len, trunk)
        return lp, entropy, values

    @torch.no_grad()
    def rollout(self, prompts: list[Prompt], update: bool = True) -> Rollout:
        """Generate one response per prompt and score it; returns the episodes (no advantages yet).

        With ``update`` (the episodes will be trained on) and one minibatch (``mini_batch_size >= batch_size``) the first update's policy and value forward (same
        episodes, same weights) runs here with autograd on: its detached outputs are the behaviour log-probs and old
        values, and the first update back-propagates through it (``Rollout.first_forward``). Same numbers, one
        forward fewer. The reward models read the episodes ended in EOS (:func:`trainers.rewards.ended_with_eos`).
        """
        dev = self.accelerator.device
        prompt_ids, prompt_attn = pad([self._prompt_ids[p.id] for p in prompts], self.tokenizer.pad_token_id, side="left")
        prompt_ids, prompt_attn = prompt_ids.to(dev), prompt_attn.to(dev)
        policy = self.policy_model
        policy.eval()
        # Under mixed precision torch drops its cache of weight casts when the outermost autocast region ends: one
        # region around the whole generate call casts each weight once per rollout, not once per sampled token.
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
        # the reward models read every response at an EOS, as they were trained to (trainers.rewards.ended_with_eos);
        # the trunk runs on those sequences, and the policy's forwards use its first P + R positions (causal)
        eseq, eattn = ended_with_eos(seq, attn, P, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id)
        chunks, trunks, first_forward = [], [], None
        keep_graph = update and len(prompts) <= self.cfg.mini_batch_size  # one chunk, and its forward is the first update's
        # The prepared policy and value model run under the accelerator's autocast; the frozen
        # reference policy and the scorers are not prepared, so they get the same context here. In
        # bf16 the KL to the reference would otherwise measure bf16 rounding as well: a nonzero KL
        # penalty between identical weights.
        with self.accelerator.autocast():
            for i in range(0, len(prompts), self.cfg.mini_batch_size):
                rows = slice(i, i + self.cfg.mini_batch_size)
                s, a, ended = seq[rows], attn[rows], (eseq[rows], eattn[rows])
                etrunk = self.trunk.states(policy, *ended) if self.trunk is not None else None
                trunk = etrunk[:, :-1] if etrunk is not None else None
                gold = self._reward(self.gold_reward, "gold", (s, a), ended, P, etrunk)
                with torch.set_grad_enabled(keep_graph):
                    forward = self._policy_and_values(s, a, P, with_entropy=keep_graph, trunk=trunk)
                first_forward = forward if keep_graph else None
                lp, values = forward[0].detach(), forward[2].detach()
                ref_lp = self._logprobs(self.ref_policy, s, a, P, trunk=self._trunk_for("reference", trunk))
                chunks.append((lp, ref_lp, values, self._reward(self.reward, "reward", (s, a), ended, P, etrunk), gold))
                trunks.append(trunk)
        lp, ref_lp, values, raw, gold = (torch.cat(x) for x in zip(*chunks))
        scores = raw.clone()
        if self.cfg.missing_eos_penalty is not None:
            # an episode cut off at max_new_tokens ends without EOS: penalise it (trl's missing_eos_penalty)
            scores -= self.cfg.missing_eos_penalty * (~(seq[:, P:] == self.tokenizer.eos_token_id).any(-1)).float()
        if self.cfg.whiten_rewards:
            scores = L.whiten(scores, torch.ones_like(scores), shift_mean=False)
        return Rollout(seq, attn, P, mask, lp, ref_lp, values * mask, scores, raw,
                       gold if self.gold_reward is not None else None, first_forward=first_forward,
                       trunk=torch.cat(trunks) if self.trunk is not None else None)

    # ------------------------------------------------------------------ step
    def step(self, ro: Rollout) -> dict[str, float]:
        """Advantages for ``ro``, then PPO updates; returns this iteration's logged statistics."""
        cfg, beta = self.cfg, self.kl_ctl.value
        scores = L.leave_one_out_scores(ro.scores, cfg.samples_per_prompt) if self._rloo else ro.scores
        ro.rewards, kl = L.kl_penalized_rewards(scores, ro.logprobs, ro.ref_logprobs, ro.mask, beta)
        # rloo: values are zeros and lambda 1, so each token's advantage is its return (baselined score + KL to come)
        ro.advantages, ro.returns = L.gae_advantages(ro.rewards, ro.values, ro.mask, cfg.discount, 1.0 if self._rloo else cfg.gae_lambda)
        if cfg.whiten_advantages:
            ro.advantages = L.whiten(ro.advantages, ro.mask) * ro.mask
        agg: dict[str, list[float]] = {}
        B = ro.sequences.shape[0]
        for _ in range(cfg.ppo_epochs):
            for idx in torch.randperm(B).split(cfg.mini_batch_size):
                forward = None
                if ro.first_forward is not None:  # the first update only: the weights change after it
                    forward, ro.first_forward = tuple(t[idx] for t in ro.first_forward), None
                stats = self._minibatch_update(ro, idx, forward)
                for k, v in stats.items():
                    agg.setdefault(k, []).append(v)
        episode_kl = self._mean_over_processes(kl.sum(-1).mean().item())
        self.kl_ctl.update(episode_kl, B * self.accelerator.num_processes)
        out = {k: self._mean_over_processes(sum(v) / len(v)) for k, v in agg.items()}
        m = self._mean_over_processes
        out.update({
            "reward_mean": m(ro.raw_scores.mean().item()),
            "reward_std": m(ro.raw_scores.std().item() if B > 1 else 0.0),
            "reward_se": self._batch_se(ro.raw_scores),
            "gold_reward_mean": m(ro.gold_scores.mean().item()) if ro.gold_scores is not None else None,
            "gold_reward_se": self._batch_se(ro.gold_scores) if ro.gold_scores is not None else None,
            "missing_eos": m((~(ro.sequences[:, ro.prompt_len:] == self.tokenizer.eos_token_id).any(-1)).float().mean().item()),
            "reward_shaped": m(ro.rewards.sum(-1).mean().item()),
            "kl": episode_kl,
            "beta": beta,
            "response_length": m(ro.mask.sum(-1).float().mean().item()),
        })
        if not self._rloo:
            out["explained_variance"] = m(L.explained_variance(ro.values, ro.returns, ro.mask).item())
        out.setdefault("ptx_loss", None)
        out["ptx_sequences"] = sum(agg.get("ptx_sequences", [0]))  # consumed this step (a count, not a mean)
        return out

    def _minibatch_update(self, ro: Rollout, idx: torch.Tensor, forward: tuple[torch.Tensor, ...] | None = None) -> dict[str, float]:
        """One clipped PPO (+ ptx) update on episodes ``idx``. ``forward``: their (logprobs, entropy,
        values) ``[b, R]`` with graph, when already computed at the current weights (the rollout's)."""
        cfg = self.cfg
        seq, attn, m = ro.sequences[idx], ro.attention_mask[idx], ro.mask[idx]
        if forward is None:
            forward = self._policy_and_values(seq, attn, ro.prompt_len, with_entropy=True,
                                              trunk=ro.trunk[idx] if ro.trunk is not None else None)
        logprobs, entropy, values = forward
        pg_loss, pg_stats = L.ppo_policy_loss(logprobs, ro.logprobs[idx], ro.advantages[idx], m, cfg.cliprange)
        loss = pg_loss
        stats = {"policy_loss": pg_loss.item(), "entropy": L.masked_mean(entropy, m).item(),
                 "clipfrac": pg_stats["clipfrac"].item(), "approx_kl": pg_stats["approx_kl"].item()}
        if not self._rloo:
            vf_loss, vf_clipfrac = L.ppo_value_loss(values, ro.values[idx], ro.returns[idx], m, cfg.cliprange_value)
            loss = loss + cfg.vf_coef * vf_loss
            stats.update(value_loss=vf_loss.item(), value_clipfrac=vf_clipfrac.item())
        n_ptx = self.ptx_sequences_next_minibatch()
        self._minibatches += 1
        if n_ptx > 0:
            ids, pattn = (t.to(self.accelerator.device) for t in pad([next(self._pretrain) for _ in range(n_ptx)], self.tokenizer.pad_token_id))
            logits = self.policy(input_ids=ids, attention_mask=pattn).logits
            ptx = L.lm_loss(logits, ids, pattn)
            self.ptx_forwards += 1
            self.ptx_sequences += n_ptx
            loss = loss + cfg.ptx_coef * ptx
            stats["ptx_loss"] = ptx.item()
        stats["ptx_sequences"] = n_ptx
        self.accelerator.backward(loss)
        params = list(self.policy.parameters()) + (list(self.value_model.parameters()) if self.value_model is not None else [])
        self.accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
        self.opt.step()
        self.opt.zero_grad()
        return stats

    def _batch_se(self, x: torch.Tensor) -> float | None:
        """Standard error of the global batch mean of ``x [B]`` (this process's episodes; every process's are gathered):
        sample standard deviation / sqrt(episodes), the ``_se`` of a probe point's mean but over one iteration's
        episodes (other prompts each iteration, so independent between iterations). None with one episode."""
        x = self.accelerator.gather(x) if self.accelerator.num_processes > 1 else x
        return (x.float().std() / math.sqrt(x.numel())).item() if x.numel() > 1 else None

    def _mean_over_processes(self, x: float) -> float:
        if self.accelerator.num_processes == 1:
            return x
        return self.accelerator.reduce(torch.tensor(x, device=self.accelerator.device), reduction="mean").item()

    def _next_batch(self) -> list[Prompt]:
        """This process's prompts for one iteration: slice ``rank`` of the next global batch of
        ``batch_size / samples_per_prompt`` prompts a process, each repeated ``samples_per_prompt`` times in a row."""
        n, rank, k = self.accelerator.num_processes, self.accelerator.process_index, self.cfg.samples_per_prompt
        b = self.cfg.batch_size // k
        glob = [next(self._prompts) for _ in range(b * n)]
        return prompt_groups(glob[rank * b : (rank + 1) * b], k)

    # ----------------------------------------------------------------- train
    def train(self, log_path: str | Path | None = None, state_dir: str | Path | None = None,
              resume: bool = False) -> list[dict[str, float]]:
        """Run ``cfg.steps`` iterations; append one JSON line of statistics per step to ``log_path``
        and send the same numbers to the trackers (closed at the end).

        With ``cfg.save_steps`` the training state goes to ``state_dir`` every that many
        iterations (and after the last); ``resume`` restores the newest one first and runs only
        the iterations left. Returns every iteration's statistics, restored ones included.
        """
        from trainers.checkpointing import (
            latest_state,
            load_state,
            save_state,
            trim_log,
        )

        history: list[dict] = []
        done = 0
        if resume and state_dir is not None and (ckpt := latest_state(state_dir)) is not None:
            state = load_state(self.accelerator, ckpt)
            done, history, self.kl_ctl.value = state["step"], list(state["history"]), state["beta"]
            self.probes = [ProbePoint(**p) for p in state.get("probes", [])]
            for _ in range(done):  # replay the data streams to where the checkpoint left them
                self._next_batch()
            for _ in range(state["ptx_sequences"]):
                next(self._pretrain)
            self.ptx_forwards, self.ptx_sequences, self._minibatches = state["ptx_forwards"], state["ptx_sequences"], state["minibatches"]
            if self.accelerator.is_main_process:
                trim_log(log_path, done)
        bar = tqdm(range(done + 1, self.cfg.steps + 1), initial=done, total=self.cfg.steps,
                   desc=f"PPO{'-ptx' if is_ptx(self.cfg.ptx_coef) else ''}", disable=not self.accelerator.is_main_process)
        if self._probe_prompts and done == 0:
            self._probe(0)
        for step in bar:
            t0 = time.perf_counter()
            stats = self.step(self.rollout(self._next_batch()))
            stats.update(step=step, episodes=step * self.cfg.batch_size * self.accelerator.num_processes,
                         seconds=time.perf_counter() - t0)
            history.append(stats)
            log_step(self.accelerator, log_path, stats, step)
            if self._probe_prompts and (step % self.cfg.probe.every == 0 or step == self.cfg.steps):
                self._probe(step)
            if self.cfg.save_steps and state_dir is not None and (step % self.cfg.save_steps == 0 or step == self.cfg.steps):
                save_state(self.accelerator, state_dir, step, {"history": history, "beta": self.kl_ctl.value, "ptx_forwards": self.ptx_forwards,
                                                               "ptx_sequences": self.ptx_sequences, "minibatches": self._minibatches,
                                                               "probes": [p.record() for p in self.probes]},
                           keep=self.cfg.keep_checkpoints)
            bar.set_postfix(reward=f"{stats['reward_mean']:.3f}", kl=f"{stats['kl']:.3f}")
        finish_tracking(self.accelerator)
        return history

    def _probe(self, step: int) -> None:
        """Probe the policy after ``step`` iterations (:func:`trainers.probe.run_probe`) and keep the point."""
        point = run_probe(self, self._probe_prompts, self.cfg.probe.samples, step, step * self.cfg.batch_size * self.accelerator.num_processes,
                          seed=self.seed + 1 + self.accelerator.process_index)
        self.probes.append(point)
        if self.accelerator.is_main_process:
            tqdm.write(f"probe after {step} iterations: proxy {point.reward_mean:.3f} ± {point.reward_se:.3f}, gold "
                       f"{point.gold_reward_mean if point.gold_reward_mean is not None else float('nan'):.3f}, KL {point.kl:.3f} nats "
                       f"({point.prompts} prompts x {point.samples}, {point.seconds:.1f} s)")

    def save(self, out_dir: str | Path, stage: str, config, fingerprints: dict[str, str], metrics: dict) -> Path:
        """Save the trained policy as a Hugging Face causal-LM checkpoint with ``run.json`` (main process).

        The checkpoint is the causal LM alone (LoRA adapters merged), so it loads with ``AutoModelForCausalLM``. A shared
        value head is written beside it, ``value_head/value_head.safetensors`` (``weight [1, H]``,
        ``bias [1]``), which nothing in the pipeline loads; the separate value model is not saved.
        """
        path = Path(out_dir)
        if self.accelerator.is_main_process:
            # LoRA: (alpha / r) B A added into the base weights (in place: saving ends training)
            save_checkpoint(merge_lora(self.policy_model), self.tokenizer, out_dir, stage, config, fingerprints, metrics)
            wrapper = self.accelerator.unwrap_model(self.policy)
            if isinstance(wrapper, PolicyWithValueHead):
                (path / "value_head").mkdir(exist_ok=True)
                save_file({k: v.detach().cpu().contiguous() for k, v in wrapper.value_head.state_dict().items()},
                          str(path / "value_head" / "value_head.safetensors"))
                apply_umask(path / "value_head")
        self.accelerator.wait_for_everyone()
        return path

"""Stage 2, the reward model (paper section 3.5 "RM", eq. 1).

r(x, y) is a scalar head on the final token of prompt+completion. A batch element is one prompt
with its K ranked completions: one forward per completion, then all C(K, 2) pairs enter
:func:`trainers.losses.kwise_ranking_loss`. After training the head's bias is shifted so that
demonstrations score mean 0 ("so that the labeler demonstrations achieve a mean score of 0").
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from harness.config import RMConfig
from harness.models import last_token_index, token_scores
from harness.prompting import encode_pair, pad
from harness.records import Comparison, Demonstration
from trainers.common import batches, freeze_lower_layers, optimizer_and_schedule, padding_stats, save_checkpoint, seed_everything, train_epochs
from trainers.losses import kwise_ranking_loss
from trainers.tracking import Tracking, finish_tracking, make_accelerator


@dataclass
class RMResult:
    """Per-step train loss, held-out pairwise accuracy and the bias shift applied."""

    train_losses: list[float] = field(default_factory=list)
    val_accuracy: float = float("nan")
    val_pairs: int = 0
    val_correct_per_pair: list[float] = field(default_factory=list)  # 1 / 0 / 0.5 (tie) per pair
    bias_shift: float = 0.0


class RewardModelTrainer:
    """Trains a scalar-head model (:func:`harness.models.load_scalar_model`) on ranked comparisons."""

    def __init__(self, cfg: RMConfig, model, tokenizer, train: list[Comparison], val: list[Comparison],
                 chat_template: str = "auto", seed: int = 0, tracking: Tracking | None = None):
        if not train:
            raise ValueError("RewardModelTrainer: no training comparisons")
        self.cfg, self.tokenizer, self.chat_template, self.seed = cfg, tokenizer, chat_template, seed
        self.train_set, self.val_set = train, val
        self.accelerator: Accelerator = make_accelerator(tracking, gradient_accumulation_steps=cfg.grad_accum,
                                                         mixed_precision=cfg.mixed_precision)
        self.n_trainable = freeze_lower_layers(model, cfg.trainable_layers)
        steps = cfg.epochs * -(-len(train) // (cfg.batch_size * cfg.grad_accum))
        opt, sched = optimizer_and_schedule(model, cfg.lr, steps, cfg.warmup_ratio, head=model.score, head_lr=cfg.head_lr)
        self.model, self.opt, self.sched = self.accelerator.prepare(model, opt, sched)
        self.total_steps = steps

    def score(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        """r(x, y) for aligned lists of prompts and completions: ``[N]`` (reward units)."""
        enc = [encode_pair(p, c, self.tokenizer, self.cfg.max_length, self.cfg.max_prompt_length, self.chat_template).input_ids
               for p, c in zip(prompts, completions)]
        ids, attn = pad(enc, self.tokenizer.pad_token_id)
        dev = self.accelerator.device
        scores = token_scores(self.model, ids.to(dev), attn.to(dev))
        return scores[torch.arange(len(enc), device=dev), last_token_index(attn.to(dev))]

    def _batch_rewards(self, comps: list[Comparison]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards ``[B, K_max]`` sorted best first and their validity mask, one forward for all completions."""
        k_max = max(len(c.completions) for c in comps)
        prompts = [c.prompt for c in comps for _ in c.ranking]
        texts = [c.completions[i] for c in comps for i in c.ranking]
        flat = self.score(prompts, texts)
        rewards = torch.zeros(len(comps), k_max, device=flat.device)
        valid = torch.zeros(len(comps), k_max, dtype=torch.bool, device=flat.device)
        pos = 0
        for b, c in enumerate(comps):
            k = len(c.ranking)
            rewards[b, :k], valid[b, :k] = flat[pos : pos + k], True
            pos += k
        return rewards, valid

    @torch.no_grad()
    def evaluate(self, comps: list[Comparison] | None = None) -> tuple[float, list[float]]:
        """Pairwise accuracy on held-out comparisons: share of ranked pairs with r_w > r_l (ties 0.5).

        Returns ``(accuracy, per-pair outcomes)``; accuracy is NaN with no comparisons.
        """
        comps = self.val_set if comps is None else comps
        self.model.eval()
        outcomes: list[float] = []
        for chunk in batches(comps, self.cfg.batch_size):
            rewards, valid = self._batch_rewards(chunk)
            for b in range(len(chunk)):
                r = rewards[b][valid[b]]
                for i in range(len(r)):
                    for j in range(i + 1, len(r)):
                        outcomes.append(1.0 if r[i] > r[j] else 0.5 if r[i] == r[j] else 0.0)
        self.model.train()
        return (sum(outcomes) / len(outcomes) if outcomes else float("nan")), outcomes

    def sequence_lengths(self, comp: Comparison) -> list[int]:
        """Tokens of each ranked (prompt + completion) sequence of ``comp``, as :meth:`score` encodes them."""
        return [len(encode_pair(comp.prompt, comp.completions[i], self.tokenizer, self.cfg.max_length, self.cfg.max_prompt_length,
                                self.chat_template).input_ids) for i in comp.ranking]

    def train(self, log_path: str | Path | None = None) -> RMResult:
        """Train for ``cfg.epochs``, logging ``{step, loss, accuracy, tokens, padded_tokens, lr}``; then evaluate on val.

        With ``group_by_length`` a comparison's length is its longest sequence (all of a batch's
        sequences are padded together). Trackers, if any, are closed at the end.
        """
        seed_everything(self.seed)
        result = RMResult()
        seq_lengths = {id(c): self.sequence_lengths(c) for c in self.train_set}

        def loss_fn(chunk: list[Comparison]):
            loss, n_pairs, n_correct = kwise_ranking_loss(*self._batch_rewards(chunk))
            return loss, {"accuracy": (n_correct / n_pairs).item(), **padding_stats([n for c in chunk for n in seq_lengths[id(c)]])}

        result.train_losses = train_epochs(
            self.accelerator, self.model, self.opt, self.sched, self.train_set, batch_size=self.cfg.batch_size,
            epochs=self.cfg.epochs, total_steps=self.total_steps, max_grad_norm=self.cfg.max_grad_norm,
            rng=random.Random(self.seed), loss_fn=loss_fn, desc="RM", log_path=log_path,
            lengths=[max(seq_lengths[id(c)]) for c in self.train_set] if self.cfg.group_by_length else None)
        result.val_accuracy, result.val_correct_per_pair = self.evaluate()
        result.val_pairs = len(result.val_correct_per_pair)
        finish_tracking(self.accelerator)
        return result

    @torch.no_grad()
    def normalize_to_demonstrations(self, demos: list[Demonstration]) -> float:
        """Subtract the demonstrations' mean reward from the head bias; returns the shift applied.

        Afterwards ``mean r(x, y_demo) == 0`` on ``demos`` (paper section 3.5). Pairwise
        accuracy is unchanged: every reward moves by the same constant.
        """
        if not demos:
            return 0.0
        self.model.eval()
        rewards = torch.cat([self.score([d.prompt for d in chunk], [d.completion for d in chunk]) for chunk in batches(demos, self.cfg.batch_size)])
        shift = rewards.mean().item()
        self.accelerator.unwrap_model(self.model).score.bias -= shift
        self.model.train()
        return shift

    def save(self, out_dir: str | Path, config, fingerprints: dict[str, str], metrics: dict) -> Path:
        """Save the reward model as a Hugging Face token-classification checkpoint with ``run.json``."""
        model = self.accelerator.unwrap_model(self.model)
        return save_checkpoint(model, self.tokenizer, out_dir, "rm", config, fingerprints, metrics)

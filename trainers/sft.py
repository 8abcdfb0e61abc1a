"""Stage 1, supervised fine-tuning (paper section 3.5 "SFT").

Next-token cross-entropy on completion tokens only (prompt tokens are masked), AdamW with warmup
and cosine decay, under ``accelerate`` so the same loop runs on CPU, one GPU or several.

Checkpoint selection: every ``eval_steps`` optimiser steps (default: each epoch's end) the
current weights are a candidate, scored by validation loss and, with a selection reward model,
by the mean RM score of greedy responses to the validation prompts. The paper selects by RM
score ("our SFT models overfit on validation loss after 1 epoch; however, we find that training
for more epochs helps both the RM score and human preference ratings", section 3.5);
``select_by=loss`` picks the lowest validation loss, ``last`` the final weights.

Options (``SFTConfig``): ``lora`` trains peft LoRA adapters instead of every weight and merges them
into the saved checkpoint; ``residual_dropout`` trains with that dropout probability (paper
appendix C.1: 0.2) while the saved config keeps the model's own; ``group_by_length`` batches
demonstrations of similar length (each logged step records ``tokens`` and ``padded_tokens``); ``trainable_layers``
trains only the top blocks, so the SFT model keeps the base model's lower layers (PPO's frozen trunk is then shared
with judges trained from the base, :mod:`trainers.frozen_trunk`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_model, save_model

from harness.config import SFTConfig
from harness.models import add_lora, merge_lora, with_dropout
from harness.prompting import EncodedPair, encode_pair, pad
from harness.records import Demonstration, Prompt
from trainers.checkpointing import state_root
from trainers.common import (
    LoopSpec,
    StepHook,
    batches,
    freeze_lower_layers,
    head_can_skip_positions,
    optimizer_and_schedule,
    padding_stats,
    save_checkpoint,
    seed_everything,
    steps_per_epoch,
    train_epochs,
)
from trainers.losses import target_nll
from trainers.tracking import Tracking, finish_tracking, make_accelerator

SELECT_BY = ("rm_score", "loss", "last")


def collate_pairs(pairs: list[EncodedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad encoded pairs: ``input_ids``, ``attention_mask``, ``loss_mask`` all ``[B, T]``."""
    ids, attn = pad([p.input_ids for p in pairs], pad_id)
    loss_mask, _ = pad([p.completion_mask for p in pairs], 0)
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss_mask}


@dataclass
class SFTResult:
    """Where the checkpoint went and what was logged (per-step train loss, final val loss)."""

    out_dir: Path
    train_losses: list[float] = field(default_factory=list)
    val_loss_before: float = float("nan")
    val_loss: float = float("nan")  # of the selected weights
    selected_step: int = 0
    candidates: list[dict[str, float]] = field(default_factory=list)  # {step, val_loss[, val_rm_score]} per evaluation


class CheckpointSelector(StepHook):
    """Scores the weights every ``every`` steps and keeps the best candidate's weights on disk.

    Higher is better: ``rm_score`` (mean selection-RM reward, reward units), ``-val_loss``
    (nats/token), or the step for ``last``. The best weights go to ``best_dir/model.safetensors``
    (atomic rename) and are loaded back by :meth:`SFTTrainer.train` when training ends.
    """

    def __init__(self, trainer: SFTTrainer, every: int, best_dir: Path):
        self.trainer, self.every, self.best_dir = trainer, max(every, 1), best_dir
        self.best: float | None = None
        self.best_step = 0
        self.candidates: list[dict[str, float]] = []

    def after_step(self, step: int, last: bool) -> dict[str, float]:
        if not (last or step % self.every == 0):
            return {}
        t = self.trainer
        row = {"val_loss": t.evaluate()}
        if t.selection_rm is not None:
            row["val_rm_score"] = t.rm_score()
        self.candidates.append({"step": step, **row})
        metric = {"rm_score": row.get("val_rm_score"), "loss": -row["val_loss"], "last": float(step)}[t.cfg.select_by]
        if t.cfg.select_by != "last" and (self.best is None or metric > self.best):
            self.best, self.best_step = metric, step
            if t.accelerator.is_main_process:
                tmp = self.best_dir.with_name(self.best_dir.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                save_model(t.accelerator.unwrap_model(t.model), str(tmp / "model.safetensors"))
                shutil.rmtree(self.best_dir, ignore_errors=True)
                tmp.rename(self.best_dir)
            t.accelerator.wait_for_everyone()
        elif t.cfg.select_by == "last":
            self.best, self.best_step = metric, step
        return row

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "candidates": self.candidates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step = state.get("best"), state.get("best_step", 0)
        self.candidates = list(state.get("candidates", []))


class SFTTrainer:
    """Fine-tunes ``model`` on demonstrations. Construct, then :meth:`train`, then :meth:`save`.

    ``tracking`` (:func:`trainers.tracking.stage_tracking`) adds experiment trackers beside the
    JSONL log. Raises ``ValueError`` with no training demonstrations, and (from
    :func:`harness.models.dropout_fields`) for ``residual_dropout`` on an architecture without dropout.
    """

    def __init__(self, cfg: SFTConfig, model, tokenizer, train: list[Demonstration], val: list[Demonstration],
                 chat_template: str = "auto", seed: int = 0, selection_rm: tuple[Any, Any] | None = None,
                 tracking: Tracking | None = None):
        """``selection_rm`` is ``(reward_model, its_tokenizer)``, required when ``cfg.select_by == "rm_score"``;
        ``tracking`` starts experiment trackers (closed when training ends).

        Raises ``ValueError`` on an unknown ``select_by``, a missing selection RM, selection
        without validation demonstrations, or no training demonstrations.
        """
        if cfg.select_by not in SELECT_BY:
            raise ValueError(f"SFTTrainer: select_by={cfg.select_by!r}, expected one of {SELECT_BY}")
        if cfg.select_by == "rm_score" and selection_rm is None:
            raise ValueError("SFTTrainer: select_by=rm_score needs a selection reward model (selection_rm=...)")
        if cfg.select_by != "last" and not val:
            raise ValueError(f"SFTTrainer: select_by={cfg.select_by} needs validation demonstrations")
        self.cfg, self.tokenizer, self.seed, self.chat_template = cfg, tokenizer, seed, chat_template
        self.base_dropout: dict[str, float] = {}  # the model's own dropout config, restored in the saved checkpoint
        if cfg.residual_dropout is not None:
            model, self.base_dropout = with_dropout(model, cfg.residual_dropout)
        if cfg.lora.r > 0:
            if cfg.trainable_layers:
                raise ValueError(f"SFTTrainer: lora.r={cfg.lora.r} and trainable_layers={cfg.trainable_layers} are two ways to "
                                 "train part of the model; set one (trainable_layers=null with LoRA)")
            model = add_lora(model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
        freeze_lower_layers(model, cfg.trainable_layers)
        self.accelerator: Accelerator = make_accelerator(tracking, mixed_precision=cfg.mixed_precision,
                                                         step_scheduler_with_optimizer=False)
        encode = lambda d: encode_pair(d.prompt, d.completion, tokenizer, cfg.max_length, cfg.max_prompt_length, chat_template)  # noqa: E731
        self.train_pairs = [encode(d) for d in train]
        self.val_pairs = [encode(d) for d in val]
        self.val_prompts = [Prompt(d.id, d.prompt, d.source) for d in val]
        if not self.train_pairs:
            raise ValueError("SFTTrainer: no training demonstrations")
        self.epoch_steps = steps_per_epoch(len(self.train_pairs), cfg.batch_size, cfg.grad_accum, self.accelerator.num_processes)
        self.total_steps = cfg.epochs * self.epoch_steps
        opt, sched = optimizer_and_schedule(model, cfg.lr, self.total_steps, cfg.warmup_ratio, cfg.weight_decay)
        self._head_skips_prompt = head_can_skip_positions(model)
        self.model, self.opt, self.sched = self.accelerator.prepare(model, opt, sched)
        self.selection_rm = None
        if selection_rm is not None:
            self.selection_rm = (selection_rm[0].to(self.accelerator.device).eval().requires_grad_(False), selection_rm[1])

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean next-token cross-entropy over the completion tokens of ``batch`` (nats/token).

        Target t is predicted by the logits at position t - 1. ``start`` is the first position whose
        prediction any row of the batch counts (its earliest completion token minus one), so only
        positions ``start .. T - 2`` go through the LM head (``logits_to_keep``), as in PPO: with a 50k
        vocabulary the head is as large a matmul as all the blocks of a small model, and prompts are
        often as long as the completions. The loss and its gradient are the same as over every position.
        """
        dev = self.accelerator.device
        counted = batch["loss_mask"][:, 1:].any(0).nonzero()  # positions whose next token counts in some row
        start = int(counted[0, 0]) if self._head_skips_prompt and len(counted) else 0
        ids, attn, mask = (batch[k].to(dev) for k in ("input_ids", "attention_mask", "loss_mask"))
        if self._head_skips_prompt:
            keep = torch.arange(start, ids.shape[1] - 1, device=dev)
            logits = self.model(input_ids=ids, attention_mask=attn, logits_to_keep=keep).logits
        else:
            logits = self.model(input_ids=ids, attention_mask=attn).logits[:, :-1]
        return target_nll(logits, ids[:, start + 1:], mask[:, start + 1:])

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean completion-token loss on the validation demonstrations (nats/token; NaN if none)."""
        if not self.val_pairs:
            return float("nan")
        self.model.eval()
        total, count = 0.0, 0
        for chunk in batches(self.val_pairs, self.cfg.batch_size):
            b = collate_pairs(chunk, self.tokenizer.pad_token_id)
            n = int(b["loss_mask"][:, 1:].sum())
            total += self._loss(b).item() * n
            count += n
        self.model.train()
        return total / max(count, 1)

    @torch.no_grad()
    def rm_score(self) -> float:
        """Mean selection-RM reward of greedy responses to the validation prompts (reward units)."""
        from harness.generation import generate
        from harness.judging.reward_model import reward_scores

        policy = self.accelerator.unwrap_model(self.model)
        gens = generate(policy, self.tokenizer, self.val_prompts, "sft", {"max_new_tokens": self.cfg.selection_max_new_tokens},
                        batch_size=self.cfg.batch_size, max_prompt_length=self.cfg.max_prompt_length, chat_template=self.chat_template,
                        seed=self.seed)
        policy.train()
        rm, rm_tok = self.selection_rm
        scores = reward_scores(rm, rm_tok, [g.prompt for g in gens], [g.output for g in gens], max_length=self.cfg.max_length,
                               max_prompt_length=self.cfg.max_prompt_length, batch_size=self.cfg.batch_size, chat_template=self.chat_template)
        return sum(scores) / len(scores)

    def train(self, out_dir: str | Path, log_path: str | Path | None = None, resume: bool = False) -> SFTResult:
        """Run all epochs, evaluating selection candidates; end with the selected weights loaded.

        Writes per-step ``{step, loss, lr[, val_loss, val_rm_score]}`` lines to ``log_path``;
        training-state checkpoints go to ``<out_dir>_state`` every ``cfg.save_steps`` steps and
        ``resume=True`` continues from the newest one.
        """
        seed_everything(self.seed)
        result = SFTResult(Path(out_dir))
        result.val_loss_before = self.evaluate()
        root = state_root(out_dir)
        selector = CheckpointSelector(self, self.cfg.eval_steps or self.epoch_steps, root / "best")
        def loss_fn(chunk: list[EncodedPair]):
            return self._loss(collate_pairs(chunk, self.tokenizer.pad_token_id)), padding_stats([len(p.input_ids) for p in chunk])

        spec = LoopSpec(self.cfg.batch_size, self.cfg.grad_accum, self.cfg.epochs, self.cfg.max_grad_norm, self.cfg.save_steps,
                        self.cfg.keep_checkpoints, root, resume)
        result.train_losses = train_epochs(
            self.accelerator, self.model, self.opt, self.sched, self.train_pairs, spec, seed=self.seed,
            loss_fn=loss_fn, desc="SFT", log_path=log_path, hook=selector,
            lengths=[len(p.input_ids) for p in self.train_pairs] if self.cfg.group_by_length else None)
        result.candidates, result.selected_step = selector.candidates, selector.best_step
        if self.cfg.select_by != "last" and selector.best_step != self.total_steps:
            self.accelerator.wait_for_everyone()
            load_model(self.accelerator.unwrap_model(self.model), str(root / "best" / "model.safetensors"))
        result.val_loss = next(c["val_loss"] for c in selector.candidates if c["step"] == selector.best_step)
        finish_tracking(self.accelerator)
        return result

    def save(self, out_dir: str | Path, config, fingerprints: dict[str, str], metrics: dict) -> Path:
        """Save the fine-tuned policy as a plain Hugging Face causal-LM checkpoint with ``run.json`` (main process).

        LoRA adapters are merged into the base weights first (in place: the trainer's model has no
        adapters afterwards), so every later stage loads the checkpoint unchanged. With
        ``residual_dropout`` the saved config carries the model's own dropout values, not the
        SFT-time ones, so RM and PPO do not inherit SFT's dropout.
        """
        if self.accelerator.is_main_process:
            model = merge_lora(self.accelerator.unwrap_model(self.model))
            for name, value in self.base_dropout.items():
                setattr(model.config, name, value)
            save_checkpoint(model, self.tokenizer, out_dir, "sft", config, fingerprints, metrics)
        self.accelerator.wait_for_everyone()
        return Path(out_dir)

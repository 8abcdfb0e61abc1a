"""Stage 1, supervised fine-tuning (paper section 3.5 "SFT").

Next-token cross-entropy on completion tokens only (prompt tokens are masked), AdamW with warmup
and cosine decay, under ``accelerate`` so the same loop runs on CPU, one GPU or several.

Options (``SFTConfig``): ``lora`` trains peft LoRA adapters instead of every weight and merges them
into the saved checkpoint; ``residual_dropout`` trains with that dropout probability (paper
appendix C.1: 0.2) while the saved config keeps the model's own; ``group_by_length`` batches
demonstrations of similar length (each logged step records ``tokens`` and ``padded_tokens``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from harness.config import SFTConfig
from harness.models import add_lora, merge_lora, with_dropout
from harness.prompting import EncodedPair, encode_pair, pad
from harness.records import Demonstration
from trainers.common import batches, optimizer_and_schedule, padding_stats, save_checkpoint, seed_everything, train_epochs
from trainers.losses import lm_loss
from trainers.tracking import Tracking, finish_tracking, make_accelerator


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
    val_loss: float = float("nan")


class SFTTrainer:
    """Fine-tunes ``model`` on demonstrations. Construct, then :meth:`train`, then :meth:`save`.

    ``tracking`` (:func:`trainers.tracking.stage_tracking`) adds experiment trackers beside the
    JSONL log. Raises ``ValueError`` with no training demonstrations, and (from
    :func:`harness.models.dropout_fields`) for ``residual_dropout`` on an architecture without dropout.
    """

    def __init__(self, cfg: SFTConfig, model, tokenizer, train: list[Demonstration], val: list[Demonstration],
                 chat_template: str = "auto", seed: int = 0, tracking: Tracking | None = None):
        self.cfg, self.tokenizer, self.seed = cfg, tokenizer, seed
        self.base_dropout: dict[str, float] = {}  # the model's own dropout config, restored in the saved checkpoint
        if cfg.residual_dropout is not None:
            model, self.base_dropout = with_dropout(model, cfg.residual_dropout)
        if cfg.lora.r > 0:
            model = add_lora(model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
        self.accelerator: Accelerator = make_accelerator(tracking, gradient_accumulation_steps=cfg.grad_accum,
                                                         mixed_precision=cfg.mixed_precision)
        encode = lambda d: encode_pair(d.prompt, d.completion, tokenizer, cfg.max_length, cfg.max_prompt_length, chat_template)  # noqa: E731
        self.train_pairs = [encode(d) for d in train]
        self.val_pairs = [encode(d) for d in val]
        if not self.train_pairs:
            raise ValueError("SFTTrainer: no training demonstrations")
        steps = cfg.epochs * -(-len(self.train_pairs) // (cfg.batch_size * cfg.grad_accum))
        opt, sched = optimizer_and_schedule(model, cfg.lr, steps, cfg.warmup_ratio, cfg.weight_decay)
        self.model, self.opt, self.sched = self.accelerator.prepare(model, opt, sched)
        self.total_steps = steps

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        dev = self.accelerator.device
        logits = self.model(input_ids=batch["input_ids"].to(dev), attention_mask=batch["attention_mask"].to(dev)).logits
        return lm_loss(logits, batch["input_ids"].to(dev), batch["loss_mask"].to(dev))

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

    def train(self, out_dir: str | Path, log_path: str | Path | None = None) -> SFTResult:
        """Run all epochs; write per-step ``{step, loss, tokens, padded_tokens, lr}`` lines to ``log_path``
        (and to the trackers, which are closed at the end). Returns losses."""
        seed_everything(self.seed)
        result = SFTResult(Path(out_dir))
        result.val_loss_before = self.evaluate()

        def loss_fn(chunk: list[EncodedPair]):
            return self._loss(collate_pairs(chunk, self.tokenizer.pad_token_id)), padding_stats([len(p.input_ids) for p in chunk])

        result.train_losses = train_epochs(
            self.accelerator, self.model, self.opt, self.sched, self.train_pairs, batch_size=self.cfg.batch_size,
            epochs=self.cfg.epochs, total_steps=self.total_steps, max_grad_norm=self.cfg.max_grad_norm,
            rng=random.Random(self.seed), loss_fn=loss_fn, desc="SFT", log_path=log_path,
            lengths=[len(p.input_ids) for p in self.train_pairs] if self.cfg.group_by_length else None)
        result.val_loss = self.evaluate()
        finish_tracking(self.accelerator)
        return result

    def save(self, out_dir: str | Path, config, fingerprints: dict[str, str], metrics: dict) -> Path:
        """Save the fine-tuned policy as a plain Hugging Face causal-LM checkpoint with ``run.json``.

        LoRA adapters are merged into the base weights first (in place: the trainer's model has no
        adapters afterwards), so every later stage loads the checkpoint unchanged. With
        ``residual_dropout`` the saved config carries the model's own dropout values, not the
        SFT-time ones, so RM and PPO do not inherit SFT's dropout.
        """
        model = merge_lora(self.accelerator.unwrap_model(self.model))
        for name, value in self.base_dropout.items():
            setattr(model.config, name, value)
        return save_checkpoint(model, self.tokenizer, out_dir, "sft", config, fingerprints, metrics)

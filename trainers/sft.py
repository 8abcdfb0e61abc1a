"""Stage 1, supervised fine-tuning (paper section 3.5 "SFT").

Next-token cross-entropy on completion tokens only (prompt tokens are masked), AdamW with warmup
and cosine decay, under ``accelerate`` so the same loop runs on CPU, one GPU or several.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from harness.config import SFTConfig
from harness.prompting import EncodedPair, encode_pair, pad
from harness.records import Demonstration
from trainers.common import batches, optimizer_and_schedule, save_checkpoint, seed_everything, train_epochs
from trainers.losses import lm_loss


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
    """Fine-tunes ``model`` on demonstrations. Construct, then :meth:`train`."""

    def __init__(self, cfg: SFTConfig, model, tokenizer, train: list[Demonstration], val: list[Demonstration],
                 chat_template: str = "auto", seed: int = 0):
        self.cfg, self.tokenizer, self.seed = cfg, tokenizer, seed
        self.accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum, mixed_precision=cfg.mixed_precision)
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
        """Run all epochs; write per-step ``{step, loss, lr}`` lines to ``log_path``. Returns losses."""
        seed_everything(self.seed)
        result = SFTResult(Path(out_dir))
        result.val_loss_before = self.evaluate()
        result.train_losses = train_epochs(
            self.accelerator, self.model, self.opt, self.sched, self.train_pairs, batch_size=self.cfg.batch_size,
            epochs=self.cfg.epochs, total_steps=self.total_steps, max_grad_norm=self.cfg.max_grad_norm,
            rng=random.Random(self.seed), loss_fn=lambda chunk: (self._loss(collate_pairs(chunk, self.tokenizer.pad_token_id)), {}),
            desc="SFT", log_path=log_path)
        result.val_loss = self.evaluate()
        return result

    def save(self, out_dir: str | Path, config, fingerprints: dict[str, str], metrics: dict) -> Path:
        """Save the fine-tuned policy as a Hugging Face checkpoint with ``run.json``."""
        model = self.accelerator.unwrap_model(self.model)
        return save_checkpoint(model, self.tokenizer, out_dir, "sft", config, fingerprints, metrics)

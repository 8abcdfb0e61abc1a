"""Pieces every trainer shares: seeding, optimiser + cosine schedule, atomic checkpoint save."""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from harness.runinfo import write_run_info
from trainers.tracking import log_step


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def optimizer_and_schedule(model: torch.nn.Module, lr: float, total_steps: int, warmup_ratio: float, weight_decay: float = 0.0,
                           head: torch.nn.Module | None = None, head_lr: float | None = None):
    """AdamW with linear warmup then cosine decay to 0 (paper section 3.5: cosine lr decay).

    With ``head`` and ``head_lr``, the head's parameters get their own learning rate (a freshly
    initialised reward head needs a larger step than the pretrained blocks under it).
    """
    head_ids = {id(p) for p in head.parameters()} if head is not None and head_lr else set()
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids], "lr": lr}]
    if head_ids:
        groups.append({"params": [p for p in head.parameters() if p.requires_grad], "lr": head_lr})
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    warmup = math.ceil(warmup_ratio * total_steps)
    return opt, get_cosine_schedule_with_warmup(opt, warmup, max(total_steps, 1))


def freeze_lower_layers(model: torch.nn.Module, trainable_layers: int | None) -> int:
    """Freeze the embeddings and all but the top ``trainable_layers`` transformer blocks.

    The blocks are the model's ``nn.ModuleList`` of ``config.num_hidden_layers`` modules; heads and
    final norms stay trainable. ``None`` or 0 leaves everything trainable. Returns the number of
    trainable parameters. Backward then stops at the lowest trainable block, which is what makes
    reward-model training affordable on a CPU. Raises ``ValueError`` if no block list is found.
    """
    if not trainable_layers:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    n = model.config.num_hidden_layers
    blocks = next((m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n), None)
    if blocks is None:
        raise ValueError(f"freeze_lower_layers: no list of {n} blocks in {type(model).__name__}")
    model.get_input_embeddings().requires_grad_(False)
    for block in list(blocks)[: max(n - trainable_layers, 0)]:
        block.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_checkpoint(
    model, tokenizer, out_dir: str | Path, stage: str, config: Any, data_fingerprints: dict[str, str], metrics: dict[str, Any]
) -> Path:
    """Save a Hugging Face checkpoint (safetensors + tokenizer) and ``run.json`` to ``out_dir``.

    Written to ``<out_dir>.tmp`` first and renamed, so ``out_dir`` is either complete or absent.
    An existing ``out_dir`` is replaced.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    write_run_info(tmp, stage, config, data_fingerprints, metrics)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def batches(items: list, size: int, rng: random.Random | None = None) -> list[list]:
    """Split ``items`` into consecutive batches of ``size`` (shuffled first if ``rng`` is given)."""
    items = list(items)
    if rng is not None:
        rng.shuffle(items)
    return [items[i : i + size] for i in range(0, len(items), size)]


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, mega_batch_mult: int = 50) -> list[list[int]]:
    """Indices of one epoch in batches of similar length, so padding to the batch maximum wastes little.

    Shuffle all indices; cut them into mega-batches of ``mega_batch_mult * batch_size``; sort each
    mega-batch by length, longest first; cut it into batches of ``batch_size``; shuffle the batches.
    The scheme of transformers' ``LengthGroupedSampler`` (mega-batches keep the epoch random, the
    final shuffle keeps long batches from all coming first). Every index appears exactly once, and
    there are ``ceil(len(lengths) / batch_size)`` batches, as with random batching.
    ``lengths``: tokens per example. Raises ``ValueError`` if ``batch_size`` or ``mega_batch_mult`` < 1.
    """
    if batch_size < 1 or mega_batch_mult < 1:
        raise ValueError(f"length_grouped_batches: batch_size ({batch_size}) and mega_batch_mult ({mega_batch_mult}) must be >= 1")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = mega_batch_mult * batch_size
    out: list[list[int]] = []
    for start in range(0, len(order), mega):
        group = sorted(order[start : start + mega], key=lambda i: -lengths[i])  # stable: ties keep the shuffled order
        out += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    rng.shuffle(out)
    return out


def epoch_batches(items: list, batch_size: int, rng: random.Random, lengths: Sequence[int] | None = None) -> list[list]:
    """One epoch of ``items`` in batches: length-grouped when ``lengths`` (one per item) is given, else shuffled.

    Raises ``ValueError`` if ``lengths`` does not have one entry per item.
    """
    if lengths is None:
        return batches(items, batch_size, rng)
    if len(lengths) != len(items):
        raise ValueError(f"epoch_batches: {len(lengths)} lengths for {len(items)} items")
    return [[items[i] for i in b] for b in length_grouped_batches(lengths, batch_size, rng)]


def padding_stats(lengths: Sequence[int]) -> dict[str, int]:
    """Real and padded token counts of one right-padded batch of sequences of ``lengths`` tokens.

    ``{"tokens": sum(lengths), "padded_tokens": len(lengths) * max(lengths)}``; the second is what
    the forward pass computes on.
    """
    return {"tokens": int(sum(lengths)), "padded_tokens": len(lengths) * int(max(lengths, default=0))}


def train_epochs(
    accelerator, model, opt, sched, items: list, *, batch_size: int, epochs: int, total_steps: int, max_grad_norm: float,
    rng: random.Random, loss_fn: Callable[[list], tuple[torch.Tensor, dict[str, float]]], desc: str,
    log_path: str | Path | None = None, lengths: Sequence[int] | None = None,
) -> list[float]:
    """The optimisation loop SFT and the RM share: shuffled batches, gradient accumulation (accelerate),
    gradient clipping, one log line ``{step, loss, **extras, lr}`` per optimiser step (JSONL and the
    accelerator's trackers, :func:`trainers.tracking.log_step`), a progress bar.

    ``loss_fn(batch)`` returns the batch's scalar loss and extra numbers to log. With ``lengths``
    (tokens per item) batches are length-grouped (:func:`length_grouped_batches`). Returns the loss
    of each optimiser step (the last micro-batch's, under accumulation).
    """
    losses: list[float] = []
    step = 0
    bar = tqdm(total=total_steps, desc=desc, disable=not accelerator.is_main_process)
    model.train()
    for _ in range(epochs):
        for chunk in epoch_batches(items, batch_size, rng, lengths):
            with accelerator.accumulate(model):
                loss, extras = loss_fn(chunk)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
                opt.step()
                sched.step()
                opt.zero_grad()
            if accelerator.sync_gradients:
                step += 1
                losses.append(loss.item())
                log_step(accelerator, log_path, {"step": step, "loss": loss.item(), **extras, "lr": sched.get_last_lr()[0]}, step)
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", **{k: f"{v:.2f}" for k, v in extras.items()})
    bar.close()
    return losses

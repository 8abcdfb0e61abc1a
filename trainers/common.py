"""Pieces every trainer shares: seeding, optimiser + cosine schedule, atomic checkpoint save."""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from harness.io import append_jsonl
from harness.runinfo import write_run_info


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# Device types with a fused AdamW kernel (torch.utils._foreach_utils._get_fused_kernels_supported_devices, torch 2.13).
_FUSED_ADAMW_DEVICES = {"cpu", "cuda", "xpu", "mps", "hpu"}


def adamw(groups: list[dict[str, Any]], **kwargs) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over ``groups``, with the fused kernel where torch has one for the parameters.

    Same update rule (Loshchilov & Hutter 2019); the fused kernel does one pass per tensor instead of
    about ten element-wise ops. Without ``fused``, torch runs a per-tensor Python loop on CPU (its
    ``foreach`` kernels are GPU-only), which took ~5x longer per step for a 51 M-parameter model on
    this project's 2-core machine (bench/README.md). transformers' Trainer, and so trl, also uses
    the fused kernel by default. torch checks support only at the first step, so it is checked here.
    """
    params = [p for g in groups for p in g["params"]]
    fused = all(p.is_floating_point() and p.device.type in _FUSED_ADAMW_DEVICES for p in params)
    return torch.optim.AdamW(groups, fused=fused or None, **kwargs)


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
    opt = adamw(groups, lr=lr, weight_decay=weight_decay)
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


def train_epochs(
    accelerator, model, opt, sched, items: list, *, batch_size: int, epochs: int, total_steps: int, max_grad_norm: float,
    rng: random.Random, loss_fn: Callable[[list], tuple[torch.Tensor, dict[str, float]]], desc: str,
    log_path: str | Path | None = None,
) -> list[float]:
    """The optimisation loop SFT and the RM share: shuffled batches, gradient accumulation (accelerate),
    gradient clipping, one log line ``{step, loss, **extras, lr}`` per optimiser step, a progress bar.

    ``loss_fn(batch)`` returns the batch's scalar loss and extra numbers to log. Returns the loss of
    each optimiser step (the last micro-batch's, under accumulation).
    """
    losses: list[float] = []
    step = 0
    bar = tqdm(total=total_steps, desc=desc, disable=not accelerator.is_main_process)
    model.train()
    for _ in range(epochs):
        for chunk in batches(items, batch_size, rng):
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
                if log_path:
                    append_jsonl(log_path, {"step": step, "loss": loss.item(), **extras, "lr": sched.get_last_lr()[0]})
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", **{k: f"{v:.2f}" for k, v in extras.items()})
    bar.close()
    return losses

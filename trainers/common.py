"""Pieces every trainer shares: seeding, optimiser + cosine schedule, atomic checkpoint save."""

from __future__ import annotations

import contextlib
import inspect
import math
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from harness.io import apply_umask
from harness.runinfo import write_run_info
from trainers.tracking import log_step


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


def head_can_skip_positions(model: torch.nn.Module) -> bool:
    """Whether ``model.forward`` takes ``logits_to_keep`` (transformers causal LMs: an int or an index
    tensor of positions that go through the LM head). A peft wrapper's signature does not show it, so
    LoRA models answer ``False`` and take the full-width path."""
    return "logits_to_keep" in inspect.signature(type(model).forward).parameters


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
    apply_umask(tmp)  # safetensors writes weights 0600
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


def padding_stats(lengths: Sequence[int]) -> dict[str, int]:
    """Real and padded token counts of one right-padded batch of sequences of ``lengths`` tokens.

    ``{"tokens": sum(lengths), "padded_tokens": len(lengths) * max(lengths)}``; the second is what
    the forward pass computes on.
    """
    return {"tokens": int(sum(lengths)), "padded_tokens": len(lengths) * int(max(lengths, default=0))}


def plan_epoch(n_items: int, batch_size: int, grad_accum: int, num_processes: int, rng: random.Random | None,
               lengths: Sequence[int] | None = None) -> list[list[list[list[int]]]]:
    """One epoch as optimiser steps: ``plan[s][p]`` lists the micro-batches (item indices) process ``p`` runs in step ``s``.

    The items are shuffled once (``rng``) and cut into micro-batches of ``batch_size`` (the last
    may be short) or, with ``lengths`` (tokens per item), grouped by length
    (:func:`length_grouped_batches`, needs ``rng``); the micro-batches are dealt round-robin to
    ``num_processes`` processes and ``grad_accum`` rounds make one optimiser step (the epoch's last
    step may have fewer). So 2 processes with accumulation A see exactly the micro-batches 1
    process with accumulation 2A sees, in the same steps: the invariant behind the distributed
    test. If the micro-batch count is not a multiple of ``num_processes`` the first micro-batches
    are repeated to fill the last round, as ``torch.utils.data.DistributedSampler`` pads.
    Raises ``ValueError`` on an empty epoch or a ``lengths`` of the wrong size.
    """
    if n_items < 1:
        raise ValueError("plan_epoch: no items")
    if lengths is not None:
        if len(lengths) != n_items:
            raise ValueError(f"plan_epoch: {len(lengths)} lengths for {n_items} items")
        micro = length_grouped_batches(lengths, batch_size, rng or random.Random(0))
    else:
        order = list(range(n_items))
        if rng is not None:
            rng.shuffle(order)
        micro = [order[i : i + batch_size] for i in range(0, n_items, batch_size)]
    micro += [micro[i % len(micro)] for i in range(-len(micro) % num_processes)]
    rounds = [micro[i : i + num_processes] for i in range(0, len(micro), num_processes)]
    steps = [rounds[i : i + grad_accum] for i in range(0, len(rounds), grad_accum)]
    return [[[r[p] for r in step] for p in range(num_processes)] for step in steps]


def steps_per_epoch(n_items: int, batch_size: int, grad_accum: int, num_processes: int = 1) -> int:
    """Optimiser steps in one epoch of :func:`plan_epoch`."""
    micro = -(-n_items // batch_size)
    return -(-(-(-micro // num_processes)) // grad_accum)


class StepHook:
    """Called after every optimiser step of :func:`train_epochs` (e.g. SFT's checkpoint selection).

    ``after_step`` returns extra numbers for that step's log line; the state round-trips through
    training-state checkpoints so a resumed run continues where the killed one stopped.
    """

    def after_step(self, step: int, last: bool) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@dataclass
class LoopSpec:
    """How :func:`train_epochs` batches, clips, logs and checkpoints (the parts every trainer config shares)."""

    batch_size: int
    grad_accum: int
    epochs: int
    max_grad_norm: float
    save_steps: int = 0  # write a training-state checkpoint every N optimiser steps (0: never)
    keep_checkpoints: int = 1
    state_dir: Path | None = None  # where those checkpoints go (trainers.checkpointing.state_root)
    resume: bool = False  # continue from the newest checkpoint under state_dir, if any


def train_epochs(
    accelerator, model, opt, sched, items: list, spec: LoopSpec, *, seed: int,
    loss_fn: Callable[[list], tuple[torch.Tensor, dict[str, float]]], desc: str,
    log_path: str | Path | None = None, hook: StepHook | None = None, lengths: Sequence[int] | None = None,
) -> list[float]:
    """The optimisation loop SFT and the RM share.

    Each optimiser step runs this process's micro-batches from :func:`plan_epoch` (gradients
    synchronised across processes only on the last, each loss divided by the micro-batch
    count, so the step's gradient is the mean over all micro-batches of all processes), clips,
    steps the optimiser and the lr schedule, and logs ``{step, loss, **extras, lr}`` (means over
    micro-batches and processes) from the main process. With ``spec.save_steps`` it writes
    training-state checkpoints; with ``spec.resume`` it first restores the newest one and replays
    the seeded data order up to it, so the resumed run takes exactly the steps the killed one had
    left. ``loss_fn(batch)`` returns the micro-batch's scalar loss and extra numbers to log (the
    token counts in :data:`SUMMED` are added up, the rest averaged); log lines also go to the
    accelerator's trackers (:func:`trainers.tracking.log_step`). With ``lengths`` (tokens per item)
    micro-batches are length-grouped. Returns the loss of every optimiser step (including steps
    restored from a checkpoint).
    """
    from trainers.checkpointing import latest_state, load_state, save_state, trim_log

    rng = random.Random(seed)
    plans = [plan_epoch(len(items), spec.batch_size, spec.grad_accum, accelerator.num_processes, rng, lengths) for _ in range(spec.epochs)]
    total = sum(len(p) for p in plans)
    losses: list[float] = []
    done = 0
    if spec.resume and spec.state_dir is not None and (ckpt := latest_state(spec.state_dir)) is not None:
        state = load_state(accelerator, ckpt)
        done, losses = state["step"], list(state["losses"])
        if hook is not None:
            hook.load_state_dict(state.get("hook", {}))
        if accelerator.is_main_process:
            trim_log(log_path, done)
    bar = tqdm(total=total, initial=done, desc=desc, disable=not accelerator.is_main_process)
    model.train()
    step = 0
    for plan in plans:
        for micro_batches in plan:
            step += 1
            if step <= done:
                continue
            mine = micro_batches[accelerator.process_index]
            step_losses, step_extras = [], []
            for i, idx in enumerate(mine):
                sync = i == len(mine) - 1
                with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                    loss, extras = loss_fn([items[j] for j in idx])
                    accelerator.backward(loss / len(mine))
                step_losses.append(loss.detach().float())
                step_extras.append(extras)
            accelerator.clip_grad_norm_(model.parameters(), spec.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad()
            row = _reduce_step(accelerator, torch.stack(step_losses).mean(), step_extras)
            losses.append(row["loss"])
            if hook is not None:
                row.update(hook.after_step(step, step == total))
            log_step(accelerator, log_path, {"step": step, **row, "lr": sched.get_last_lr()[0]}, step)
            if spec.save_steps and spec.state_dir is not None and (step % spec.save_steps == 0 or step == total):
                save_state(accelerator, spec.state_dir, step, {"losses": losses, "hook": hook.state_dict() if hook else {}},
                           keep=spec.keep_checkpoints)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items()})
    bar.close()
    return losses


SUMMED = ("tokens", "padded_tokens")  # step totals; every other logged number is a mean


def _reduce_step(accelerator, loss: torch.Tensor, extras: list[dict[str, float]]) -> dict[str, float]:
    """One optimiser step's log numbers over its micro-batches and all processes: ``loss`` and the
    extras averaged, the token counts in :data:`SUMMED` added up."""
    keys = list(extras[0])
    means = torch.tensor([float(loss)] + [sum(e[k] for e in extras) / len(extras) for k in keys if k not in SUMMED],
                         device=accelerator.device)
    sums = torch.tensor([float(sum(e[k] for e in extras)) for k in keys if k in SUMMED] or [0.0], device=accelerator.device)
    if accelerator.num_processes > 1:
        means, sums = accelerator.reduce(means, reduction="mean"), accelerator.reduce(sums, reduction="sum")
    out = dict(zip(["loss"] + [k for k in keys if k not in SUMMED], means.tolist()))
    out.update(zip([k for k in keys if k in SUMMED], sums.tolist()))
    return out

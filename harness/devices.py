"""Where models run and in which dtype: the one ``device`` / ``dtype`` setting of every app, resolved here.

``device``: ``auto`` (CUDA if available, else Apple MPS, else CPU), ``cpu``, ``cuda``, ``cuda:<index>`` or
``mps``. ``dtype``: ``auto`` (bfloat16 on a CUDA device with native bf16 support, else float32), ``float32``,
``bfloat16`` or ``float16``. :func:`resolve` turns the two settings into a :class:`Placement` (logged once per
process) and :func:`place` puts a model there; every model the evaluation and the simulated labeler load goes
through :func:`place` (policies, reward-model judges, the NLI detector, Detoxify), and lm-eval scores the
policy where it was placed. The trainers run where accelerate puts them: :func:`for_training` makes that
the same device. :func:`recording_placements` lets a test see every placement.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from harness.errors import ConfigError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "cuda:<index>", "mps")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _this_process_cuda_index() -> int:
    """``LOCAL_RANK`` under ``accelerate launch`` / ``torchrun`` (each process its own GPU, as accelerate assigns
    them), else the current CUDA device."""
    rank = os.environ.get("LOCAL_RANK", "")
    return int(rank) if rank.isdigit() else torch.cuda.current_device()


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(setting: str, key: str = "device") -> torch.device:
    """The ``torch.device`` a ``device`` setting names on this machine, with its index (``cuda:0``, ``mps:0``, ``cpu``).

    ``auto``: this process's CUDA device if ``torch.cuda.is_available()``, else ``mps:0`` if
    ``torch.backends.mps.is_available()``, else ``cpu``. ``cuda`` is this process's CUDA device: ``cuda:<LOCAL_RANK>``
    under ``accelerate launch`` (the GPU accelerate gives the process), else the current one. Raises
    :class:`~harness.errors.ConfigError` naming ``key`` for a setting that is none of :data:`DEVICES`, or a
    device this machine does not have (no CUDA, an index >= the device count, no MPS).
    """
    s = str(setting).strip().lower()
    if s == "auto":
        s = "cuda" if torch.cuda.is_available() else "mps" if _mps() else "cpu"
    kind, _, index = s.partition(":")
    if s == "cpu":
        return torch.device("cpu")
    if kind == "cuda" and (not index or index.isdigit()):
        count = _cuda_count()
        if not count:
            raise ConfigError(f"{key}={setting}: this machine has no CUDA device (torch {torch.__version__}, built for CUDA "
                              f"{torch.version.cuda or 'none'}); use {key}=auto or {key}=cpu")
        i = int(index) if index else _this_process_cuda_index()
        if i >= count:
            raise ConfigError(f"{key}={setting}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", i)
    if s in ("mps", "mps:0"):
        if not _mps():
            raise ConfigError(f"{key}={setting}: Apple MPS is not available here; use {key}=auto or {key}=cpu")
        return torch.device("mps", 0)
    raise ConfigError(f"{key}={setting!r} is not a device: use one of {', '.join(DEVICES)}")


def resolve_dtype(setting: str, device: torch.device, key: str = "dtype") -> torch.dtype:
    """The weights' dtype a ``dtype`` setting names for models on ``device``.

    ``auto``: ``torch.bfloat16`` on a CUDA device whose hardware supports it natively
    (``torch.cuda.is_bf16_supported(including_emulation=False)``: Ampere and newer), else ``torch.float32``
    (CPU, MPS, older GPUs). Explicit: ``float32``, ``bfloat16``, ``float16``. Raises
    :class:`~harness.errors.ConfigError` naming ``key`` for another value, or ``bfloat16`` on a CUDA device
    without native bf16 (emulated bf16 would be slower than float32).
    """
    s = str(setting).strip().lower()
    if s == "auto":
        native = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else torch.float32
    if s not in DTYPES:
        raise ConfigError(f"{key}={setting!r} is not a dtype: use one of auto, {', '.join(DTYPES)}")
    if s == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ConfigError(f"{key}=bfloat16: {torch.cuda.get_device_name(device)} has no native bfloat16; "
                          f"use {key}=float16 or {key}=float32")
    return DTYPES[s]


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``torch.bfloat16`` or its name ``"bfloat16"`` (one of :data:`DTYPES`) -> ``torch.bfloat16``. Raises
    ``KeyError`` for another name."""
    return DTYPES[dtype] if isinstance(dtype, str) else dtype


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Placement:
    """A resolved device and weights dtype (:func:`resolve`); ``settings`` are the config values it came from."""

    device: torch.device
    dtype: torch.dtype
    settings: tuple[str, str] = ("auto", "auto")

    def describe(self) -> dict[str, str]:
        """``{"device": "cuda:0", "dtype": "bfloat16"}``: what ``run.json`` and ``results/evals.json`` record."""
        return {"device": str(self.device), "dtype": dtype_name(self.dtype)}


CPU = Placement(torch.device("cpu"), torch.float32, ("cpu", "float32"))
"""Where a loader puts a model when its caller names no placement (the trainers move theirs with accelerate)."""

_logged: set[Placement] = set()


def resolve(device: str = "auto", dtype: str = "auto", prefix: str = "") -> Placement:
    """The :class:`Placement` of the ``device`` and ``dtype`` settings (:func:`resolve_device`,
    :func:`resolve_dtype`; errors name ``<prefix>device`` / ``<prefix>dtype``). Logged at INFO the first time
    a process resolves each placement, so an app states once where its models run."""
    dev = resolve_device(device, f"{prefix}device")
    placement = Placement(dev, resolve_dtype(dtype, dev, f"{prefix}dtype"), (str(device), str(dtype)))
    if placement not in _logged:
        _logged.add(placement)
        log.info("models run on %s in %s (device=%s, dtype=%s)", placement.device, dtype_name(placement.dtype), device, dtype)
    return placement


_recorders: list[list[tuple[torch.nn.Module, torch.device, torch.dtype]]] = []


def place(model: torch.nn.Module, device: torch.device | str, dtype: torch.dtype | str) -> torch.nn.Module:
    """``model`` (in place, and returned) with every parameter and buffer on ``device`` and every floating-point
    parameter in ``dtype`` (a ``torch.dtype`` or its name, :func:`as_dtype`).

    Only parameters are cast: floating buffers keep their dtype, because transformers keeps some in
    float32 on purpose (the RoPE ``inv_freq`` of Llama-type models, which ``from_pretrained(dtype=...)``
    also leaves in float32; bfloat16 frequencies would blur positions). Casting assigns ``param.data``, so
    tied weights stay one tensor. Each call is reported to the active :func:`recording_placements`.
    """
    device, dtype = torch.device(device), as_dtype(dtype)
    model.to(device)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point() and p.dtype != dtype:
                p.data = p.data.to(dtype)
    for seen in _recorders:
        seen.append((model, device, dtype))
    return model


@contextlib.contextmanager
def recording_placements() -> Iterator[list[tuple[torch.nn.Module, torch.device, torch.dtype]]]:
    """Within the block, every :func:`place` call appends ``(model, device, dtype)`` to the yielded list
    (the models are kept alive until the list is dropped). For tests that check every model was placed."""
    seen: list[tuple[torch.nn.Module, torch.device, torch.dtype]] = []
    _recorders.append(seen)
    try:
        yield seen
    finally:
        _recorders.remove(seen)


def for_training(device: torch.device, key: str = "device") -> None:
    """Make accelerate, which places every trainer's models, use ``device``: ``cpu`` is accelerate's
    ``cpu=True``; otherwise accelerate's own choice (the process's CUDA device or MPS) must be ``device``.

    accelerate's state is one per process and fixed when first created, so this creates it; a state that
    already exists (an earlier stage in this process) is only checked. Raises
    :class:`~harness.errors.ConfigError` naming ``key`` when accelerate runs elsewhere (e.g. ``cuda:1`` in a
    single process: accelerate uses the current CUDA device; select the GPU with ``CUDA_VISIBLE_DEVICES``).
    """
    from accelerate import PartialState

    got = PartialState(cpu=device.type == "cpu").device
    same_index = device.index is None or (got.index if got.index is not None else
                                          (torch.cuda.current_device() if got.type == "cuda" else 0)) == device.index
    if got.type != device.type or not same_index:
        raise ConfigError(f"{key}={device}: the trainers run where accelerate puts them, which in this process is {got}; "
                          f"use {key}=auto, or choose the GPU with CUDA_VISIBLE_DEVICES and {key}=cuda")

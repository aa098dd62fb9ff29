"""Device choice and mixed precision."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch

from facelab.core.choices import DeviceName, Precision
from facelab.core.errors import InputError

Resolved = Literal["fp32", "bf16", "fp16"]


def resolve_device(name: DeviceName | str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available to this PyTorch build")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps: Apple MPS is not available")
    return torch.device(name, local_rank) if name == "cuda" else torch.device(name)


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX; read from /proc/cpuinfo on Linux).
    Without it PyTorch's bf16 convolutions take a slow path: on an AVX2-only AMD EPYC (2026-12-02) a 64-channel
    3x3 convolution of a batch of 16 64 px maps took 10.6 s under bf16 autocast against 0.11 s in fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(device: torch.device, precision: Precision | str) -> Resolved:
    """The precision a run uses: ``auto`` is bf16 where the device computes it natively (a CPU with AVX-512 BF16
    or AMX, a CUDA GPU that supports it), else fp32; any other choice as asked."""
    if precision != "auto":
        return "bf16" if precision == "bf16" else "fp16" if precision == "fp16" else "fp32"
    if device.type == "cpu":
        return "bf16" if native_bf16() else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def slow_bf16(device: torch.device, precision: Precision | str) -> bool:
    """bf16 asked for on a CPU without native bf16 (many times slower than fp32 there: ``native_bf16``)."""
    return device.type == "cpu" and resolve_precision(device, precision) == "bf16" and not native_bf16()


def inference_precision(device: torch.device, precision: Precision | str) -> Precision | str:
    """The precision a trained model predicts in: its training precision, but fp32 where that is bf16 on a CPU
    without native bf16 (a model trained elsewhere in bf16: the weights are fp32, and fp32 is many times faster
    there)."""
    return "fp32" if slow_bf16(device, precision) else precision


def precision_note(device: torch.device, precision: Precision | str) -> str:
    """The precision as a run reports it: ``auto`` with what it resolved to; a warning for a slow bf16."""
    used = resolve_precision(device, precision)
    note = f"{used} (auto)" if precision == "auto" else used
    if slow_bf16(device, precision):
        note += (" (warning: this CPU has no native bf16 and runs it many times slower than fp32: "
                 "--precision auto or fp32)")
    return note


def autocast_dtype(precision: Resolved | str) -> torch.dtype | None:
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision | str) -> Iterator[None]:
    dtype = autocast_dtype(resolve_precision(device, precision))
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def grad_scaler(device: torch.device, precision: Precision | str) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling against underflow; bf16 has fp32's range and does not."""
    if resolve_precision(device, precision) != "fp16":
        return None
    return torch.amp.GradScaler(device.type)

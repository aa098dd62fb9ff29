"""Device choice and mixed precision."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from facelab.core.choices import DeviceName, Precision
from facelab.core.errors import InputError


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


def autocast_dtype(precision: Precision | str) -> torch.dtype | None:
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision | str) -> Iterator[None]:
    dtype = autocast_dtype(precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def grad_scaler(device: torch.device, precision: Precision | str) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling against underflow; bf16 has fp32's range and does not."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)

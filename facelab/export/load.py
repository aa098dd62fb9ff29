"""One loader for every kind of model merge and live can run: a facelab model folder (PyTorch) or an
ONNX file (.dfm or facelab's own interface).

Every kind satisfies ``FaceSwapper``: faces go in as a float32 batch (B, 3, R, R), RGB, 0..1, framed as
``face_type`` at ``resolution``; out come (swapped face (B,3,R,R), its mask (B,1,R,R), and with
``dst_mask`` the model's mask of the input face (B,1,R,R) or None), float32 on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from torch import Tensor

from facelab.core.errors import InputError
from facelab.train.inference import load_swap_model


class FaceSwapper(Protocol):
    @property
    def resolution(self) -> int: ...

    @property
    def face_type(self) -> str: ...

    @property
    def model_id(self) -> str: ...  # names this exact model in provenance records (sha256 of its weights)

    def swap(self, dst_faces: Tensor, dst_mask: bool = True) -> tuple[Tensor, Tensor, Tensor | None]: ...


def load_model(path: Path, device: str = "auto", morph_value: float = 1.0, threads: int | None = None) -> FaceSwapper:
    """A model folder (PyTorch) or an ONNX file (facelab.export.runtime.DfmModel: ``morph_value`` feeds
    DeepFaceLab's AMP files; ``threads``: its CPU threads, else onnxruntime's default of one per core; a
    PyTorch model's threads are the caller's ``torch.set_num_threads``); InputError naming the problem otherwise."""
    path = Path(path)
    if path.is_dir():
        return load_swap_model(path, device)
    if not path.exists():
        raise InputError("model not found: give a model folder or a .dfm / .onnx file", path)
    if path.suffix.lower() in (".dfm", ".onnx"):
        from facelab.export.runtime import DfmModel  # onnxruntime is imported only for ONNX files

        return DfmModel(path, device, morph_value, threads)
    raise InputError("not a model: give a model folder or a .dfm / .onnx file", path)

"""``DfmModel``: an ONNX file (a .dfm, DeepFaceLab's or facelab's, or facelab's own interface) run by
onnxruntime as a FaceSwapper (facelab.export.load).

The file's interface is read and checked on load (facelab.export.contract): another interface is a
one-line InputError. onnxruntime's CUDA provider runs it when present (and the device allows), else the
CPU. DeepFaceLab's AMP files take a ``morph_value:0`` input: it is fed ``morph_value`` (default 1.0: the
full src identity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor

from facelab.core.digest import file_sha256
from facelab.core.errors import InputError
from facelab.core.types import F32
from facelab.export.contract import (
    DFM_INPUT,
    DFM_MORPH,
    METADATA_FACE_TYPE,
    ONNX_INPUT,
    Interface,
    TensorInfo,
    check_output,
    read_interface,
)
from facelab.export.framing import DFL_FRAMING
from facelab.face.align import FACE_TYPE_GEOMETRY

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def providers_for(device: str) -> list[str]:
    """onnxruntime providers for a facelab device name: CUDA first when available (auto, cuda), else CPU."""
    available = ort.get_available_providers()
    if device in ("auto", "cuda") and CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise InputError("--device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    if device not in ("auto", "cpu", "mps"):
        raise InputError(f"unknown device {device!r}: expected auto, cpu, cuda or mps")
    return [CPU]


def _infos(items: list[Any]) -> list[TensorInfo]:
    return [TensorInfo(str(i.name), tuple(i.shape), str(i.type)) for i in items]


class DfmModel:
    """An ONNX face-swap model on onnxruntime (see the module docstring)."""

    def __init__(self, path: Path, device: str = "auto", morph_value: float = 1.0, threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise InputError("model file not found", path)
        if not 0.0 <= morph_value <= 1.0:
            raise InputError(f"morph value must be within 0..1, got {morph_value}")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the CLI reports what matters in one line
        # intra-op threads block instead of spinning between and after operators: the pipeline's other stages
        # (live: detection, merge) share the cores (docs/export.md: an int8 quick96 .dfm on two threads under
        # load 34.0 -> 25.7 ms a face, fp32 89.4 -> 87.0)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:  # live gives the model its share of the cores (default: one per core)
            options.intra_op_num_threads = max(1, threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers_for(device))
        except InputError:
            raise
        except Exception as e:  # onnxruntime raises its own exception types for a bad file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"not a loadable ONNX model ({first[:200]})", path) from None
        try:
            self.interface: Interface = read_interface(_infos(self.session.get_inputs()),
                                                       _infos(self.session.get_outputs()))
        except InputError as e:
            raise InputError(str(e), path) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if self.interface.format == "dfm":
            self._face_type = DFL_FRAMING  # the tools that run .dfm files read no face type: DFL's whole face
        else:
            ft = meta.get(METADATA_FACE_TYPE)
            if ft not in FACE_TYPE_GEOMETRY:
                raise InputError(f"facelab ONNX file without a known face type in its metadata ({ft!r})", path)
            self._face_type = str(ft)
        self.path = path
        self.morph_value = float(morph_value)
        self._model_id = file_sha256(path)
        self.providers = list(self.session.get_providers())

    @property
    def resolution(self) -> int:
        return self.interface.resolution

    @property
    def face_type(self) -> str:
        return self._face_type

    @property
    def model_id(self) -> str:
        return self._model_id

    def swap(self, dst_faces: Tensor, dst_mask: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """As FaceSwapper.swap: faces (B,3,R,R) RGB 0..1 -> (swapped face, its mask, dst's own mask)."""
        x = dst_faces.detach().to("cpu", torch.float32).numpy()
        step = self.interface.fixed_batch or max(1, len(x))
        parts = [self._run(x[i:i + step]) for i in range(0, len(x), step)]
        face, mask, own = (torch.from_numpy(np.concatenate(p)) for p in zip(*parts, strict=True))
        return face, mask, own if dst_mask else None

    def _run(self, x: F32) -> tuple[F32, F32, F32]:
        pad = (self.interface.fixed_batch or len(x)) - len(x)  # a file with a fixed batch: fill the last one
        if pad:
            x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
        if self.interface.format == "dfm":
            feed = {DFM_INPUT: np.ascontiguousarray(x[:, ::-1].transpose(0, 2, 3, 1))}  # NCHW RGB -> NHWC BGR
            if self.interface.morph:
                feed[DFM_MORPH] = np.array([self.morph_value], dtype=np.float32)
            own, face, mask = self.session.run(None, feed)
            check_output([own.shape, face.shape, mask.shape], self.interface, len(x))
            out = (face.transpose(0, 3, 1, 2)[:, ::-1], mask.transpose(0, 3, 1, 2), own.transpose(0, 3, 1, 2))
        else:
            face, mask, own = self.session.run(None, {ONNX_INPUT: np.ascontiguousarray(x)})
            check_output([face.shape, mask.shape, own.shape], self.interface, len(x))
            out = (face, mask, own)
        n = len(x) - pad
        face, mask, own = (np.ascontiguousarray(a[:n], dtype=np.float32) for a in out)
        return face, mask, own

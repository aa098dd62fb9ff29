"""Write a trained model's generator as ONNX: DeepFaceLab's .dfm interface or facelab's own (contract).

The exporter is PyTorch's TorchScript-based ``torch.onnx.export(dynamo=False)``, on purpose: it writes
opset 12 and IR version 7, what DeepFaceLab itself writes and well within what onnxruntime 1.15.1
(DeepFaceLive's) loads, with no extra dependency. The dynamo exporter needs ``onnxscript`` and writes
opset >= 18 with IR version 10, which onnxruntime 1.15 refuses without a down-conversion step; nothing
in these generators (convolutions, dense layers, pixel shuffle, sigmoid) needs its newer operators.
docs/export.md has the comparison.

The generator is wrapped in a module that does the layout and colour conversion (NHWC BGR for .dfm,
NCHW RGB for facelab's) and, for a .dfm of a model trained in another framing than DeepFaceLab's whole
face, the fixed resampling between the two framings (facelab.export.framing). ``fp16`` runs the generator
in half precision (weights and compute) while the file's inputs and outputs stay float32, so the
contract holds. ``quantize="int8"`` then quantizes the fp32 graph's generator (facelab.export.quantize).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from facelab import __version__
from facelab.core.atomic import write_bytes_atomic
from facelab.core.errors import InputError
from facelab.export.contract import (
    DFM_INPUT,
    DFM_OUTPUTS,
    METADATA_FACE_TYPE,
    METADATA_FORMAT,
    METADATA_MODEL_ID,
    METADATA_VERSION,
    ONNX_INPUT,
    ONNX_OUTPUTS,
    OPSET,
    ExportFormat,
)
from facelab.export.framing import DFL_FRAMING, dfl_resolution, resampling
from facelab.export.options import ExportOptions
from facelab.export.quantize import calibration_inputs, default_calibration, quantize_int8
from facelab.train.inference import SwapModel, load_swap_model
from facelab.train.nets import AutoEncoder


class _Resample(nn.Module):
    """A fixed separable resampling between two framings: out = rows @ img @ cols.T (and the 0/1 map of
    the output pixels the input covers)."""

    def __init__(self, from_type: str, from_size: int, to_type: str, to_size: int) -> None:
        super().__init__()
        rows, cols, inside = resampling(from_type, from_size, to_type, to_size)
        self.rows: Tensor
        self.cols_t: Tensor
        self.inside: Tensor
        self.register_buffer("rows", torch.from_numpy(rows.astype(np.float32)))
        self.register_buffer("cols_t", torch.from_numpy(np.ascontiguousarray(cols.T).astype(np.float32)))
        self.register_buffer("inside", torch.from_numpy(inside.astype(np.float32)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(torch.matmul(self.rows, x), self.cols_t)


class _Generator(nn.Module):
    """The autoencoder's merge path (swap face, its mask, the input's own mask) in float32 or float16."""

    def __init__(self, ae: AutoEncoder, fp16: bool) -> None:
        super().__init__()
        self.ae = ae.half() if fp16 else ae.float()
        self.dtype = torch.float16 if fp16 else torch.float32

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        face, mask, own = self.ae.predict(x.to(self.dtype), False, True)
        assert own is not None
        return face.float(), mask.float(), own.float()


class DfmGraph(nn.Module):
    """in_face (N,R,R,3) BGR -> (out_face_mask, out_celeb_face, out_celeb_face_mask), NHWC, DFL framing."""

    def __init__(self, ae: AutoEncoder, face_type: str, resolution: int, dfm_resolution: int, fp16: bool) -> None:
        super().__init__()
        self.gen = _Generator(ae, fp16)
        same = face_type == DFL_FRAMING and dfm_resolution == resolution
        self.to_model = None if same else _Resample(DFL_FRAMING, dfm_resolution, face_type, resolution)
        self.to_dfm = None if same else _Resample(face_type, resolution, DFL_FRAMING, dfm_resolution)

    def forward(self, in_face: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = in_face.permute(0, 3, 1, 2).flip(1)  # NHWC BGR -> NCHW RGB
        xm = x if self.to_model is None else self.to_model(x)
        face, mask, own = self.gen(xm)
        if self.to_dfm is not None:
            inside = self.to_dfm.inside
            face = (self.to_dfm(face) * inside + x * (1.0 - inside)).clamp(0.0, 1.0)
            mask = (self.to_dfm(mask) * inside).clamp(0.0, 1.0)
            own = (self.to_dfm(own) * inside).clamp(0.0, 1.0)
        return own.permute(0, 2, 3, 1), face.flip(1).permute(0, 2, 3, 1), mask.permute(0, 2, 3, 1)


class OnnxGraph(nn.Module):
    """facelab's interface: face (N,3,R,R) RGB in the model's framing -> (swap, swap_mask, dst_mask)."""

    def __init__(self, ae: AutoEncoder, fp16: bool) -> None:
        super().__init__()
        self.gen = _Generator(ae, fp16)

    def forward(self, face: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        swap, mask, own = self.gen(face)
        return swap, mask, own


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: ExportFormat
    resolution: int  # the file's crop side
    face_type: str  # the framing the file takes
    model_resolution: int
    model_face_type: str
    fp16: bool
    bytes: int
    seconds: float
    model_id: str  # of the source weights
    quantize: str = "none"  # "int8": the generator quantized (facelab.export.quantize)
    calibration: Path | None = None  # the aligned faces int8 was calibrated on


def build_graph(model: SwapModel, fmt: ExportFormat, fp16: bool = False) -> tuple[nn.Module, int, str]:
    """The module that is exported, the file's crop side and its framing."""
    ae = model.ae.to("cpu").eval()
    if fmt == "dfm":
        res = model.resolution if model.face_type == DFL_FRAMING else dfl_resolution(model.face_type,
                                                                                     model.resolution)
        return DfmGraph(ae, model.face_type, model.resolution, res, fp16).eval(), res, DFL_FRAMING
    return OnnxGraph(ae, fp16).eval(), model.resolution, model.face_type


def export_model(model_dir: Path, out: Path, options: ExportOptions | None = None,
                 progress: Callable[[str], None] | None = None) -> ExportResult:
    """Export the model folder's generator to ``out`` (written atomically); see the module docstring."""
    t0 = time.perf_counter()
    opts = options or ExportOptions()
    fmt, fp16 = opts.format, opts.fp16
    out = Path(out)
    if out.is_dir():
        raise InputError("the output is a folder: give a file name (e.g. model.dfm)", out)
    if not out.parent.is_dir():
        raise InputError("the output's folder does not exist", out.parent)
    if opts.quantize != "none" and fp16:
        raise InputError("--quantize int8 and --fp16 exclude each other: int8 is quantized from the fp32 graph")
    calibration = None
    if opts.quantize == "int8":
        calibration = opts.calibration or default_calibration(Path(model_dir))
        if calibration is None:
            raise InputError("--quantize int8 calibrates on aligned dst faces: give --calibration FOLDER (no "
                             "dst/aligned folder beside the model's)", model_dir)
    say = progress or (lambda _: None)
    say("loading the model")
    model = load_swap_model(Path(model_dir), "cpu")
    graph, res, framing = build_graph(model, fmt, fp16)
    say("tracing the generator")
    data = to_onnx_bytes(graph, res, fmt)
    if calibration is not None:
        say("quantizing")
        data = quantize_int8(data, calibration_inputs(calibration, framing, res, fmt), fmt)
    proto = onnx.load_from_string(data)
    meta = {METADATA_FORMAT: fmt, METADATA_FACE_TYPE: framing, METADATA_MODEL_ID: model.model_id,
            METADATA_VERSION: __version__}
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    say("writing")
    write_bytes_atomic(out, data)
    return ExportResult(out, fmt, res, framing, model.resolution, model.face_type, fp16, len(data),
                        round(time.perf_counter() - t0, 3), model.model_id, opts.quantize, calibration)


def to_onnx_bytes(graph: nn.Module, resolution: int, fmt: ExportFormat) -> bytes:
    """Trace ``graph`` with the TorchScript exporter at OPSET, batch dynamic, with the format's names."""
    if fmt == "dfm":
        sample = torch.rand(1, resolution, resolution, 3)
        names_in, names_out = [DFM_INPUT], list(DFM_OUTPUTS)
    else:
        sample = torch.rand(1, 3, resolution, resolution)
        names_in, names_out = [ONNX_INPUT], list(ONNX_OUTPUTS)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice (see module docstring)
        path = Path(tmp) / "graph.onnx"
        torch.onnx.export(graph, (sample,), path, dynamo=False, opset_version=OPSET, input_names=names_in,
                          output_names=names_out, dynamic_axes={n: {0: "N"} for n in names_in + names_out},
                          do_constant_folding=True)
        return path.read_bytes()

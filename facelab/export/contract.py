"""The two ONNX interfaces facelab writes and runs, in one place: DeepFaceLab's .dfm and facelab's own.

.dfm (read from DeepFaceLab's export, DeepFaceLive's DFMModel and FaceFusion's deep_swapper; names and
shapes are facts of the format):
- input ``in_face:0``: float32 [N, R, R, 3], NHWC, BGR, 0..1, batch dynamic, R fixed;
  optionally ``morph_value:0``: float32 [1], 0..1 (DeepFaceLab's AMP models);
- outputs, consumed by position: ``out_face_mask:0`` [N,R,R,1] (the model's mask of the input face),
  ``out_celeb_face:0`` [N,R,R,3] (the swapped face, BGR 0..1), ``out_celeb_face_mask:0`` [N,R,R,1] (its
  mask), all float32 0..1;
- faces framed as DeepFaceLab's whole face (facelab.export.framing).

facelab's own (``--format onnx``): input ``face`` float32 [N, 3, R, R], NCHW, RGB, 0..1, in the model's own
face type; outputs ``swap`` [N,3,R,R], ``swap_mask`` [N,1,R,R], ``dst_mask`` [N,1,R,R]. Its face type and
the model it came from are in the file's metadata (``METADATA_*``); docs/export.md describes both.

Both are written at ``OPSET`` (DeepFaceLab's own; ``QUANT_OPSET`` when quantized to int8) and must load in
onnxruntime 1.15.1, the version DeepFaceLive ships: IR version <= ``MAX_IR_VERSION``, opset <= ``MAX_OPSET``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from facelab.core.errors import InputError

ExportFormat = Literal["dfm", "onnx"]
EXPORT_FORMATS: tuple[str, ...] = ("dfm", "onnx")
Quantization = Literal["none", "int8"]

OPSET = 12
QUANT_OPSET = 13  # an int8 file (--quantize int8): per-channel QuantizeLinear/DequantizeLinear need opset 13
MAX_IR_VERSION = 9  # onnxruntime 1.15
MAX_OPSET = 19

DFM_INPUT = "in_face:0"
DFM_MORPH = "morph_value:0"
DFM_OUTPUTS = ("out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0")
DFM_OUTPUT_CHANNELS = (1, 3, 1)

ONNX_INPUT = "face"
ONNX_OUTPUTS = ("swap", "swap_mask", "dst_mask")
ONNX_OUTPUT_CHANNELS = (3, 1, 1)

METADATA_FORMAT = "facelab.format"  # "dfm" or "onnx"
METADATA_FACE_TYPE = "facelab.face_type"  # the framing of the faces the file takes
METADATA_MODEL_ID = "facelab.source_model_id"  # sha256 of the weights it was exported from
METADATA_VERSION = "facelab.version"

FLOAT = "tensor(float)"


@dataclass(frozen=True)
class TensorInfo:
    """What onnxruntime says of an input or output: name, shape (int, or a name / None when dynamic), type."""

    name: str
    shape: tuple[int | str | None, ...]
    type: str


@dataclass(frozen=True)
class Interface:
    """A recognised interface: its format, the crop side, and whether it takes DFL's morph input."""

    format: ExportFormat
    resolution: int
    morph: bool
    fixed_batch: int | None  # a batch size the file insists on (None: dynamic)


def _side(shape: tuple[int | str | None, ...], channels_last: bool) -> int | None:
    if len(shape) != 4:
        return None
    h, w = (shape[1], shape[2]) if channels_last else (shape[2], shape[3])
    return h if isinstance(h, int) and h == w and h > 0 else None


def _batch(shape: tuple[int | str | None, ...]) -> int | None:
    return shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None


def _describe(items: list[TensorInfo]) -> str:
    return ", ".join(f"{t.name} {list(t.shape)}" for t in items) or "none"


def read_interface(inputs: list[TensorInfo], outputs: list[TensorInfo]) -> Interface:
    """The interface of an ONNX file from its inputs and outputs (InputError naming what does not match)."""
    want = (f"expected a .dfm ({DFM_INPUT} [N,R,R,3] float32, optionally {DFM_MORPH}; three outputs "
            f"[N,R,R,1], [N,R,R,3], [N,R,R,1]) or facelab's ({ONNX_INPUT} [N,3,R,R] float32; outputs "
            f"{', '.join(ONNX_OUTPUTS)}), got inputs {_describe(inputs)}; outputs {_describe(outputs)}")
    if not inputs:
        raise InputError("this ONNX file has another interface: " + want)
    first = inputs[0]
    if first.name == DFM_INPUT:
        res = _side(first.shape, channels_last=True)
        extra = inputs[1:]
        morph = len(extra) == 1 and extra[0].name == DFM_MORPH and extra[0].type == FLOAT
        ok = (res is not None and first.shape[3] == 3 and first.type == FLOAT and (not extra or morph)
              and _outputs_match(outputs, res, DFM_OUTPUT_CHANNELS, channels_last=True))
        if ok and res is not None:
            return Interface("dfm", res, morph, _batch(first.shape))
    elif first.name == ONNX_INPUT:
        res = _side(first.shape, channels_last=False)
        ok = (res is not None and first.shape[1] == 3 and first.type == FLOAT and len(inputs) == 1
              and [o.name for o in outputs] == list(ONNX_OUTPUTS)
              and _outputs_match(outputs, res, ONNX_OUTPUT_CHANNELS, channels_last=False))
        if ok and res is not None:
            return Interface("onnx", res, False, _batch(first.shape))
    raise InputError("this ONNX file has another interface: " + want)


def _outputs_match(outputs: list[TensorInfo], res: int, channels: tuple[int, ...], *, channels_last: bool) -> bool:
    """Each output float32 of rank 4 whose known dimensions are (N, R, R, C) (NHWC) or (N, C, R, R); a
    dimension the file leaves symbolic is accepted here and checked on the first run (``check_output``)."""
    if len(outputs) != len(channels):
        return False
    for out, ch in zip(outputs, channels, strict=True):
        if out.type != FLOAT or len(out.shape) != 4:
            return False
        want = (res, res, ch) if channels_last else (ch, res, res)
        if any(isinstance(d, int) and d != w for d, w in zip(out.shape[1:], want, strict=True)):
            return False
    return True


def check_output(shapes: list[tuple[int, ...]], interface: Interface, batch: int) -> None:
    """InputError unless a run's outputs have the contract's shapes (for files with symbolic dimensions)."""
    r = interface.resolution
    chans = DFM_OUTPUT_CHANNELS if interface.format == "dfm" else ONNX_OUTPUT_CHANNELS
    want = [(batch, r, r, c) if interface.format == "dfm" else (batch, c, r, r) for c in chans]
    if [tuple(s) for s in shapes] != want:
        raise InputError(f"the model's outputs have shapes {[list(s) for s in shapes]}, expected "
                         f"{[list(w) for w in want]}")

"""int8 static quantization of an exported graph (``facelab export --quantize int8``), for CPUs.

onnxruntime.quantization's ``quantize_static`` in QDQ format: weights int8 per output channel, activations
uint8 per tensor with ranges calibrated (min/max) on real aligned faces cut as the file takes them
(``calibration_inputs``). Only the generator (the nodes under the exporter's ``/gen/`` scope: convolutions,
dense layers, activations, depth-to-space) is quantized, less its first convolution and its output layers
(``float_nodes``); the layout and colour conversion and a .dfm's fixed framing resampling in and out stay
float32, as do the file's inputs and outputs, so the interface is the contract's. onnxruntime fuses each
QuantizeLinear/DequantizeLinear pair around a convolution into one int8 convolution (QLinearConv), which on
CPUs with VNNI runs several times faster than float32 (docs/export.md has the figures).

Per-channel QuantizeLinear/DequantizeLinear need opset 13 (their ``axis`` attribute), so a quantized file is
written at ``QUANT_OPSET`` (IR version unchanged, 7): within what onnxruntime 1.15.1, DeepFaceLive's, loads.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import numpy_helper, version_converter

from facelab.core.errors import InputError
from facelab.core.types import F32
from facelab.export.contract import DFM_INPUT, ONNX_INPUT, QUANT_OPSET, ExportFormat
from facelab.face.align import convert_transform
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import read_face

CALIBRATION_FACES = 64  # faces spread over the calibration folder
GENERATOR_SCOPE = "/gen/"  # node names of the generator in the exported graph (DfmGraph.gen, OnnxGraph.gen)
_MOVES = ("DepthToSpace", "Reshape", "Transpose", "Identity")  # data movement between an output conv and its sigmoid


def default_calibration(model_dir: Path) -> Path | None:
    """The dst faces of the model's workspace, where `facelab swap` and the studio keep them
    (``WORKSPACE/dst/aligned`` beside ``WORKSPACE/model`` or ``WORKSPACE/models/NAME``); None if absent."""
    model_dir = Path(model_dir).absolute()
    for base in (model_dir.parent, model_dir.parent.parent):
        folder = base / "dst" / "aligned"
        if folder.is_dir():
            return folder
    return None


def calibration_inputs(folder: Path, face_type: str, resolution: int, fmt: ExportFormat,
                       count: int = CALIBRATION_FACES) -> F32:
    """Up to ``count`` aligned faces of ``folder`` (spread over it) re-cut to ``face_type`` at ``resolution``
    (edges repeated where the crop reaches past the aligned image), as the file's input: NHWC BGR for a .dfm,
    NCHW RGB for facelab's interface; float32 0..1."""
    folder = Path(folder)
    faces = scan_faces(folder).faces if folder.is_dir() else []
    if not faces:
        raise InputError("no aligned faces to calibrate the int8 model on (give --calibration FOLDER)", folder)
    picks = [faces[i] for i in np.linspace(0, len(faces) - 1, min(count, len(faces))).round().astype(int)]
    out = []
    for path, _ in picks:
        bgr, rec = read_face(path)
        mat = convert_transform(np.eye(3)[:2], rec.face_type, rec.size, face_type, resolution)
        out.append(cv2.warpAffine(bgr, mat, (resolution, resolution), flags=cv2.INTER_CUBIC,
                                  borderMode=cv2.BORDER_REPLICATE))
    x = np.stack(out).astype(np.float32) / 255.0
    if fmt == "dfm":
        return np.ascontiguousarray(x)  # NHWC BGR
    return np.ascontiguousarray(x[..., ::-1].transpose(0, 3, 1, 2))  # NCHW RGB


def _own_initializers(proto: onnx.ModelProto) -> None:
    """Replace each Identity of an initializer (the exporter shares equal weights, e.g. zero biases, that way)
    with a copy of the initializer: the quantizer fuses a convolution only when its bias is an initializer."""
    inits = {i.name: i for i in proto.graph.initializer}
    keep = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            array = numpy_helper.to_array(inits[node.input[0]]).copy()
            proto.graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
        else:
            keep.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(keep)


def float_nodes(graph: onnx.GraphProto) -> list[str]:
    """The nodes left in float: everything outside the generator (layout, colour, framing resampling), the
    generator's first convolution (it reads the image: quantizing its output cost 4-5x the error on faces
    unlike the calibration's, docs/export.md), and the output layers: each sigmoid and the convolution that
    feeds it (the face and the masks), with the data movement between them."""
    gen = [n for n in graph.node if n.name.startswith(GENERATOR_SCOPE)]
    keep = {n.name for n in graph.node if not n.name.startswith(GENERATOR_SCOPE)}
    convs = [n for n in gen if n.op_type == "Conv"]
    if convs:
        keep.add(convs[0].name)
    producer = {out: n for n in gen for out in n.output}
    for n in gen:
        if n.op_type != "Sigmoid":
            continue
        keep.add(n.name)
        feed = producer.get(n.input[0])
        while feed is not None and feed.op_type in _MOVES:  # e.g. the -d modifier's depth-to-space
            keep.add(feed.name)
            feed = producer.get(feed.input[0])
        if feed is not None and feed.op_type == "Conv":
            keep.add(feed.name)
    return [n.name for n in graph.node if n.name in keep]


def quantize_int8(data: bytes, inputs: F32, fmt: ExportFormat) -> bytes:
    """The exported fp32 graph ``data`` with its generator quantized to int8 (see the module docstring),
    calibrated on ``inputs`` (the file's input layout, one face per calibration run)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    name = DFM_INPUT if fmt == "dfm" else ONNX_INPUT

    class Faces(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no type hints
        def __init__(self) -> None:
            self.items: Iterator[F32] = iter(inputs)

        def get_next(self) -> dict[str, F32] | None:
            face = next(self.items, None)
            return None if face is None else {name: face[None]}

    proto = onnx.load_from_string(data)
    _own_initializers(proto)
    proto = version_converter.convert_version(proto, QUANT_OPSET)
    floats = float_nodes(proto.graph)
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # the quantizer logs advice (pre-processing, ...) on the root logger
        try:
            src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            onnx.save(proto, src)
            quantize_static(src, dst, Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=floats)
            return dst.read_bytes()
        finally:
            root.setLevel(level)

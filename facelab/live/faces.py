"""Per-frame face work of the live pipeline: align each tracked face as the model was trained (its face
type and resolution), run the model, and composite with merge's compositor.

Each face gets the face record extraction would write for it (facelab.face.align's transform from the
landmarks); the model's crop is cut with merge's ``model_transform`` of that record and the face goes back
through facelab.merge.compose.merge_frame, so a live frame is merged exactly as `facelab merge` merges an
extracted face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facelab import __version__
from facelab.core.types import F64, U8
from facelab.export.load import FaceSwapper
from facelab.face.align import face_transform
from facelab.faceset.record import MIN_SIZE as RECORD_MIN_SIZE
from facelab.faceset.record import FaceRecord, SourceInfo
from facelab.live.track import TrackedFace
from facelab.merge.compose import FaceInput, Prediction, crop_face, merge_frame, model_transform
from facelab.merge.masks import LEARNED_DST_MODES
from facelab.merge.options import MergeOptions
from facelab.train.device import resolve_precision
from facelab.train.inference import SwapModel


@dataclass(frozen=True)
class AlignedFace:
    record: FaceRecord  # the face as a merge face record: its transform is frame -> the model's crop
    crop: U8  # the model's input (R x R x 3 RGB)


def _rounded(points: F64) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points]


RECORD_FACE_TYPE = "whole_face"  # the face type of the records (a model's framing need not be a face type: .dfm)


def align_faces(frame: U8, faces: list[TrackedFace], index: int, face_type: str, resolution: int) -> list[AlignedFace]:
    """Each face cut from the frame as the model's input (``face_type``: the model's framing), with its record.

    The record is a whole_face record of the model's resolution, as extraction would make it from these
    landmarks; the crop's transform is merge's ``model_transform`` of it, so the compositor works from the
    same record and transform as for an extracted face (and a .dfm's framing, not a face type of records, works
    the same way)."""
    h, w = frame.shape[:2]
    size = max(resolution, RECORD_MIN_SIZE)
    out = []
    for k, face in enumerate(faces):
        mat = face_transform(face.landmarks, RECORD_FACE_TYPE, size)
        lm_face = face.landmarks @ mat[:, :2].T + mat[:, 2]
        lo, hi = face.landmarks.min(axis=0), face.landmarks.max(axis=0)
        record = FaceRecord(
            face_type=RECORD_FACE_TYPE, size=size, face_index=k, landmarks=_rounded(lm_face),
            source=SourceInfo(frame=f"{index:06d}", index=index, width=w, height=h),
            rect=(float(lo[0]), float(lo[1]), float(hi[0]) + 1.0, float(hi[1]) + 1.0),
            source_landmarks=_rounded(face.landmarks), image_to_face=[[float(v) for v in row] for row in mat],
            detector="live", landmarker="live", tool_version=__version__)
        out.append(AlignedFace(record, crop_face(frame, model_transform(record, face_type, resolution), resolution)))
    return out


def needs_dst_mask(opts: MergeOptions) -> bool:
    """Whether the mask mode uses the model's own mask of the dst face."""
    return opts.mask_mode in LEARNED_DST_MODES


def cpu_bf16(model: FaceSwapper, precision: str) -> bool:
    """Whether to run a PyTorch model on the CPU under bfloat16 autocast (``precision`` auto: where the CPU
    has native bf16). Measured on a quick96-size model: 1.6x less CPU per face, faces within 0.0035 of fp32's
    (docs/live.md). An ONNX model or a GPU model runs as it is."""
    device = getattr(model, "device", None)
    if not isinstance(device, torch.device) or device.type != "cpu":
        return False
    return resolve_precision(device, precision) == "bf16"


def freeze_model(model: FaceSwapper, trace: str, dst_mask: bool, bf16: bool) -> str:
    """Run a model folder's swap as a frozen TorchScript trace (``trace``: fused, with oneDNN Graph fusion;
    trace; off), traced on a random face of the model's size under the precision ``predict`` will use
    (SwapModel.freeze; it falls back to the eager model when tracing fails or the outputs differ). Measured
    on the quick96-size model in bf16, one thread (docs/live.md): 40.8 ms of CPU a face fused, 49.1 traced,
    55.6 eager. Returns what runs the model, for the statistics."""
    if not isinstance(model, SwapModel):
        return "onnxruntime" if trace == "off" else "onnxruntime (nothing to trace)"
    model.frozen = None
    if trace == "off":
        return "eager"
    r = model.resolution
    example = torch.rand((1, 3, r, r), generator=torch.Generator().manual_seed(0))
    why = model.freeze(example, dst_mask, bf16, "fused" if trace == "fused" else "trace")
    if why is not None:
        return f"eager ({why})"
    return "frozen trace, oneDNN fusion" if trace == "fused" else "frozen trace"


def predict(model: FaceSwapper, crops: list[U8], dst_mask: bool, bf16: bool = False) -> list[Prediction]:
    """The model's swapped faces and masks for a batch of crops (float32, HWC, as the compositor takes them);
    ``bf16``: under CPU bfloat16 autocast (see ``cpu_bf16``)."""
    if not crops:
        return []
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        face, mask, own = model.swap(x, dst_mask)
    f = face.clamp(0, 1).permute(0, 2, 3, 1).contiguous().numpy()
    m = mask[:, 0].contiguous().numpy()
    d = None if own is None else own[:, 0].contiguous().numpy()
    return [Prediction(f[i], m[i], None if d is None else d[i]) for i in range(len(crops))]


def composite(frame: U8, faces: list[AlignedFace], predictions: list[Prediction], face_type: str, resolution: int,
              opts: MergeOptions) -> tuple[U8, U8]:
    """The merged frame and its 8-bit mask (0 exactly where no pixel changed), by merge's compositor."""
    inputs = [FaceInput(f.record, p) for f, p in zip(faces, predictions, strict=True)]
    return merge_frame(frame, inputs, face_type, resolution, opts)

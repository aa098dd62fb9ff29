"""A DeepFaceLab face's metadata dict as facelab's FaceRecord.

The DFL keys (DFLIMG/DFLJPG.py): ``face_type`` (a name), ``landmarks`` (68 points in the aligned image),
``source_filename``, ``source_rect`` (l, t, r, b in the frame), ``source_landmarks`` (68 points in the
frame), ``image_to_face_mat`` (2x3, frame -> aligned), ``seg_ie_polys`` (XSeg polygons: ``{"polys":
[{"type": 1 include / 0 exclude, "pts": N x 2}]}``, older files a list of (type, pts) or the key
``ie_polys``), ``xseg_mask`` (an encoded PNG/JPEG of the applied XSeg mask, as a uint8 array),
``eyebrows_expand_mod`` (DFL's hull tweak; facelab has no such field and drops it).

Face types (facelab/face/align.py has facelab's crops). DFL and facelab fit different mean faces and pad
differently, so a DFL crop of a type is close to, not equal to, facelab's crop of that type; the pixels
are kept as they are, and landmarks and the frame -> face matrix are DFL's own, so they stay exact:

| DFL             | facelab     | note                                                      |
|-----------------|-------------|-----------------------------------------------------------|
| half_face       | half        |                                                           |
| midfull_face    | mid_full    |                                                           |
| full_face       | full        |                                                           |
| whole_face      | whole_face  |                                                           |
| head            | head        |                                                           |
| full_face_no_align | full     | approximate: DFL did not rotate the crop upright          |
| head_no_align   | head        | approximate: as above                                     |
| mark_only       | refused     | the file is a whole frame with landmarks, not a face crop |
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import cv2
import numpy as np
from pydantic import ValidationError

from facelab import __version__
from facelab.core.errors import MetadataError, printable, validation_message
from facelab.core.geometry import invert_affine, transform_points, umeyama
from facelab.core.types import F64
from facelab.face.pose import estimate_pose
from facelab.faceset.record import MAX_SIZE, MIN_SIZE, FaceRecord, Pose, SourceInfo, XSegPolygon
from facelab.faceset.xseg_mask import encode_mask
from facelab.media.metadata import detect_format, image_size

DETECTOR = "dfl-import"
LANDMARKER = "dfl-import"
MAX_POLYGONS = 256
MAX_POLYGON_POINTS = 4096
MAX_MASK_SIDE = 4096
MAX_FRAME_COORD = 1e6  # source landmarks and rects beyond this many pixels are not from a real frame

# DFL face type name -> (facelab face type, approximate?); facelib/FaceType.py names; ints are its IntEnum values
FACE_TYPES: dict[str, tuple[str, bool]] = {
    "half_face": ("half", False),
    "midfull_face": ("mid_full", False),
    "full_face": ("full", False),
    "whole_face": ("whole_face", False),
    "head": ("head", False),
    "full_face_no_align": ("full", True),
    "head_no_align": ("head", True),
}
_FACE_TYPE_INTS = {0: "half_face", 1: "midfull_face", 2: "full_face", 3: "full_face_no_align", 4: "whole_face",
                   5: "head", 6: "head_no_align", 10: "mark_only"}
DEFAULT_FACE_TYPE = "full_face"  # what DFL assumes when the key is missing
_FACE_SUFFIX = re.compile(r"^(.+)_(\d{1,6})$")  # DFL names faces <frame stem>_<face index>
_TRAILING_DIGITS = re.compile(r"(\d{1,15})$")


@dataclass
class Converted:
    record: FaceRecord
    dfl_face_type: str
    approximate: bool  # the face type is not rotation-aligned (DFL's *_no_align)
    notes: list[str] = field(default_factory=list)  # parts of the metadata that were dropped, and why


def _fail(message: str) -> MetadataError:
    return MetadataError(f"DFL metadata: {message}")


def _array(value: Any, shape: tuple[int, ...], name: str) -> F64:
    if value is None:
        raise _fail(f"no {name}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise _fail(f"{name} is not numeric") from None
    if arr.shape != shape:
        raise _fail(f"{name} has shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise _fail(f"{name} is not finite")
    return arr


def dfl_face_type(meta: dict[str, Any]) -> str:
    """The DFL face type name of the dict (DFL's default when it has none)."""
    value = meta.get("face_type", DEFAULT_FACE_TYPE)
    if type(value) is int:
        value = _FACE_TYPE_INTS.get(value, str(value))
    if not isinstance(value, str):
        raise _fail(f"face_type is a {type(value).__name__}")
    return value.lower()


def _frame_names(meta: dict[str, Any], face_name: str) -> tuple[str, int | None]:
    """(source frame stem, frame number from its digits or None)."""
    raw = meta.get("source_filename")
    stem = ""
    if isinstance(raw, str):
        stem = PurePosixPath(raw.replace("\\", "/")).stem
    if not stem or len(stem) > 255 or not stem.isprintable():
        stem = PurePosixPath(face_name).stem
        match = _FACE_SUFFIX.match(stem)
        stem = match.group(1) if match else stem
    digits = _TRAILING_DIGITS.search(stem)
    return stem, int(digits.group(1)) if digits else None


def _face_index(face_name: str) -> int:
    match = _FACE_SUFFIX.match(PurePosixPath(face_name).stem)
    return int(match.group(2)) if match else 0


def _geometry(meta: dict[str, Any], landmarks: F64) -> tuple[F64, F64]:
    """(source landmarks, image_to_face) with one derived from the other when a file lacks it."""
    has_src, has_mat = meta.get("source_landmarks") is not None, meta.get("image_to_face_mat") is not None
    if not has_src and not has_mat:
        raise _fail("neither source_landmarks nor image_to_face_mat (where in the frame was this face?)")
    if has_mat:
        mat = _array(meta["image_to_face_mat"], (2, 3), "image_to_face_mat")
    else:
        src = _array(meta["source_landmarks"], (68, 2), "source_landmarks")
        mat = np.asarray(umeyama(src, landmarks), dtype=np.float64)
    a, b, c, d = (float(v) for v in (mat[0, 0], mat[0, 1], mat[1, 0], mat[1, 1]))
    det = a * d - b * c  # Python floats: a huge claim overflows to inf quietly, refused below
    if not math.isfinite(det) or abs(det) < 1e-12:
        raise _fail("image_to_face_mat is not invertible")
    if has_src:
        src = _array(meta["source_landmarks"], (68, 2), "source_landmarks")
    else:
        src = np.asarray(transform_points(landmarks, invert_affine(mat)), dtype=np.float64)
    return src, mat


def _rect(meta: dict[str, Any], src: F64) -> tuple[float, float, float, float]:
    value = meta.get("source_rect")
    if value is not None:
        try:
            rect = _array(value, (4,), "source_rect")
        except MetadataError:
            rect = None
        if rect is not None and rect[2] > rect[0] and rect[3] > rect[1]:
            return (float(rect[0]), float(rect[1]), float(rect[2]), float(rect[3]))
    lo, hi = src.min(axis=0), src.max(axis=0)  # none (or a degenerate one): the landmarks' box
    return (float(lo[0]), float(lo[1]), float(max(hi[0], lo[0] + 1)), float(max(hi[1], lo[1] + 1)))


def _polygons(meta: dict[str, Any], notes: list[str]) -> list[XSegPolygon]:
    raw = meta.get("seg_ie_polys", meta.get("ie_polys"))
    if raw is None:
        return []
    items: list[tuple[Any, Any]] = []
    if isinstance(raw, dict) and isinstance(raw.get("polys"), list):
        items = [(p.get("type"), p.get("pts")) if isinstance(p, dict) else (None, None) for p in raw["polys"]]
    elif isinstance(raw, list):
        items = [tuple(p) if isinstance(p, (list, tuple)) and len(p) == 2 else (None, None) for p in raw]
    else:
        notes.append("XSeg polygons in an unknown layout: dropped")
        return []
    if len(items) > MAX_POLYGONS:
        raise _fail(f"{len(items)} XSeg polygons (more than {MAX_POLYGONS})")
    polys: list[XSegPolygon] = []
    dropped = 0
    for kind, pts in items:
        try:
            arr = np.asarray(pts, dtype=np.float64)
        except (ValueError, TypeError):
            arr = np.zeros((0, 2))
        if type(kind) is not int or kind not in (0, 1) or arr.ndim != 2 or arr.shape[1] != 2 \
                or not 3 <= len(arr) <= MAX_POLYGON_POINTS or not np.isfinite(arr).all():
            dropped += 1
            continue
        polys.append(XSegPolygon(kind="include" if kind == 1 else "exclude",
                                 points=[(float(x), float(y)) for x, y in arr]))
    if dropped:
        notes.append(f"{dropped} XSeg polygon(s) with fewer than 3 points or bad values: dropped")
    # DFL draws every include polygon first, then every exclude one (SegIEPolys.sort); facelab draws in order
    return [p for p in polys if p.kind == "include"] + [p for p in polys if p.kind == "exclude"]


def _mask(meta: dict[str, Any], notes: list[str]) -> str | None:
    raw = meta.get("xseg_mask")
    if raw is None:
        return None
    if isinstance(raw, np.ndarray) and raw.dtype == np.uint8:
        data = raw.tobytes()
    elif isinstance(raw, bytes):
        data = raw
    else:
        notes.append("XSeg mask of an unknown type: dropped")
        return None
    try:
        dims = image_size(data) if detect_format(data) is not None else None
    except MetadataError:
        dims = None
    if dims is None or not (0 < dims[0] <= MAX_MASK_SIDE and 0 < dims[1] <= MAX_MASK_SIDE):
        notes.append("XSeg mask is not a PNG/JPEG of at most 4096 px: dropped")
        return None
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if decoded is None:
        notes.append("XSeg mask cannot be decoded: dropped")
        return None
    return encode_mask(np.asarray(decoded, dtype=np.float32) / 255.0)


def convert(meta: dict[str, Any], face_name: str, dims: tuple[int, int], position: int) -> Converted:
    """The FaceRecord of a DFL face image named ``face_name`` of ``dims`` (width, height) pixels.

    ``position`` (the face's place in the import) is the frame number when the source name has no digits.
    Raises MetadataError with the reason when the metadata cannot make a facelab face.
    """
    dfl_type = dfl_face_type(meta)
    if dfl_type == "mark_only":
        raise _fail("face type mark_only (a whole frame with landmarks, not an aligned face crop)")
    mapped = FACE_TYPES.get(dfl_type)
    if mapped is None:
        raise _fail(f"unknown face type {printable(dfl_type, 40)!r}")
    width, height = dims
    if width != height:
        raise _fail(f"the face image is {width}x{height}, not square")
    if not MIN_SIZE <= width <= MAX_SIZE:
        raise _fail(f"the face image is {width} px; facelab reads {MIN_SIZE} to {MAX_SIZE} px faces")
    landmarks = _array(meta.get("landmarks"), (68, 2), "landmarks")
    if not ((landmarks >= -width) & (landmarks <= 2 * width)).all() or (np.ptp(landmarks, axis=0) < 2).any():
        raise _fail("the landmarks do not lie on the face image")
    src, mat = _geometry(meta, landmarks)
    rect = _rect(meta, src)
    if np.abs(src).max() > MAX_FRAME_COORD or max(abs(v) for v in rect) > MAX_FRAME_COORD:
        raise _fail("the source landmarks or rect are not in a plausible frame")
    stem, number = _frame_names(meta, face_name)
    # DFL does not record the frame's size: the smallest frame holding the face box and landmarks stands in
    far = np.maximum(src.max(axis=0), [rect[2], rect[3]])
    frame_w, frame_h = (max(1, math.ceil(float(v))) for v in far)
    notes: list[str] = []
    try:
        head = estimate_pose(landmarks)
        pose: Pose | None = Pose(yaw=head.yaw, pitch=head.pitch, roll=head.roll)
    except cv2.error:
        pose = None
        notes.append("no head pose (the landmarks are degenerate)")
    try:
        record = FaceRecord(
            face_type=mapped[0],
            size=width,
            face_index=_face_index(face_name),
            landmarks=landmarks,
            source=SourceInfo(frame=stem, index=number if number is not None else position,
                              width=frame_w, height=frame_h),
            rect=rect,
            source_landmarks=src,
            image_to_face=mat,
            pose=pose,
            detector=DETECTOR,
            landmarker=LANDMARKER,
            xseg_polygons=_polygons(meta, notes),
            xseg_mask=_mask(meta, notes),
            tool_version=__version__,
        )
    except ValidationError as exc:
        raise _fail(validation_message(exc, "record", count_more=True, limit=160)) from None
    return Converted(record, dfl_type, mapped[1], notes)

"""The per-face compositor: put a model's predicted face back into a dst frame (numpy and OpenCV only).

Coordinates: ``mat`` is the 2x3 affine from frame pixels to the model's crop (the face record's
transform converted to the model's face type and resolution). Everything that depends on the crop
(colour transfer, sharpening, degradation, motion blur) happens on the R x R crop; the face and its
mask are then warped back into the frame on the box where the mask is nonzero (plus blur) only. Mask
modes combine in crop space, so the face and its mask are each warped once.

Guarantee: where the final mask value is 0 the merged frame equals the dst frame bit for bit
(``cv2.blendLinear`` returns the dst pixel exactly at weight 0; test_merge checks whole frames).

The work is in three parts: the region (``face_region``: the transforms, the mask mode's crop masks and
the box of the frame they can touch), the face stages in crop space (facelab.merge.stages, switched by
the merge mode, facelab.merge.modes) and the blend (``_blend``: the mask and face warped back, dst's
detail, Poisson cloning, ``cv2.blendLinear``; pixel operations in facelab.merge.blend).

Mask sizes are relative to the face: ``face_px`` is the crop's side in frame pixels; ``erode`` and
``blur`` are percentages of it. The blur is two box filters of half the radius each, so the blurred
mask reaches at most ``blur`` pixels past the eroded mask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from facelab.core.types import F32, F64, U8
from facelab.face.align import convert_transform
from facelab.face.masks import face_hull_mask
from facelab.face.skin import nonskin_border
from facelab.faceset.record import FaceRecord
from facelab.merge.blend import detail_transfer, erode_blur, seamless, warp_back, warp_face
from facelab.merge.masks import FULL_CROP, MASK_MODES, MaskSpec, side_masks
from facelab.merge.modes import MERGE_MODES, MergeModeSpec
from facelab.merge.options import MergeOptions, check_supported
from facelab.merge.stages import FaceContext, run_stages, source_face

_CROP_FLOOR = 1e-3  # crop-space mask values below this are 0 before warping (they move no pixel by 0.5 levels)
_PAD = 3  # pixels of slack around the face's box


@dataclass(frozen=True)
class Prediction:
    """A model's output for one face, in the model's crop: face (R, R, 3) float in [0, 1], masks (R, R)."""

    face: F32
    mask: F32  # the predicted (swapped) face's mask
    dst_mask: F32 | None  # the dst face's own mask as the model predicts it (None: no mode asked for it)
    xseg_prd: F32 | None = None  # XSeg's mask of the predicted face (xseg-prd modes)
    xseg_dst: F32 | None = None  # XSeg's mask of the dst face (xseg-dst modes)


@dataclass(frozen=True)
class FaceInput:
    """One face of a frame to merge: its record, the prediction, and its motion (frame px per frame)."""

    record: FaceRecord
    prediction: Prediction
    motion: tuple[float, float] | None = None


def model_transform(record: FaceRecord, face_type: str, resolution: int) -> F64:
    """Frame pixels -> the model's crop (face type, resolution), from the record's stored transform."""
    return np.asarray(convert_transform(record.affine(), record.face_type, record.size, face_type, resolution),
                      dtype=np.float64)


def crop_face(frame: U8, mat: F64, resolution: int) -> U8:
    """The model's input crop, cut from the frame itself (bicubic, edges repeated)."""
    out = cv2.warpAffine(frame, mat, (resolution, resolution), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


def _to3(m: F64) -> F64:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def _scaled(mat: F64, face_scale: float, resolution: int) -> F64:
    """mat followed by a scaling about the crop centre, so the face appears face_scale % larger."""
    if face_scale == 0:
        return mat
    s = 1.0 + face_scale / 100.0
    c = resolution / 2.0
    shrink = np.array([[1 / s, 0.0, c - c / s], [0.0, 1 / s, c - c / s], [0.0, 0.0, 1.0]])
    out: F64 = (shrink @ _to3(mat))[:2]
    return out


def _shifted(mat: F64, x0: int, y0: int) -> F64:
    """mat for a region whose origin is frame pixel (x0, y0)."""
    out = mat.copy()
    out[:, 2] += mat[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return out


def _floored(mask: F32) -> F32:
    """Crop-space mask values too small to change a pixel set to 0, so the mask's support is tight."""
    out = mask.copy()
    out[out < _CROP_FLOOR] = 0.0
    return out


def _support(mask: F32, mat: F64) -> F64 | None:
    """Frame coordinates (4, 2) of a box around the crop pixels where the mask is nonzero (None: nowhere),
    one pixel wider on each side for the bilinear warp."""
    x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
    if w == 0 or h == 0:
        return None
    inv = np.asarray(cv2.invertAffineTransform(mat), dtype=np.float64)
    box = np.array([[x - 1, y - 1, 1], [x + w, y - 1, 1], [x + w, y + h, 1], [x - 1, y + h, 1]], dtype=np.float64)
    out: F64 = box @ inv.T
    return out


def face_size_px(mat: F64, resolution: int) -> float:
    """The side of the model's crop in frame pixels."""
    det = abs(float(np.linalg.det(mat[:, :2])))
    return resolution / math.sqrt(max(det, 1e-12))


@dataclass(frozen=True)
class Patch:
    """One merged face as a change to a box of the frame: rows y0:y1, columns x0:x1."""

    x0: int
    y0: int
    x1: int
    y1: int
    pixels: U8  # the box's merged pixels; equal to the frame's wherever mask is 0
    mask: F32  # the mask used, in [0, 1]


# ----------------------------------------------------------------------------------------------------
# the region


@dataclass(frozen=True)
class Region:
    """The box of the frame a face can touch (rows y0:y1, columns x0:x1), the transforms onto it, and the
    mask mode's masks in crop space."""

    x0: int
    y0: int
    x1: int
    y1: int
    mat: F64  # frame -> the model's crop
    to_dst: F64  # region -> the model's crop (the dst side)
    to_prd: F64  # region -> the crop of the predicted face (scaled by face_scale)
    face_px: float  # the crop's side in frame pixels
    erode_px: float
    blur_px: float
    spec: MaskSpec
    crop_mask: F32  # the mode's mask in the model's crop (the colour statistics' mask)
    warp_prd: F32 | None  # floored masks to warp back with to_prd and to_dst (one of them when the sides
    warp_dst: F32 | None  # share the crop: combined in crop space, warped once)

    @property
    def size(self) -> tuple[int, int]:
        return self.x1 - self.x0, self.y1 - self.y0


def _crop_landmarks(record: FaceRecord, mat: F64) -> F64:
    """The dst face's landmarks in the model's crop."""
    return np.asarray(cv2.transform(record.source_landmarks_array().reshape(-1, 1, 2), mat),
                      dtype=np.float64).reshape(-1, 2)


def _skin_limited(prd: F32 | None, dst: F32 | None, prediction: Prediction, lm_crop: F64,
                  face_type: str) -> tuple[F32 | None, F32 | None]:
    """The sides' masks without the predicted face's non-skin border (``skin_mask``): on the prediction's
    side, or on dst's when the mode has no prediction side (the face is drawn at dst's landmarks)."""
    keep = 1.0 - nonskin_border(prediction.face, lm_crop, face_type)
    if prd is not None:
        return prd * keep, dst
    assert dst is not None
    return prd, dst * keep


def _box(parts: Sequence[tuple[F32, F64]], margin: float, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """The frame box (x0, y0, x1, y1) around the masks' supports, widened by margin; None when empty."""
    boxes = [b for b in (_support(m, t) for m, t in parts) if b is not None]
    if not boxes:
        return None
    h, w = shape[:2]
    pts = np.vstack(boxes)
    x0 = max(0, math.floor(pts[:, 0].min() - margin))
    y0 = max(0, math.floor(pts[:, 1].min() - margin))
    x1 = min(w, math.ceil(pts[:, 0].max() + margin) + 1)
    y1 = min(h, math.ceil(pts[:, 1].max() + margin) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def face_region(shape: tuple[int, ...], record: FaceRecord, prediction: Prediction, face_type: str,
                resolution: int, opts: MergeOptions, mode: MergeModeSpec) -> Region | None:
    """The region a face can touch in a frame of ``shape``: the mask's support (crop-space values below
    1e-3 count as 0), widened by the blur and a dilating erode; None when it lies outside the frame."""
    r = resolution
    mat = model_transform(record, face_type, r)
    mat_p = _scaled(mat, opts.face_scale, r)
    face_px = face_size_px(mat, r)
    erode_px = 0.0 if mode.hard_mask else face_px * opts.erode / 100.0
    blur_px = 0.0 if mode.hard_mask else face_px * opts.blur / 100.0
    mask_mode = FULL_CROP if mode.full_mask else opts.mask_mode
    spec = MASK_MODES.get(mask_mode)
    lm_crop = _crop_landmarks(record, mat)  # dst's landmarks in the crop: the hull and the skin test share them
    hull = face_hull_mask(lm_crop, (r, r), face_type) if spec.needs_hull else None
    prd, dst = side_masks(mask_mode, prediction, hull)
    if opts.skin_mask and not mode.full_mask:
        prd, dst = _skin_limited(prd, dst, prediction, lm_crop, face_type)
    crop_mask = spec.merged(prd, dst)
    warp_prd: F32 | None
    warp_dst: F32 | None
    if opts.face_scale == 0:  # both sides share the crop: combine once, warp once
        warp_prd, warp_dst = None, _floored(crop_mask)
    else:
        warp_prd = None if prd is None else _floored(prd)
        warp_dst = None if dst is None else _floored(dst)
    parts = [(m, t) for m, t in ((warp_prd, mat_p), (warp_dst, mat)) if m is not None]
    box = _box(parts, max(0.0, -erode_px) + blur_px + _PAD, shape)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return Region(x0, y0, x1, y1, mat, _shifted(mat, x0, y0), _shifted(mat_p, x0, y0), face_px, erode_px, blur_px,
                  spec, crop_mask, warp_prd, warp_dst)


# ----------------------------------------------------------------------------------------------------
# the blend


def _blend(frame: U8, face: F32, region: Region, side: int, resolution: int, opts: MergeOptions,
           mode: MergeModeSpec) -> Patch:
    """The processed face (side x side) warped back into the region and blended by the mask."""
    size = region.size
    mask = region.spec.merged(None if region.warp_prd is None else warp_back(region.warp_prd, region.to_prd, size),
                              None if region.warp_dst is None else warp_back(region.warp_dst, region.to_dst, size))
    mask = (mask > 0.5).astype(np.float32) if mode.hard_mask else erode_blur(mask, region.erode_px, region.blur_px)
    # the face is warped as 8-bit and blended with OpenCV: one pass, rounded; where the mask is 0 the result
    # is the frame's pixel exactly (test_merge checks it)
    to_face = region.to_prd if side == resolution else region.to_prd * (side / resolution)
    warped = warp_face(np.clip(face * 255.0 + 0.5, 0, 255).astype(np.uint8), to_face, size)
    pixels = frame[region.y0:region.y1, region.x0:region.x1]
    if mode.detail_transfer:
        warped = detail_transfer(warped, pixels, opts.detail_transfer, region.face_px, side)
    if mode.seamless:
        cloned = seamless(warped.astype(np.float32) / 255.0, pixels, mask)
        warped = np.clip(cloned * 255.0 + 0.5, 0, 255).astype(np.uint8)
    blended = np.asarray(cv2.blendLinear(warped, pixels, mask, 1.0 - mask), dtype=np.uint8)
    return Patch(region.x0, region.y0, region.x1, region.y1, blended, mask)


def compose_patch(frame: U8, record: FaceRecord, prediction: Prediction, face_type: str, resolution: int,
                  opts: MergeOptions, *, motion: tuple[float, float] | None = None,
                  rng: np.random.Generator | None = None) -> Patch | None:
    """Merge one predicted face into ``frame`` (RGB uint8 H x W x 3, not modified); None when the face
    changes no pixel (a mode that leaves the frame, or a mask outside the frame).

    Warps, blur and blend touch the face's region only (``face_region``).
    """
    check_supported(opts, xseg=False)
    mode = MERGE_MODES.get(opts.mode)
    if not mode.changes_frame:
        return None
    r = resolution
    if prediction.face.shape != (r, r, 3):
        raise ValueError(f"prediction is {prediction.face.shape}, expected {(r, r, 3)}")
    region = face_region(frame.shape, record, prediction, face_type, r, opts, mode)
    if region is None:
        return None
    face = source_face(prediction.face, opts, region.face_px)
    side = face.shape[0]  # larger than r with super-resolution
    crop_mat = region.mat if side == r else region.mat * (side / r)

    def dst_crop() -> F32:
        out: F32 = crop_face(frame, crop_mat, side).astype(np.float32) / 255.0
        return out

    ctx = FaceContext(opts, mode, crop_mat, side, region.crop_mask, dst_crop, motion, rng)
    return _blend(frame, run_stages(face, ctx), region, side, r, opts, mode)


def compose_face(frame: U8, record: FaceRecord, prediction: Prediction, face_type: str, resolution: int,
                 opts: MergeOptions, *, motion: tuple[float, float] | None = None,
                 rng: np.random.Generator | None = None) -> tuple[U8, F32]:
    """Merge one predicted face into ``frame`` (RGB uint8 H x W x 3, not modified).

    Returns the merged frame and the mask used (float32 H x W in [0, 1]; 0 where the frame is unchanged).
    """
    out = frame.copy()
    full_mask = np.zeros(frame.shape[:2], dtype=np.float32)
    patch = compose_patch(frame, record, prediction, face_type, resolution, opts, motion=motion, rng=rng)
    if patch is not None:
        out[patch.y0:patch.y1, patch.x0:patch.x1] = patch.pixels
        full_mask[patch.y0:patch.y1, patch.x0:patch.x1] = patch.mask
    return out, full_mask


def merge_frame(frame: U8, faces: Sequence[FaceInput], face_type: str, resolution: int, opts: MergeOptions,
                rng: np.random.Generator | None = None) -> tuple[U8, U8]:
    """Merge every face of a frame in turn. Returns the merged frame and its 8-bit mask: the union
    (maximum) of the faces' masks rounded to 0..255, which is 0 exactly where no pixel changed."""
    out = frame.copy()
    mask8 = np.zeros(frame.shape[:2], dtype=np.uint8)
    for f in faces:
        patch = compose_patch(out, f.record, f.prediction, face_type, resolution, opts, motion=f.motion, rng=rng)
        if patch is None:
            continue
        box = (slice(patch.y0, patch.y1), slice(patch.x0, patch.x1))
        out[box] = patch.pixels
        m8 = np.asarray(cv2.convertScaleAbs(patch.mask, alpha=255.0), dtype=np.uint8)  # rounded, saturated
        np.maximum(mask8[box], m8, out=mask8[box])
    return out, mask8

"""The per-face compositor: put a model's predicted face back into a dst frame (numpy and OpenCV only).

Coordinates: ``mat`` is the 2x3 affine from frame pixels to the model's crop (the face record's
transform converted to the model's face type and resolution). Everything that depends on the crop
(colour transfer, sharpening, degradation, motion blur) happens on the R x R crop; the face and its
mask are then warped back into the frame on the box where the mask is nonzero (plus blur) only. Mask
modes combine in crop space, so the face and its mask are each warped once.

Guarantee: where the final mask value is 0 the merged frame equals the dst frame bit for bit
(``cv2.blendLinear`` returns the dst pixel exactly at weight 0; test_merge checks whole frames).

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
from numpy.typing import NDArray

from facelab.core.color import fit_color
from facelab.core.errors import InputError
from facelab.face.align import convert_transform
from facelab.face.masks import face_hull_mask
from facelab.face.superres import shared_resolver
from facelab.faceset.record import FaceRecord
from facelab.merge.options import LEARNED_DST_MODES, MergeOptions, check_supported

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

_MASK_FLOOR = 1e-4  # mask values below this are 0 (float box-filter residue)
_CROP_FLOOR = 1e-3  # crop-space mask values below this are 0 before warping (they move no pixel by 0.5 levels)
_PAD = 3  # pixels of slack around the face's box

# colour transfer name -> (core.color method, statistics inside the mask only). rct and lct have no -m
# twin and fit inside the mask: fitted on the whole crop, the dst side's statistics are those of its
# background, hair and clothes, so the face's mean colour is not matched (it ended 7-17 Lab units from
# dst's on four pairs of the bundled and shared clips) and the spread ratios blow the lips up to neon (HSV S
# 0.47 -> 0.68-0.85) or bleach the skin around pink lips. mkl and idt keep DFL's whole-crop fit; mkl-m and
# idt-m are their masked variants.
COLOR_METHODS: dict[str, tuple[str, bool]] = {
    "rct": ("rct", True), "lct": ("lct", True), "mkl": ("mkl", False), "mkl-m": ("mkl", True),
    "idt": ("idt", False), "idt-m": ("idt", True), "sot-m": ("sot", True), "mix-m": ("mix", True),
}


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


def _warp(img: NDArray[np.float32], mat: F64, size: tuple[int, int], border: int) -> F32:
    out = cv2.warpAffine(img, mat, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border,
                         borderValue=0)
    return np.asarray(out, dtype=np.float32)


# ----------------------------------------------------------------------------------------------------
# processing of the predicted face (in crop space)


def _hist_match(src: F32, ref: F32, src_mask: F32, ref_mask: F32, threshold: int) -> F32:
    """Per-channel histogram matching of src to ref (statistics inside the masks; src pixels brighter than
    threshold / 255 in any channel are left out of the statistics)."""
    sel_s = (src_mask > 0.5) & (src.max(axis=2) * 255.0 <= threshold)
    sel_r = ref_mask > 0.5
    if sel_s.sum() < 16 or sel_r.sum() < 16:
        return src
    out = np.empty_like(src)
    levels = np.linspace(0.0, 1.0, 257)
    for ch in range(3):
        s_vals = src[..., ch][sel_s]
        r_vals = ref[..., ch][sel_r]
        s_q = np.quantile(s_vals, levels)
        r_q = np.quantile(r_vals, levels)
        s_q = np.maximum.accumulate(s_q + np.arange(257) * 1e-9)  # strictly increasing knots
        out[..., ch] = np.interp(src[..., ch], s_q, r_q)
    res: F32 = np.clip(out, 0.0, 1.0).astype(np.float32)
    return res


def _sharpen(face: F32, mode: str, amount: float, resolution: int) -> F32:
    if mode == "none" or amount <= 0:
        return face
    gain = amount / 100.0 * 2.0
    k = max(3, (resolution // 64) * 2 + 1)
    if mode == "box":
        soft = cv2.blur(face, (k, k))
    elif mode == "gaussian":
        soft = cv2.GaussianBlur(face, (k, k), 0)
    else:  # unsharp: wider gaussian, details below a small threshold are left alone (no noise boost)
        soft = cv2.GaussianBlur(face, (0, 0), max(1.0, resolution / 96.0))
        detail = face - soft
        detail[np.abs(detail) < 2.0 / 255.0] = 0.0
        out_u: F32 = np.clip(face + gain * detail, 0.0, 1.0).astype(np.float32)
        return out_u
    out: F32 = np.clip(face + gain * (face - np.asarray(soft, dtype=np.float32)), 0.0, 1.0).astype(np.float32)
    return out


def _denoise(face: F32, strength: float) -> F32:
    if strength <= 0:
        return face
    u8 = np.clip(face * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h = float(strength)
    den = cv2.fastNlMeansDenoisingColored(u8, None, h, h, 5, 11)
    return np.asarray(den, dtype=np.float32) / 255.0


def _bicubic_degrade(face: F32, percent: float) -> F32:
    if percent <= 0:
        return face
    r = face.shape[0]
    small = max(4, round(r * (1.0 - percent / 100.0)))
    if small >= r:
        return face
    down = cv2.resize(face, (small, small), interpolation=cv2.INTER_CUBIC)
    up = cv2.resize(down, (r, r), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.asarray(up, dtype=np.float32), 0.0, 1.0)


def _color_degrade(face: F32, percent: float) -> F32:
    if percent <= 0:
        return face
    bits = max(1.0, 8.0 - 7.0 * percent / 100.0)
    levels = 2.0 ** bits - 1.0
    out: F32 = (np.round(face * levels) / levels).astype(np.float32)
    return out


def _detail_transfer(warped: U8, region: U8, percent: float, face_px: float, resolution: int) -> U8:
    """The warped face plus ``percent`` of dst's detail that the model's output cannot hold.

    A face predicted at R pixels and enlarged to ``face_px`` frame pixels has no content above R/2
    cycles per face, and an autoencoder's output is softer than its grid, so the band above about half
    that is taken from dst: the frame region minus its Gaussian blur with sigma = 0.5 * face_px / R frame
    pixels (a model pixel's half-width). What moves is texture at the scale of one model pixel and finer:
    pores, stubble, the thin edges of glasses; the face's shapes and colours stay the model's.
    """
    if percent <= 0:
        return warped
    sigma = max(0.5, 0.5 * face_px / resolution)
    reg = region.astype(np.float32)
    high = reg - np.asarray(cv2.GaussianBlur(reg, (0, 0), sigma), dtype=np.float32)
    out = warped.astype(np.float32) + np.float32(percent / 100.0) * high
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _super_resolve(face: F32, face_px: float) -> F32:
    """The predicted face x4 by Real-ESRGAN, area-resized to about its size in the frame (between R and 4R)."""
    r = face.shape[0]
    side = int(min(4 * r, max(r, round(face_px))))
    bgr = np.clip(face[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    up = cv2.resize(shared_resolver().upscale(bgr), (side, side), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(up[..., ::-1], dtype=np.float32) / 255.0


def _motion_blur(face: F32, motion: tuple[float, float] | None, strength: float, mat: F64) -> F32:
    if motion is None or strength <= 0:
        return face
    v = mat[:, :2] @ np.asarray(motion, dtype=np.float64) * (strength / 100.0)  # crop px
    length = float(np.hypot(v[0], v[1]))
    if length < 1.0:
        return face
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), dtype=np.float32)
    c = size // 2
    d = v / length
    p0 = (round(c - d[0] * length / 2), round(c - d[1] * length / 2))
    p1 = (round(c + d[0] * length / 2), round(c + d[1] * length / 2))
    cv2.line(kernel, p0, p1, 1.0, 1)
    kernel /= max(float(kernel.sum()), 1e-6)
    out = cv2.filter2D(face, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.float32)


def recolor(name: str, face: F32, dst_face: F32, face_mask: F32, dst_mask: F32,
            rng: np.random.Generator | None = None) -> F32:
    """The predicted face recoloured towards the dst face with a merge colour-transfer name (masked methods
    fit on the pixels the masks weight, as COLOR_METHODS says)."""
    if name == "none":
        return face
    method, masked = COLOR_METHODS[name]
    cmap = fit_color(method, face, dst_face, face_mask if masked else None, dst_mask if masked else None,
                     rng if rng is not None else np.random.default_rng(0))
    return cmap.apply(face)


# ----------------------------------------------------------------------------------------------------
# masks


def _side_masks(mode: str, pred: Prediction) -> tuple[F32 | None, F32 | None]:
    """The prediction-side and dst-side crop masks a learned-* or xseg-* mode combines."""
    prd = dst = None
    if mode in ("learned-prd", "learned-prd*learned-dst", "learned-prd+learned-dst"):
        prd = pred.mask
    if mode in LEARNED_DST_MODES:
        if pred.dst_mask is None:
            raise ValueError(f"mask mode {mode} needs the dst mask, which was not predicted")
        dst = pred.dst_mask
    if mode in ("xseg-prd", "xseg-prd*xseg-dst"):
        if pred.xseg_prd is None:
            raise InputError(f"mask mode {mode} needs the XSeg mask of the predicted face (--xseg-model)")
        prd = pred.xseg_prd
    if mode in ("xseg-dst", "xseg-prd*xseg-dst"):
        if pred.xseg_dst is None:
            raise InputError(f"mask mode {mode} needs the XSeg mask of the dst face (--xseg-model or xseg apply)")
        dst = pred.xseg_dst
    return prd, dst


def _combine(mode: str, prd: F32 | None, dst: F32 | None) -> F32:
    if prd is not None and dst is not None:
        if mode.endswith("+learned-dst"):
            return np.clip(prd + dst, 0.0, 1.0)
        out: F32 = prd * dst
        return out
    mask = prd if prd is not None else dst
    assert mask is not None
    return mask


def _crop_sides(mode: str, pred: Prediction, hull: F32 | None) -> tuple[F32 | None, F32 | None]:
    """A mask mode's prediction-side and dst-side masks in crop space ("full" is the whole crop on the
    prediction side, "dst" the landmark hull on the dst side)."""
    if mode == "full":
        r = pred.face.shape[0]
        return np.ones((r, r), dtype=np.float32), None
    if mode == "dst":
        assert hull is not None
        return None, hull
    return _side_masks(mode, pred)


def _crop_mask(mode: str, pred: Prediction, hull: F32 | None) -> F32:
    """The chosen mask in crop space (the colour statistics' mask)."""
    return _combine(mode, *_crop_sides(mode, pred, hull))


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


def _erode_blur(mask: F32, erode_px: float, blur_px: float) -> F32:
    e = round(abs(erode_px))
    if e >= 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * e + 1, 2 * e + 1))
        op = cv2.erode if erode_px > 0 else cv2.dilate
        mask = np.asarray(op(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0), dtype=np.float32)
    half = int(blur_px) // 2
    if half >= 1:
        k = 2 * half + 1  # reach `half` per pass, 2 * half <= blur_px in all
        for _ in range(2):
            mask = np.asarray(cv2.blur(mask, (k, k), borderType=cv2.BORDER_CONSTANT), dtype=np.float32)
    mask = np.clip(mask, 0.0, 1.0)
    mask[mask < _MASK_FLOOR] = 0.0
    return mask


# ----------------------------------------------------------------------------------------------------
# blending


def _seamless(src: F32, dst: U8, mask: F32) -> F32:
    """Poisson (NORMAL_CLONE) of src into dst over mask > 0; float result for the region."""
    binary = (mask > 0).astype(np.uint8) * 255
    if not binary.any():
        return dst.astype(np.float32) / 255.0
    p = 2  # seamlessClone needs the mask's box strictly inside the image
    src_u8 = np.clip(src * 255.0 + 0.5, 0, 255).astype(np.uint8)
    src_p = cv2.copyMakeBorder(src_u8, p, p, p, p, cv2.BORDER_REPLICATE)
    dst_p = cv2.copyMakeBorder(dst, p, p, p, p, cv2.BORDER_REPLICATE)
    m_p = cv2.copyMakeBorder(binary, p, p, p, p, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(m_p)
    try:
        cloned = cv2.seamlessClone(src_p, dst_p, m_p, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    except cv2.error:
        return src
    return np.asarray(cloned[p:-p, p:-p], dtype=np.float32) / 255.0


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


def compose_patch(frame: U8, record: FaceRecord, prediction: Prediction, face_type: str, resolution: int,
                  opts: MergeOptions, *, motion: tuple[float, float] | None = None,
                  rng: np.random.Generator | None = None) -> Patch | None:
    """Merge one predicted face into ``frame`` (RGB uint8 H x W x 3, not modified); None when the face
    changes no pixel (mode "original", or its mask lies outside the frame).

    The box is the mask's support (crop-space values below 1e-3 count as 0), widened by the blur and a
    dilating erode: warps, blur and blend touch that box only.
    """
    check_supported(opts, xseg=False)
    if opts.mode == "original":
        return None
    h, w = frame.shape[:2]
    r = resolution
    if prediction.face.shape != (r, r, 3):
        raise ValueError(f"prediction is {prediction.face.shape}, expected {(r, r, 3)}")
    mat = model_transform(record, face_type, r)
    mat_p = _scaled(mat, opts.face_scale, r)
    face_px = face_size_px(mat, r)
    raw = opts.mode == "raw-rgb"
    erode_px = 0.0 if raw else face_px * opts.erode / 100.0
    blur_px = 0.0 if raw else face_px * opts.blur / 100.0
    mask_mode = "full" if opts.mode in ("raw-rgb", "raw-predict") else opts.mask_mode

    hull = None
    if mask_mode == "dst":
        lm_crop = np.asarray(cv2.transform(record.source_landmarks_array().reshape(-1, 1, 2), mat),
                             dtype=np.float64).reshape(-1, 2)
        hull = face_hull_mask(lm_crop, (r, r), face_type)
    prd, dst = _crop_sides(mask_mode, prediction, hull)
    one_transform = opts.face_scale == 0  # both sides share the crop: combine once, warp once
    floor_prd = None if prd is None or one_transform else _floored(prd)
    floor_dst = None if dst is None or one_transform else _floored(dst)
    if one_transform:
        parts = [(_floored(_combine(mask_mode, prd, dst)), mat)]
    else:
        parts = [(m, t) for m, t in ((floor_prd, mat_p), (floor_dst, mat)) if m is not None]
    boxes = [b for b in (_support(m, t) for m, t in parts) if b is not None]
    if not boxes:
        return None
    # the region of the frame the face can touch
    pts = np.vstack(boxes)
    margin = max(0.0, -erode_px) + blur_px + _PAD
    x0 = max(0, math.floor(pts[:, 0].min() - margin))
    y0 = max(0, math.floor(pts[:, 1].min() - margin))
    x1 = min(w, math.ceil(pts[:, 0].max() + margin) + 1)
    y1 = min(h, math.ceil(pts[:, 1].max() + margin) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    size = (x1 - x0, y1 - y0)
    m_dst, m_prd = _shifted(mat, x0, y0), _shifted(mat_p, x0, y0)

    face = np.clip(np.asarray(prediction.face, dtype=np.float32), 0.0, 1.0)
    rs = r  # the side the face is processed and warped back at: larger with super-resolution
    if opts.super_resolution:
        face = _super_resolve(face, face_px)
        rs = face.shape[0]
    mat_s, m_face = (mat, m_prd) if rs == r else (mat * (rs / r), m_prd * (rs / r))
    if not raw:
        dst_crop = crop_face(frame, mat_s, rs).astype(np.float32) / 255.0
        cmask = _combine(mask_mode, prd, dst)
        if rs != r:
            cmask = np.asarray(cv2.resize(cmask, (rs, rs), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
        if opts.mode != "raw-predict":
            face = recolor(opts.color_transfer, face, dst_crop, cmask, cmask, rng)
            if opts.mode in ("hist-match", "seamless-hist-match"):
                face = _hist_match(face, dst_crop, cmask, cmask, opts.hist_match_threshold)
        face = _motion_blur(face, motion, opts.motion_blur, mat_s)
        face = _sharpen(face, opts.sharpen_mode, opts.sharpen_amount, rs)
        face = _denoise(face, opts.denoise)
        face = _bicubic_degrade(face, opts.bicubic_degrade)
        face = _color_degrade(face, opts.color_degrade)

    c = cv2.BORDER_CONSTANT
    if one_transform:
        mask = _warp(parts[0][0], m_dst, size, c)
    else:
        mask = _combine(mask_mode, None if floor_prd is None else _warp(floor_prd, m_prd, size, c),
                        None if floor_dst is None else _warp(floor_dst, m_dst, size, c))
    mask = _erode_blur(mask, erode_px, blur_px) if not raw else (mask > 0.5).astype(np.float32)
    # the face is warped as 8-bit (the fixed-point warp is the fastest) and blended with OpenCV: one pass,
    # rounded; where the mask is 0 the result is the frame's pixel exactly (test_merge checks it)
    face_u8 = np.clip(face * 255.0 + 0.5, 0, 255).astype(np.uint8)
    warped = np.asarray(cv2.warpAffine(face_u8, m_face, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                       borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8)
    region = frame[y0:y1, x0:x1]
    if not raw and opts.mode != "raw-predict":
        warped = _detail_transfer(warped, region, opts.detail_transfer, face_px, rs)
    if opts.mode in ("seamless", "seamless-hist-match"):
        cloned = _seamless(warped.astype(np.float32) / 255.0, region, mask)
        warped = np.clip(cloned * 255.0 + 0.5, 0, 255).astype(np.uint8)
    blended = np.asarray(cv2.blendLinear(warped, region, mask, 1.0 - mask), dtype=np.uint8)
    return Patch(x0, y0, x1, y1, blended, mask)


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

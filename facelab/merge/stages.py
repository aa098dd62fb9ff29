"""The face stages: what happens to the predicted face in the model's crop before it is warped back.

Each stage is a small function of the face (float32 RGB in [0, 1], side x side) and a per-face
``FaceContext``; ``FACE_STAGES`` lists them in the order they run, each with the merge-mode switch that
turns it on (facelab.merge.modes): recolour, histogram match, motion blur, sharpen, denoise, bicubic
degradation, colour degradation. A stage whose strength option is 0 returns the face unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from facelab.core.types import F32, F64
from facelab.face.superres import shared_resolver
from facelab.merge.color import recolor
from facelab.merge.modes import MergeModeSpec
from facelab.merge.options import MergeOptions


@dataclass
class FaceContext:
    """One face as the stages see it: the options and mode, the crop the face is processed in, and its
    motion. The dst crop and the statistics' mask are made on first use."""

    opts: MergeOptions
    mode: MergeModeSpec
    crop_mat: F64  # frame -> the crop the face is processed in (side x side)
    side: int  # the face's side: the model's resolution, larger with super-resolution
    mask: F32  # the mask mode's mask at the model's resolution: where the colour statistics are taken
    crop_dst: Callable[[], F32] = field(repr=False)  # the dst face's crop (float RGB, side x side)
    motion: tuple[float, float] | None = None  # frame px per frame
    rng: np.random.Generator | None = None

    @cached_property
    def dst_crop(self) -> F32:
        return self.crop_dst()

    @cached_property
    def stat_mask(self) -> F32:
        if self.mask.shape[0] == self.side:
            return self.mask
        return np.asarray(cv2.resize(self.mask, (self.side, self.side), interpolation=cv2.INTER_LINEAR),
                          dtype=np.float32)


def source_face(face: F32, opts: MergeOptions, face_px: float) -> F32:
    """The predicted face the stages start from: clipped to [0, 1], super-resolved when asked."""
    out = np.clip(np.asarray(face, dtype=np.float32), 0.0, 1.0)
    return _super_resolve(out, face_px) if opts.super_resolution else out


def _super_resolve(face: F32, face_px: float) -> F32:
    """The predicted face x4 by Real-ESRGAN, area-resized to about its size in the frame (between R and 4R)."""
    r = face.shape[0]
    side = int(min(4 * r, max(r, round(face_px))))
    bgr = np.clip(face[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    up = cv2.resize(shared_resolver().upscale(bgr), (side, side), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(up[..., ::-1], dtype=np.float32) / 255.0


# ----------------------------------------------------------------------------------------------------
# the stages


def hist_match(src: F32, ref: F32, src_mask: F32, ref_mask: F32, threshold: int) -> F32:
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


def motion_blur(face: F32, motion: tuple[float, float] | None, strength: float, mat: F64) -> F32:
    """Blur along the face's motion (frame px per frame, mapped into the crop by ``mat``), ``strength`` %."""
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


def sharpen(face: F32, mode: str, amount: float, resolution: int) -> F32:
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


def denoise(face: F32, strength: float) -> F32:
    if strength <= 0:
        return face
    u8 = np.clip(face * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h = float(strength)
    den = cv2.fastNlMeansDenoisingColored(u8, None, h, h, 5, 11)
    return np.asarray(den, dtype=np.float32) / 255.0


def bicubic_degrade(face: F32, percent: float) -> F32:
    if percent <= 0:
        return face
    r = face.shape[0]
    small = max(4, round(r * (1.0 - percent / 100.0)))
    if small >= r:
        return face
    down = cv2.resize(face, (small, small), interpolation=cv2.INTER_CUBIC)
    up = cv2.resize(down, (r, r), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.asarray(up, dtype=np.float32), 0.0, 1.0)


def color_degrade(face: F32, percent: float) -> F32:
    if percent <= 0:
        return face
    bits = max(1.0, 8.0 - 7.0 * percent / 100.0)
    levels = 2.0 ** bits - 1.0
    out: F32 = (np.round(face * levels) / levels).astype(np.float32)
    return out


# ----------------------------------------------------------------------------------------------------
# the list


@dataclass(frozen=True)
class FaceStage:
    """A stage: its name, the merge-mode switch that turns it on, and the function."""

    name: str
    enabled: Callable[[MergeModeSpec], bool]
    run: Callable[[F32, FaceContext], F32]


def _recolor(face: F32, c: FaceContext) -> F32:
    return recolor(c.opts.color_transfer, face, c.dst_crop, c.stat_mask, c.stat_mask, c.rng)


def _hist_match(face: F32, c: FaceContext) -> F32:
    return hist_match(face, c.dst_crop, c.stat_mask, c.stat_mask, c.opts.hist_match_threshold)


def _face_stage(mode: MergeModeSpec) -> bool:
    return mode.face_stages


FACE_STAGES: tuple[FaceStage, ...] = (
    FaceStage("recolour", lambda mode: mode.recolor, _recolor),
    FaceStage("hist-match", lambda mode: mode.hist_match, _hist_match),
    FaceStage("motion blur", _face_stage, lambda f, c: motion_blur(f, c.motion, c.opts.motion_blur, c.crop_mat)),
    FaceStage("sharpen", _face_stage, lambda f, c: sharpen(f, c.opts.sharpen_mode, c.opts.sharpen_amount, c.side)),
    FaceStage("denoise", _face_stage, lambda f, c: denoise(f, c.opts.denoise)),
    FaceStage("bicubic degrade", _face_stage, lambda f, c: bicubic_degrade(f, c.opts.bicubic_degrade)),
    FaceStage("colour degrade", _face_stage, lambda f, c: color_degrade(f, c.opts.color_degrade)),
)


def run_stages(face: F32, ctx: FaceContext) -> F32:
    """The face after every stage its merge mode turns on, in FACE_STAGES' order."""
    for stage in FACE_STAGES:
        if stage.enabled(ctx.mode):
            face = stage.run(face, ctx)
    return face

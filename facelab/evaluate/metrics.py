"""Per-frame swap-quality measures between a result frame and the dst frame it replaces.

All take plain arrays: RGB uint8 frames, 68-point landmarks in frame pixels. Landmark distances are in
units of dst's inter-ocular distance (between the eye centres), so they compare across resolutions.
The last two functions summarise a whole video's per-frame values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from skimage.metrics import structural_similarity

from facelab.core.types import Image, Points
from facelab.face.masks import fill_hull
from facelab.face.pose import HeadPose
from facelab.face.quality import sharpness
from facelab.face.types import eye_centers

CROP_FACE_TYPE = "whole_face"
CROP_SIZE = 224
MIN_CORRELATION_FRAMES = 3



def ssim(a: Image, b: Image) -> float:
    """Structural similarity of two RGB uint8 images (Gaussian-weighted, as in Wang et al. 2004); 1 = equal."""
    value = structural_similarity(a, b, channel_axis=2, data_range=255,  # type: ignore[no-untyped-call]
                                  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    return float(value)


def inter_ocular(landmarks: Points) -> float:
    right, left = eye_centers(landmarks)
    return max(float(np.linalg.norm(left - right)), 1e-6)


def landmark_distance(result: Points, dst: Points) -> float:
    """Mean point-to-point distance of the 68 landmarks over dst's inter-ocular distance."""
    d = np.linalg.norm(np.asarray(result, np.float64) - np.asarray(dst, np.float64), axis=1)
    return float(d.mean() / inter_ocular(dst))


def pose_difference(result: HeadPose, dst: HeadPose) -> tuple[float, float, float, float]:
    """(|d yaw|, |d pitch|, |d roll|, Euclidean norm of the three), degrees."""
    dy, dp, dr = abs(result.yaw - dst.yaw), abs(result.pitch - dst.pitch), abs(result.roll - dst.roll)
    return dy, dp, dr, float(np.sqrt(dy * dy + dp * dp + dr * dr))


def landmark_jitter(result: Points, result_next: Points, dst: Points, dst_next: Points) -> float:
    """Frame-to-frame landmark motion of the result that dst does not have: the mean length of
    (result's motion - dst's motion) over the 68 points, over dst's inter-ocular distance. 0 when the
    swapped face moves exactly as dst's face does."""
    move_r = np.asarray(result_next, np.float64) - np.asarray(result, np.float64)
    move_d = np.asarray(dst_next, np.float64) - np.asarray(dst, np.float64)
    return float(np.linalg.norm(move_r - move_d, axis=1).mean() / inter_ocular(dst))


def flicker(result: Image, result_next: Image, dst: Image, dst_next: Image) -> float:
    """Frame-to-frame pixel change of the result's face region that dst's does not have: the mean
    absolute difference of the two temporal differences, in 8-bit levels. All four crops come from the
    same transform, so camera and head motion present in dst cancel out."""
    dr = result_next.astype(np.int16) - result.astype(np.int16)
    dd = dst_next.astype(np.int16) - dst.astype(np.int16)
    diff: NDArray[np.int16] = np.abs(dr - dd)
    return float(diff.mean())


def detail_ratio(result: Image, dst: Image, hull: Points) -> float:
    """The result's sharpness over dst's inside the convex hull of `hull` (points in the images' pixels;
    the same region in both): 1 when the result is as detailed as dst, towards 0 when it is blurrier.
    Sharpness is the variance of the grey image's Laplacian (facelab.face.quality.sharpness). NaN when
    dst has no detail there (a flat region)."""
    mask = fill_hull(np.asarray(hull, np.float64), (dst.shape[0], dst.shape[1]))
    reference = sharpness(dst, mask)
    return sharpness(result, mask) / reference if reference > 0 else float("nan")


def correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson correlation of two paired series (-1..1); None with fewer than MIN_CORRELATION_FRAMES
    pairs or when either series is constant (no variance to correlate)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(x) != len(y):
        raise ValueError(f"series of different lengths ({len(x)} and {len(y)})")
    if len(x) < MIN_CORRELATION_FRAMES:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    sx, sy = float(np.sqrt((dx * dx).sum())), float(np.sqrt((dy * dy).sum()))
    # a constant series leaves only rounding noise after subtracting its mean
    if sx <= 1e-9 * float(np.abs(x).max()) or sy <= 1e-9 * float(np.abs(y).max()):
        return None
    return float(np.clip((dx * dy).sum() / (sx * sy), -1.0, 1.0))


def mean_abs_difference(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The mean of |a - b| over paired values; None for none. For the mouth openings it is defined where
    the correlation is not: a dst whose mouth hardly moves still shows whether the result's stays as
    closed (or as open) as dst's."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(x) != len(y):
        raise ValueError(f"series of different lengths ({len(x)} and {len(y)})")
    return float(np.abs(x - y).mean()) if len(x) else None


def closer_share(id_src: Sequence[float], id_dst: Sequence[float]) -> float | None:
    """The share of frames (0..1) whose result face is closer to src than to dst (id_src < id_dst, both
    identity distances of the same frame); None for no frames."""
    if not id_src and not id_dst:
        return None
    return sum(1 for s, d in zip(id_src, id_dst, strict=True) if s < d) / len(id_src)

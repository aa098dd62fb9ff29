"""Per-frame swap-quality measures between a result frame and the dst frame it replaces.

All take plain arrays: RGB uint8 frames, 68-point landmarks in frame pixels. Landmark distances are in
units of dst's inter-ocular distance (between the eye centres), so they compare across resolutions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from skimage.metrics import structural_similarity

from facelab.face.pose import HeadPose
from facelab.face.types import Image, Points, eye_centers

CROP_FACE_TYPE = "whole_face"
CROP_SIZE = 224


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

"""Similarity transforms and affine helpers shared by alignment, merging and training."""

from __future__ import annotations

import numpy as np

from facelab.core.types import FloatArray


def umeyama(src: FloatArray, dst: FloatArray, estimate_scale: bool = True) -> FloatArray:
    """Least-squares similarity transform (rotation, uniform scale, translation) mapping src onto dst.

    Umeyama, "Least-squares estimation of transformation parameters between two point patterns",
    TPAMI 1991. Returns the 2x3 matrix M with dst ~= M[:, :2] @ src + M[:, 2].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[0] < 2:
        raise ValueError(f"umeyama needs two equal (N, D) point sets, got {src.shape} and {dst.shape}")
    n, dim = src.shape
    mu_s = src.mean(axis=0)
    mu_d = dst.mean(axis=0)
    s_c = src - mu_s
    d_c = dst - mu_d
    cov = d_c.T @ s_c / n
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(dim)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = float((s_c**2).sum() / n)
    scale = float((sig * d).sum() / var_s) if estimate_scale and var_s > 0 else 1.0
    m = np.zeros((dim, dim + 1))
    m[:, :dim] = scale * rot
    m[:, dim] = mu_d - scale * rot @ mu_s
    return m


def transform_points(points: FloatArray, mat: FloatArray) -> FloatArray:
    """Apply a 2x3 affine to (N, 2) points."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(mat, dtype=np.float64)
    out: FloatArray = pts @ m[:, :2].T + m[:, 2]
    return out


def invert_affine(mat: FloatArray) -> FloatArray:
    """Inverse of a 2x3 affine, in float64 (cv2.invertAffineTransform works in float32 precision)."""
    m = np.asarray(mat, dtype=np.float64)
    a = m[:, :2]
    a_inv = np.linalg.inv(a)
    out = np.zeros((2, 3))
    out[:, :2] = a_inv
    out[:, 2] = -a_inv @ m[:, 2]
    return out


def affine_scale(mat: FloatArray) -> float:
    """The uniform scale of a similarity transform."""
    m = np.asarray(mat, dtype=np.float64)
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))


def affine_rotation_deg(mat: FloatArray) -> float:
    """Rotation angle (degrees, counter-clockwise in image coordinates) of a similarity transform."""
    m = np.asarray(mat, dtype=np.float64)
    return float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))

"""DeepFaceLab's whole-face framing, as the tools that run .dfm files crop faces, and the fixed resampling
between it and a facelab model's own framing.

Neither DeepFaceLive nor FaceFusion reads a face type from a .dfm: both hand the model a whole-face crop
in DeepFaceLab's framing. FaceFusion writes that framing as a five-point template (``DFL_WHOLE_FACE_5``,
the fact used here) fitted with a similarity to each face's eye centres, nose tip and mouth corners.
facelab's face types are fitted to 51 landmarks on its own mean face (facelab.face.align); the
``dfl_whole_face`` entry of ``FACE_TYPE_GEOMETRY`` is the facelab framing that matches the template on
real faces (tools/derive_dfl_framing.py; figures in docs/export.md).

A model trained in another framing is exported with a fixed resampling inside the graph: the DFL crop is
resampled to the model's crop (both are the same canonical face box scaled and shifted, so the resampling
is separable: two matrix products per image, bicubic weights as OpenCV's), and the model's outputs are
resampled back; outside the model's crop the face is the input and both masks are 0.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facelab.core.geometry import invert_affine
from facelab.core.types import F64
from facelab.face.align import FACE_TYPE_GEOMETRY, canonical_to_crop, compose

DFL_FRAMING = "dfl_whole_face"

# FaceFusion's `dfl_whole_face` warp template (facefusion/face_helper.py WARP_TEMPLATES), in units of the
# crop side: image-left eye centre, image-right eye centre, nose tip, left and right mouth corners
DFL_WHOLE_FACE_5 = np.array([
    (0.35342266, 0.39285716),
    (0.62797622, 0.39285716),
    (0.48660713, 0.54017860),
    (0.38839287, 0.68750011),
    (0.59821427, 0.68750011),
])


def five_points(landmarks: F64) -> F64:
    """The five points of a 68-point (iBUG) face as FaceFusion takes them: eye centres (mean of each eye's
    six points), nose tip (30), mouth corners (48, 54)."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)
    return np.array([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def template_transform(landmarks: F64, size: int) -> F64:
    """Frame pixels -> a ``size`` crop in DFL's whole-face framing, fitted as FaceFusion fits it (a
    similarity from the five points to the template, least squares)."""
    mat, _ = cv2.estimateAffinePartial2D(five_points(landmarks), DFL_WHOLE_FACE_5 * size, method=cv2.LMEDS)
    return np.asarray(mat, dtype=np.float64)


def corner_displacement(mat_a: F64, mat_b: F64, size: int) -> float:
    """Mean distance (crop pixels) between the corners of crop a and where crop b puts the same frame points."""
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64)
    frame = corners @ invert_affine(mat_a)[:, :2].T + invert_affine(mat_a)[:, 2]
    in_b = frame @ mat_b[:, :2].T + mat_b[:, 2]
    return float(np.linalg.norm(in_b - corners, axis=1).mean())


def dfl_resolution(face_type: str, resolution: int, multiple: int = 16) -> int:
    """The .dfm crop side that keeps the model's pixel density: the DFL crop is larger than whole_face, so
    it gets more pixels (rounded up to ``multiple``)."""
    side = 1.0 + 2 * FACE_TYPE_GEOMETRY[DFL_FRAMING].padding
    own = 1.0 + 2 * FACE_TYPE_GEOMETRY[face_type].padding
    return int(math.ceil(resolution * side / own / multiple) * multiple)


def _cubic(t: F64, a: float = -0.75) -> F64:
    """OpenCV's bicubic kernel (a = -0.75)."""
    t = np.abs(t)
    out: F64 = np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                    np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))
    return out


def resample_matrix(n_out: int, n_in: int, scale: float, offset: float) -> F64:
    """(n_out, n_in) bicubic interpolation matrix: output sample i reads input position scale*i + offset,
    edge samples repeated (as cv2.BORDER_REPLICATE)."""
    pos = scale * np.arange(n_out) + offset
    base = np.floor(pos).astype(np.int64)
    out: F64 = np.zeros((n_out, n_in))
    for k in range(-1, 3):
        idx = base + k
        w = _cubic(pos - idx)
        np.add.at(out, (np.arange(n_out), np.clip(idx, 0, n_in - 1)), w)
    return out


def axis_maps(from_type: str, from_size: int, to_type: str, to_size: int) -> tuple[F64, F64]:
    """(scale, offset) per axis (x, y) of the pixel map from a ``to_type`` crop back into a ``from_type``
    crop: to-pixel i reads from-pixel scale*i + offset. Both framings are the canonical box scaled and
    shifted (no rotation), so the map is separable."""
    mat = compose(canonical_to_crop(from_type, from_size), invert_affine(canonical_to_crop(to_type, to_size)))
    assert abs(mat[0, 1]) < 1e-12 and abs(mat[1, 0]) < 1e-12, "framings differ by a rotation"
    return np.array([mat[0, 0], mat[0, 2]]), np.array([mat[1, 1], mat[1, 2]])


def resampling(from_type: str, from_size: int, to_type: str, to_size: int) -> tuple[F64, F64, F64]:
    """Matrices for resampling a ``from`` crop to a ``to`` crop: (rows (to, from), cols (to, from), inside
    (to, to)): out = rows @ img @ cols.T; ``inside`` is 1 where the to-pixel lies inside the from crop."""
    (sx, ox), (sy, oy) = axis_maps(from_type, from_size, to_type, to_size)
    rows = resample_matrix(to_size, from_size, sy, oy)
    cols = resample_matrix(to_size, from_size, sx, ox)
    py, px = sy * np.arange(to_size) + oy, sx * np.arange(to_size) + ox
    iy = ((py >= -0.5) & (py <= from_size - 0.5)).astype(np.float64)
    ix = ((px >= -0.5) & (px <= from_size - 0.5)).astype(np.float64)
    inside: F64 = np.outer(iy, ix)
    return rows, cols, inside

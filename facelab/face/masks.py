"""Face masks: the landmark hull per face type (whole_face and head reach over the forehead), the
eyes-and-mouth region that training weights more heavily, and ``face_mask``, the one face mask of a
stored face (its XSeg labels or mask, else its hull) that training and XSeg use."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from facelab.core.choices import FaceType
from facelab.core.errors import MetadataError
from facelab.core.geometry import transform_points
from facelab.core.types import FloatArray, Mask, Points
from facelab.face.align import compose
from facelab.face.types import JAW, LEFT_BROW, LEFT_EYE, OUTER_MOUTH, RIGHT_BROW, RIGHT_EYE
from facelab.media.limits import decode_image

SUBPIXEL_BITS = 4  # polygon rasterisation precision (cv2 `shift`)

# Forehead height as a share of the brow-to-chin distance (anthropometric average: about one half).
_FOREHEAD = {"whole_face": 0.45, "dfl_whole_face": 0.45, "head": 0.75}


def hull_points(landmarks: Points, face_type: FaceType | str = "full") -> Points:
    """Outline points of the face region for a face type (jaw line, brows, raised brows for foreheads)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    brows = np.vstack([lm[RIGHT_BROW], lm[LEFT_BROW]])
    pts = [lm[JAW], brows]
    lift = _FOREHEAD.get(face_type)
    if lift is not None:
        chin = lm[8]
        up = brows.mean(axis=0) - chin
        # raise each brow point along the face's vertical axis, so the hull follows head roll
        pts.append(brows + up * lift)
    out: Points = np.vstack(pts)
    return out


def fill_hull(points: Points, shape: tuple[int, int]) -> Mask:
    mask = np.zeros(shape, dtype=np.float32)
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0, lineType=cv2.LINE_AA)
    return mask


def face_hull_mask(landmarks: Points, shape: tuple[int, int], face_type: FaceType | str = "full") -> Mask:
    """1 inside the face region for the face type, 0 outside (anti-aliased edge)."""
    return fill_hull(hull_points(landmarks, face_type), shape)


def _grown(points: Points, factor: float) -> Points:
    c = points.mean(axis=0)
    out: Points = c + (points - c) * factor
    return out


def eyes_mouth_mask(landmarks: Points, shape: tuple[int, int]) -> Mask:
    """1 over both eyes (with a margin for lids and lashes) and the mouth, 0 elsewhere."""
    lm = np.asarray(landmarks, dtype=np.float64)
    mask = np.zeros(shape, dtype=np.float32)
    for region, factor in ((RIGHT_EYE, 1.8), (LEFT_EYE, 1.8), (OUTER_MOUTH, 1.2)):
        np.maximum(mask, fill_hull(_grown(lm[region], factor), shape), out=mask)
    return mask


# ---- the mask of a stored face ------------------------------------------------------------------

class Polygon(Protocol):
    """An XSeg label polygon in stored-face pixels (``facelab.faceset.record.XSegPolygon``)."""

    @property
    def kind(self) -> str: ...

    @property
    def points(self) -> Sequence[tuple[float, float]]: ...


class MaskedFace(Protocol):
    """What ``face_mask`` reads of a stored face's record (``facelab.faceset.record.FaceRecord``)."""

    @property
    def size(self) -> int: ...

    @property
    def face_type(self) -> str: ...

    @property
    def xseg_polygons(self) -> Sequence[Polygon]: ...

    @property
    def xseg_mask(self) -> str | None: ...

    def landmarks_array(self) -> NDArray[np.float64]: ...


def resize_matrix(from_w: int, from_h: int, to_w: int, to_h: int) -> FloatArray:
    """Pixel-centre aligned resize (cv2.resize's mapping) as a 2x3 affine."""
    kx, ky = to_w / from_w, to_h / from_h
    return np.array([[kx, 0.0, 0.5 * kx - 0.5], [0.0, ky, 0.5 * ky - 0.5]])


def decode_stored_mask(data: str, path: Path | str | None = None) -> Mask:
    """A stored XSeg mask (base64 of an 8-bit grayscale PNG) as float32 in [0, 1] at its stored size.

    Raises MetadataError naming ``path`` when it is not a decodable grayscale PNG.
    """
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise MetadataError("xseg_mask is not valid base64", path) from None
    decoded = decode_image(raw, cv2.IMREAD_GRAYSCALE, path)
    if decoded is None or decoded.ndim != 2 or min(decoded.shape) < 1:
        raise MetadataError("xseg_mask is not a decodable grayscale image", path)
    out: Mask = np.asarray(decoded, dtype=np.float32) * np.float32(1 / 255)
    return out


def polygon_mask(polygons: Sequence[Polygon], matrix: FloatArray, size: int) -> Mask:
    """The polygons drawn in order through ``matrix`` (include: 1, exclude: 0), size x size, anti-aliased."""
    mask = np.zeros((size, size), dtype=np.float32)
    scale = 1 << SUBPIXEL_BITS
    for poly in polygons:
        pts = transform_points(np.asarray(poly.points, dtype=np.float64), matrix)
        fixed = np.round(pts * scale).astype(np.int32).reshape(-1, 1, 2)
        value = 1.0 if poly.kind == "include" else 0.0
        cv2.fillPoly(mask, [fixed], value, lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)
    return mask


def face_mask(record: MaskedFace, matrix: FloatArray, size: int, *, face_type: FaceType | str | None = None,
              xseg: bool = True, landmarks: Points | None = None, path: Path | str | None = None) -> Mask:
    """The face mask of a stored face seen through ``matrix`` (stored px -> output px), size x size.

    With ``xseg``: the hand-drawn polygons when the record has any (ground truth), else its stored XSeg mask;
    otherwise the landmark hull for ``face_type`` (default: the record's). ``landmarks`` (default: the
    record's) lets a caller pass landmarks it holds already; ``path`` names the face in errors.
    """
    if xseg and record.xseg_polygons:
        return polygon_mask(record.xseg_polygons, matrix, size)
    if xseg and record.xseg_mask is not None:
        raw = decode_stored_mask(record.xseg_mask, path)
        h, w = raw.shape
        to_out = compose(matrix, resize_matrix(w, h, record.size, record.size))
        warped = cv2.warpAffine(raw, to_out, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        out: Mask = np.clip(np.asarray(warped, dtype=np.float32), 0.0, 1.0)
        return out
    points = record.landmarks_array() if landmarks is None else landmarks
    return face_hull_mask(transform_points(points, matrix), (size, size), face_type or record.face_type)

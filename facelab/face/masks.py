"""Landmark masks: the face hull per face type (whole_face and head reach over the forehead) and the
eyes-and-mouth region that training weights more heavily."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from facelab.core.choices import FaceType
from facelab.face.types import JAW, LEFT_BROW, LEFT_EYE, OUTER_MOUTH, RIGHT_BROW, RIGHT_EYE, Points

Mask = NDArray[np.float32]

# Forehead height as a share of the brow-to-chin distance (anthropometric average: about one half).
_FOREHEAD = {"whole_face": 0.45, "head": 0.75}


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

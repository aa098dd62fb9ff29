"""Where a face's border is not skin: hair, a hat's brim or a dark shadow that reaches inside the landmark
hull at the temples, cheeks and jaw.

The 68 landmarks outline the jaw and brows, so the hull of a face with hair over its temples or cheeks
holds that hair. A swap model trained on such faces draws it too, and a mask built from the hull pastes it
onto dst's cheeks (a dark smear along the face's side). Without a face-parsing model that could run
offline, the face's own skin colour decides: the colour statistics of the inner face (the hull shrunk by
``band`` of the face's width, without eyes, brows and mouth) against each pixel of the outer band, by
Mahalanobis distance in CIE Lab. Eyes, brows and mouth (grown a little) are never excluded, nor anything
in the inner face: only the band where hair and shadow intrude.
"""

from __future__ import annotations

import cv2
import numpy as np

from facelab.core.types import F32, U8, Mask, Points
from facelab.face.masks import face_hull_mask
from facelab.face.types import LEFT_BROW, LEFT_EYE, OUTER_MOUTH, RIGHT_BROW, RIGHT_EYE

BAND = 0.25  # the outer band, as a share of the face's width (jaw point 0 to 16)
# Mahalanobis distance from the inner face's skin: a band pixel up to SKIN_UNTIL is skin, from NOT_SKIN_FROM on it
# is not, and the share in between ramps linearly (a soft edge, so the mask does not flip between frames)
SKIN_UNTIL = 2.0
NOT_SKIN_FROM = 5.0
_SMOOTH = 0.02  # the map is smoothed over this share of the face's width (Gaussian sigma): steadier over frames
_FEATURE_GROW = 0.08  # eyes, brows and mouth grown by this share of the face's width, and kept
_COLOR_FLOOR = 4.0  # added to the skin covariance's diagonal (Lab units squared): a flat skin patch must not
#                     make every slight shade "not skin"


def _ellipse(size: float) -> cv2.typing.MatLike:
    k = max(3, round(size) | 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def _features(landmarks: Points, shape: tuple[int, int], grow: float) -> U8:
    feats = np.zeros(shape, np.uint8)
    for part in (RIGHT_EYE, LEFT_EYE, RIGHT_BROW, LEFT_BROW, OUTER_MOUTH):
        pts = np.round(np.asarray(landmarks, np.float64)[part]).astype(np.int32)
        cv2.fillConvexPoly(feats, cv2.convexHull(pts), 1)
    return np.asarray(cv2.dilate(feats, _ellipse(grow)), dtype=np.uint8)


def nonskin_border(face_rgb: U8 | F32, landmarks: Points, face_type: str = "full", band: float = BAND) -> Mask:
    """How much each pixel of the hull's outer band is not the face's skin colour: 0 (skin, and everywhere
    outside the band) to 1 (float32, the image's size).

    ``face_rgb``: the face image (RGB, uint8 or float in [0, 1]); ``landmarks``: its 68 points in the
    image's pixels. All zeros when the inner face is too small to sample.
    """
    img = np.asarray(face_rgb if face_rgb.dtype == np.uint8 else
                     np.clip(face_rgb.astype(np.float32) * 255.0 + 0.5, 0, 255), dtype=np.uint8)
    h, w = img.shape[:2]
    lm = np.asarray(landmarks, np.float64)
    width = float(np.linalg.norm(lm[16] - lm[0]))
    hull = face_hull_mask(lm, (h, w), face_type) > 0.5
    inner = cv2.erode(hull.astype(np.uint8), _ellipse(width * band)) > 0
    feats = _features(lm, (h, w), width * _FEATURE_GROW) > 0
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float64)
    sample = lab[inner & ~feats]
    out = np.zeros((h, w), np.float32)
    if len(sample) < 16:
        return out
    centre = np.median(sample, axis=0)
    cov = np.cov((sample - centre).T) + np.eye(3) * _COLOR_FLOOR
    d = lab - centre
    # the Mahalanobis distance as (d @ inv) . d: the same values as the three-operand einsum (to ~1e-13) in a fifth
    # of its time (0.14 against 0.77 ms on a 96 px crop), which live pays on every frame
    dist = np.sqrt(np.einsum("...i,...i->...", d @ np.linalg.inv(cov), d))
    ramp = np.clip((dist - SKIN_UNTIL) / (NOT_SKIN_FROM - SKIN_UNTIL), 0.0, 1.0).astype(np.float32)
    band_px = hull & ~inner & ~feats
    out[band_px] = ramp[band_px]
    # an isolated pixel is noise, not hair: a 3x3 opening (grey-level) keeps only areas of it
    opened = cv2.morphologyEx(out, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    smooth = cv2.GaussianBlur(opened, (0, 0), max(0.5, width * _SMOOTH))
    return np.asarray(smooth * band_px, dtype=np.float32)

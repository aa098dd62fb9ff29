"""Plain data types shared by the face primitives (the array aliases are ``facelab.core.types``), and the
68-point (iBUG 300-W) index groups."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelab.core.types import Points

# iBUG 300-W 68-point layout (the layout dlib and DeepFaceLab use).
JAW = slice(0, 17)
RIGHT_BROW = slice(17, 22)  # the subject's right brow: left side of the image
LEFT_BROW = slice(22, 27)
NOSE_BRIDGE = slice(27, 31)
NOSE_BASE = slice(31, 36)
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
MOUTH = slice(48, 68)
OUTER_MOUTH = slice(48, 60)
INNER_FACE = slice(17, 68)  # everything but the jaw line: stable across pose, used for alignment


@dataclass(frozen=True)
class FaceBox:
    """A detected face: box in pixels (left, top, right, bottom), a score, and which detector found it."""

    left: float
    top: float
    right: float
    bottom: float
    score: float
    detector: str

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def size(self) -> float:
        return float(np.sqrt(max(self.width, 0.0) * max(self.height, 0.0)))

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.right, self.bottom)


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    iw = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    ih = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = iw * ih
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def eye_centers(landmarks: Points) -> tuple[Points, Points]:
    """(right eye centre, left eye centre) of 68 landmarks; the right eye is on the image's left."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[RIGHT_EYE].mean(axis=0), lm[LEFT_EYE].mean(axis=0)

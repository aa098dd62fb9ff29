"""Which dst frames need a look: no face, a face with a low detector score, or a sudden landmark jump.

A jump is measured against the neighbouring frames: for a face of frame t, the mean distance over the 68
points to the nearest face (by landmark centroid) of frame t-1, of frame t+1, and to the midpoint of the
two (which follows steady motion), each divided by the face's inter-ocular distance; the smallest of them
is the face's jump. A landmark glitch in one frame is far from both neighbours and from their midpoint; a
shot cut is far from one side only, so it is not flagged. On the studio test clip (6 fps) the largest
jump of a correct face is 0.055; the threshold is 0.15.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facelab.core.types import Points
from facelab.face.types import LEFT_EYE, RIGHT_EYE

JUMP_IOD = 0.15  # a jump above this share of the inter-ocular distance is suspicious
LOW_SCORE = {"dlib": 0.5, "blazeface": 0.7}  # detector -> lowest score that is not suspicious


@dataclass
class FaceInfo:
    face_index: int
    landmarks: Points  # in the frame
    score: float | None
    detector: str


@dataclass
class Reason:
    kind: str  # "no_face", "low_score", "jump"
    text: str
    face_index: int | None = None
    value: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "text": self.text, "face_index": self.face_index, "value": self.value}


@dataclass
class FrameCheck:
    stem: str
    faces: int
    reasons: list[Reason] = field(default_factory=list)


def iod(points: Points) -> float:
    """Inter-ocular distance: between the two eyes' centres (at least 1 px)."""
    return max(1.0, float(np.linalg.norm(points[RIGHT_EYE].mean(axis=0) - points[LEFT_EYE].mean(axis=0))))


def mean_error_iod(a: Points, b: Points) -> float:
    """Mean point distance between two 68-point sets, in inter-ocular distances of ``b``."""
    return float(np.linalg.norm(a - b, axis=1).mean()) / iod(b)


def _nearest(lm: Points, faces: list[FaceInfo]) -> Points | None:
    if not faces:
        return None
    c = lm.mean(axis=0)
    return min(faces, key=lambda f: float(np.linalg.norm(f.landmarks.mean(axis=0) - c))).landmarks


def jump(prev: list[FaceInfo], face: FaceInfo, nxt: list[FaceInfo]) -> float | None:
    """The face's jump against its neighbours (None without a neighbouring face)."""
    lm = face.landmarks
    p, n = _nearest(lm, prev), _nearest(lm, nxt)
    cands = [mean_error_iod(other, lm) for other in (p, n) if other is not None]
    if p is not None and n is not None:
        cands.append(mean_error_iod((p + n) / 2, lm))
    return min(cands) if cands else None


def check_frames(stems: list[str], faces: dict[str, list[FaceInfo]]) -> list[FrameCheck]:
    """Every frame's reasons to look at it (an empty list: nothing suspicious)."""
    out = []
    for t, stem in enumerate(stems):
        here = faces.get(stem, [])
        check = FrameCheck(stem, len(here))
        if not here:
            check.reasons.append(Reason("no_face", "no face"))
        prev = faces.get(stems[t - 1], []) if t > 0 else []
        nxt = faces.get(stems[t + 1], []) if t + 1 < len(stems) else []
        for f in here:
            low = LOW_SCORE.get(f.detector)
            if low is not None and f.score is not None and f.score < low:
                check.reasons.append(Reason("low_score", f"face {f.face_index}: low {f.detector} score {f.score:.2f} "
                                            f"(< {low})", f.face_index, f.score))
            j = jump(prev, f, nxt)
            if j is not None and j > JUMP_IOD:
                check.reasons.append(Reason("jump", f"face {f.face_index}: landmarks jump {j:.2f} IOD against the "
                                            f"neighbouring frames (> {JUMP_IOD})", f.face_index, j))
        out.append(check)
    return out

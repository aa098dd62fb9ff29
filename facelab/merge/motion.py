"""The motion of each face between neighbouring frames, for the motion-blur option."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from facelab.faceset.record import FaceRecord

Motions = dict[tuple[str, int], tuple[float, float]]


def face_centre(rec: FaceRecord) -> NDArray[np.float64]:
    inv = rec.inverse_affine()
    c = rec.size / 2.0
    out: NDArray[np.float64] = inv @ np.array([c, c, 1.0])
    return out


def face_motions(by_frame: dict[str, list[FaceRecord]], order: list[str]) -> Motions:
    """Per (frame, face index): the face centre's motion in frame pixels per frame (central difference)."""
    centres = {(stem, r.face_index): face_centre(r) for stem, recs in by_frame.items() for r in recs}
    out: Motions = {}
    for i, stem in enumerate(order):
        for r in by_frame.get(stem, []):
            prev = centres.get((order[i - 1], r.face_index)) if i > 0 else None
            nxt = centres.get((order[i + 1], r.face_index)) if i + 1 < len(order) else None
            here = centres[(stem, r.face_index)]
            if prev is not None and nxt is not None:
                v = (nxt - prev) / 2.0
            elif prev is not None:
                v = here - prev
            elif nxt is not None:
                v = nxt - here
            else:
                continue
            out[(stem, r.face_index)] = (float(v[0]), float(v[1]))
    return out

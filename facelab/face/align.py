"""Face alignment: a similarity transform from a frame to a square, upright, canonical face crop.

The transform is the Umeyama least-squares fit of the 51 inner landmarks (brows, eyes, nose, mouth;
the jaw line moves with pose, so it is left out) onto MEAN_FACE_2D, whose inner points span the unit
box [0, 1]^2. A face type then picks which part of that canonical frame the square crop shows:

| face type  | padding | shift up | covers                                              |
|------------|---------|----------|-----------------------------------------------------|
| half       | 0.00    | 0.00     | brows to lower lip, eye corner to eye corner        |
| mid_full   | 0.08    | 0.00     | half plus cheeks                                    |
| full       | 0.25    | 0.00     | brows to chin, cheek to cheek                       |
| whole_face | 0.40    | 0.10     | full plus the forehead (the DFL default for swaps)  |
| head       | 0.70    | 0.20     | the whole head with hair, for head swaps            |

The crop's half-side is (0.5 + padding) canonical units, its centre (0.5 + shift_x, 0.5 - shift), both in
units of the inner-face box. Any size from 64 to 1024 pixels.

Besides the face types, ``FACE_TYPE_GEOMETRY`` holds other tools' framings that facelab crops for but
does not extract or train in: ``dfl_whole_face`` is DeepFaceLab's whole face as DeepFaceLive and FaceFusion
cut it for a .dfm model (derived by tools/derive_dfl_framing.py on 2,796 faces of the demo and quality
pairs: FaceFusion's five-point template against facelab's canonical fit; see facelab.export.framing).
``framing_rank`` places such a framing among the face types by size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelab.core.choices import FaceType
from facelab.core.errors import InputError
from facelab.core.geometry import invert_affine, transform_points, umeyama
from facelab.core.templates import MEAN_FACE_2D
from facelab.core.types import FloatArray, Image, Points
from facelab.face.types import INNER_FACE

MIN_SIZE, MAX_SIZE = 64, 1024


@dataclass(frozen=True)
class FaceTypeGeometry:
    padding: float
    shift_up: float
    shift_x: float = 0.0


FACE_TYPE_GEOMETRY: dict[str, FaceTypeGeometry] = {
    "half": FaceTypeGeometry(0.0, 0.0),
    "mid_full": FaceTypeGeometry(0.08, 0.0),
    "full": FaceTypeGeometry(0.25, 0.0),
    "whole_face": FaceTypeGeometry(0.40, 0.10),
    "head": FaceTypeGeometry(0.70, 0.20),
    "dfl_whole_face": FaceTypeGeometry(0.5329, 0.0374, 0.0202),  # a framing, not a face type (see above)
}

# Larger face types contain smaller ones: converting an aligned face to a smaller type is a crop.
FACE_TYPE_ORDER: tuple[str, ...] = ("half", "mid_full", "full", "whole_face", "head")
# other tools' framings: the rank among FACE_TYPE_ORDER they count as. dfl_whole_face is a little larger than
# whole_face (a wider margin, inside head) but shows the same face: a whole_face record serves it (a merge
# crops from the frame; only a stored mask is cut to the record's crop, and the face it covers is inside both)
_FRAMING_RANKS = {"dfl_whole_face": 3.0}


def framing_rank(face_type: str) -> float:
    """The size rank of a face type (its FACE_TYPE_ORDER index) or framing: a face extracted as type a
    holds a crop of type b when rank(a) >= rank(b)."""
    if face_type in _FRAMING_RANKS:
        return _FRAMING_RANKS[face_type]
    if face_type not in FACE_TYPE_ORDER:
        raise InputError(f"unknown face type {face_type!r}")
    return float(FACE_TYPE_ORDER.index(face_type))


def check_size(size: int) -> int:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"face size {size} is out of range {MIN_SIZE}..{MAX_SIZE}")
    return size


def canonical_transform(landmarks: Points) -> FloatArray:
    """2x3 similarity from frame pixels to canonical units (inner-face box = unit square)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks, got shape {lm.shape}")
    return umeyama(lm[INNER_FACE], MEAN_FACE_2D[INNER_FACE])


def canonical_to_crop(face_type: FaceType | str, size: int) -> FloatArray:
    """2x3 affine from canonical units to the pixels of a face-type crop of the given size."""
    try:
        g = FACE_TYPE_GEOMETRY[face_type]
    except KeyError:
        raise InputError(f"unknown face type {face_type!r}") from None
    half = 0.5 + g.padding
    scale = size / (2 * half)
    cx, cy = 0.5 + g.shift_x, 0.5 - g.shift_up
    return np.array([[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]])


def compose(outer: FloatArray, inner: FloatArray) -> FloatArray:
    """The 2x3 affine applying `inner` first, then `outer`."""
    a = np.vstack([outer, [0.0, 0.0, 1.0]]) @ np.vstack([inner, [0.0, 0.0, 1.0]])
    out: FloatArray = a[:2]
    return out


def face_transform(landmarks: Points, face_type: FaceType | str, size: int) -> FloatArray:
    """2x3 affine from frame pixels to the aligned crop (the FaceRecord's image_to_face)."""
    return compose(canonical_to_crop(face_type, size), canonical_transform(landmarks))


def warp_face(image: Image, mat: FloatArray, size: int) -> Image:
    """The aligned crop: bicubic, with edge pixels repeated where the crop leaves the frame."""
    out = cv2.warpAffine(image, mat, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


def unwarp_points(points: Points, mat: FloatArray) -> Points:
    """Map points from an aligned crop back to the frame (the inverse transform, for merging)."""
    return transform_points(points, invert_affine(mat))


def convert_transform(mat: FloatArray, from_type: FaceType | str, from_size: int,
                      to_type: FaceType | str, to_size: int) -> FloatArray:
    """Re-express an image_to_face transform for another face type and size (faceset resize)."""
    to_canonical = invert_affine(canonical_to_crop(from_type, from_size))
    return compose(canonical_to_crop(to_type, to_size), compose(to_canonical, mat))

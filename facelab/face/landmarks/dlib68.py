"""dlib's 68-point shape predictor (trained on iBUG 300-W: non-commercial terms, see README)."""

from __future__ import annotations

import dlib
import numpy as np

from facelab.core.types import Image, Points
from facelab.face.models import dlib_model
from facelab.face.types import FaceBox


def to_dlib_rect(box: FaceBox) -> dlib.rectangle:
    return dlib.rectangle(round(box.left), round(box.top),
                          round(box.right), round(box.bottom))


class DlibLandmarker:
    name = "dlib"

    def __init__(self) -> None:
        self._predictor = dlib.shape_predictor(str(dlib_model("shape_predictor_68_face_landmarks.dat")))

    def landmarks(self, image: Image, box: FaceBox) -> tuple[Points, str]:
        shape = self._predictor(image, to_dlib_rect(box))
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        return pts, self.name

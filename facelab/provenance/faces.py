"""Where to look for the watermark: merge marks only the swapped faces, so the verifier finds the faces
in a frame (dlib HOG + 68 landmarks) and reads the blocks inside their hulls."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from facelab.face.detect.dlib_hog import DlibHogDetector
from facelab.face.landmarks.dlib68 import DlibLandmarker
from facelab.face.masks import face_hull_mask


class FaceRegions:
    def __init__(self) -> None:
        self._det = DlibHogDetector()
        self._lmk = DlibLandmarker()

    def __call__(self, rgb: NDArray[np.uint8]) -> NDArray[np.bool_] | None:
        """The union of the face hulls (full face type) in the frame, or None when there is no face."""
        boxes = self._det.detect(rgb)
        if not boxes:
            return None
        region = np.zeros(rgb.shape[:2], dtype=np.bool_)
        for box in boxes:
            pts, _ = self._lmk.landmarks(rgb, box)
            region |= face_hull_mask(pts, (rgb.shape[0], rgb.shape[1]), "full") > 0.5
        return region

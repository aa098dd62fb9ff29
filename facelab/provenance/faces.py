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

    def __call__(self, rgb: NDArray[np.uint8]) -> list[NDArray[np.bool_]]:
        """One region per face in the frame (its hull, full face type); empty when there is no face."""
        regions = []
        for box in self._det.detect(rgb):
            pts, _ = self._lmk.landmarks(rgb, box)
            regions.append(face_hull_mask(pts, (rgb.shape[0], rgb.shape[1]), "full") > 0.5)
        return regions

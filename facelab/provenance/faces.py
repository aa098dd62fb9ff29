"""Where to look for the watermark: merge marks only the swapped faces, so the verifier finds the faces
in a frame (dlib HOG + 68 landmarks) and reads the blocks inside their hulls."""

from __future__ import annotations

from facelab.core.types import BoolArray, Image
from facelab.face.detect import create_detector
from facelab.face.landmarks import create_landmarker
from facelab.face.masks import face_hull_mask


class FaceRegions:
    def __init__(self) -> None:
        self._det = create_detector("dlib")
        self._lmk = create_landmarker("dlib")

    def __call__(self, rgb: Image) -> list[BoolArray]:
        """One region per face in the frame (its hull, full face type); empty when there is no face."""
        regions = []
        for box in self._det.detect(rgb):
            pts, _ = self._lmk.landmarks(rgb, box)
            regions.append(face_hull_mask(pts, (rgb.shape[0], rgb.shape[1]), "full") > 0.5)
        return regions

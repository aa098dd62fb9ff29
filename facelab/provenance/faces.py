"""Where to look for the watermark: merge marks only the swapped faces, so the verifier finds the faces
in a frame (dlib HOG + 68 landmarks) and reads the blocks inside their hulls."""

from __future__ import annotations

from facelab.core.types import BoolArray, Image, Points
from facelab.face.detect import create_detector
from facelab.face.landmarks import create_landmarker
from facelab.face.masks import face_hull_mask


class FaceRegions:
    def __init__(self, face_type: str = "full") -> None:
        self.face_type = face_type
        self._det = create_detector("dlib")
        self._lmk = create_landmarker("dlib")

    def landmarks(self, rgb: Image) -> list[Points]:
        """The 68 landmarks of every face in the frame."""
        return [self._lmk.landmarks(rgb, box)[0] for box in self._det.detect(rgb)]

    def __call__(self, rgb: Image) -> list[BoolArray]:
        """One region per face in the frame (its hull, of the face type); empty when there is no face."""
        return hulls(rgb, self.landmarks(rgb), self.face_type)


def hulls(rgb: Image, faces: list[Points], face_type: str) -> list[BoolArray]:
    """The hull of each face (68 landmarks) of the face type, as a frame-sized region."""
    return [face_hull_mask(pts, (rgb.shape[0], rgb.shape[1]), face_type) > 0.5 for pts in faces]

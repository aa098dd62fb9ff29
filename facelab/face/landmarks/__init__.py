"""68-point landmark backends behind one Protocol, created by name from the registry.

- `dlib`: dlib's 68-point shape predictor (2D regression trees, iBUG 300-W layout). Fast and precise on
  frontal and three-quarter faces.
- `facemesh`: MediaPipe's 468-point face mesh (a 3D-prior model) mapped to the 68-point layout; holds up
  at large yaw, where the 2D predictor collapses the jaw line.
- `auto`: the mesh first, on the detector's box; when the pose estimated from the mesh's points has
  |yaw| above a threshold its points are used, otherwise dlib's on a HOG-like box placed from them
  (see ``auto.py``). This mirrors the DeepFaceLab paper's pairing of a 2D model for standard poses with a
  3D-prior model for large angles.

A backend is one module plus one ``LANDMARK_BACKENDS.register`` line; options take their choices from
``LANDMARK_BACKENDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from facelab.core.registry import Registry
from facelab.core.types import Image, Points
from facelab.face.types import FaceBox


class Landmarker(Protocol):
    name: str

    def landmarks(self, image: Image, box: FaceBox) -> tuple[Points, str]:
        """68 (x, y) points for the face in `box` of an RGB image, and the name of the model used."""
        ...


def _dlib() -> Landmarker:
    from facelab.face.landmarks.dlib68 import DlibLandmarker

    return DlibLandmarker()


def _facemesh() -> Landmarker:
    from facelab.face.landmarks.facemesh import FaceMeshLandmarker

    return FaceMeshLandmarker()


def _auto() -> Landmarker:
    from facelab.face.landmarks.auto import AutoLandmarker
    from facelab.face.landmarks.facemesh import FaceMeshLandmarker

    return AutoLandmarker(_dlib(), FaceMeshLandmarker())


LANDMARK_BACKENDS: Registry[Callable[[], Landmarker]] = Registry("landmark backend")
LANDMARK_BACKENDS.register("auto", _auto)
LANDMARK_BACKENDS.register("dlib", _dlib)
LANDMARK_BACKENDS.register("facemesh", _facemesh)


def create_landmarker(name: str) -> Landmarker:
    return LANDMARK_BACKENDS.get(name)()

"""68-point landmark backends behind one Protocol, created by name from the registry.

- `dlib`: dlib's 68-point shape predictor (2D regression trees, iBUG 300-W layout). Fast and precise on
  frontal and three-quarter faces.
- `facemesh`: MediaPipe's 468-point face mesh (a 3D-prior model) mapped to the 68-point layout; holds up
  at large yaw, where the 2D predictor collapses the jaw line.
- `auto`: dlib first; when the pose estimated from its points has |yaw| above a threshold, facemesh.
  This mirrors the DeepFaceLab paper's pairing of a 2D model for standard poses with a 3D-prior model
  for large angles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from facelab.core.choices import LANDMARK_BACKENDS, LandmarkName
from facelab.core.errors import InputError
from facelab.face.types import FaceBox, Image, Points


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


REGISTRY: dict[str, Callable[[], Landmarker]] = {"auto": _auto, "dlib": _dlib, "facemesh": _facemesh}
assert set(REGISTRY) == set(LANDMARK_BACKENDS)


def create_landmarker(name: LandmarkName | str) -> Landmarker:
    try:
        factory = REGISTRY[name]
    except KeyError:
        choices = ", ".join(LANDMARK_BACKENDS)
        raise InputError(f"unknown landmark backend {name!r}; choose one of {choices}") from None
    return factory()

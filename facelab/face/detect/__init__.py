"""Face detectors behind one Protocol, created by name from the registry.

A detector is one module plus one ``DETECTORS.register`` line; options that name a detector take their
choices from ``DETECTORS`` (``Annotated[str, DETECTORS.choice()]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from facelab.core.registry import Registry
from facelab.core.types import Image
from facelab.face.types import FaceBox


class Detector(Protocol):
    name: str

    def detect(self, image: Image) -> list[FaceBox]:
        """Faces in an RGB uint8 image, best first."""
        ...


def _dlib(**settings: Any) -> Detector:
    from facelab.face.detect.dlib_hog import DlibHogDetector

    return DlibHogDetector(**settings)


def _blazeface(**settings: Any) -> Detector:
    from facelab.face.detect.blazeface import BlazeFaceDetector

    return BlazeFaceDetector(**settings)


DETECTORS: Registry[Callable[..., Detector]] = Registry("detector")
DETECTORS.register("dlib", _dlib)
DETECTORS.register("blazeface", _blazeface)


def create_detector(name: str, **settings: Any) -> Detector:
    """The detector registered as ``name``, made with its own ``settings`` (keyword arguments)."""
    return DETECTORS.get(name)(**settings)

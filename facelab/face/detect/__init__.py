"""Face detectors behind one Protocol, created by name from the registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from facelab.core.choices import DETECTORS, DetectorName
from facelab.core.errors import InputError
from facelab.face.types import FaceBox, Image


class Detector(Protocol):
    name: str

    def detect(self, image: Image) -> list[FaceBox]:
        """Faces in an RGB uint8 image, best first."""
        ...


def _dlib() -> Detector:
    from facelab.face.detect.dlib_hog import DlibHogDetector

    return DlibHogDetector()


def _blazeface() -> Detector:
    from facelab.face.detect.blazeface import BlazeFaceDetector

    return BlazeFaceDetector()


REGISTRY: dict[str, Callable[[], Detector]] = {"dlib": _dlib, "blazeface": _blazeface}
assert set(REGISTRY) == set(DETECTORS)


def create_detector(name: DetectorName | str) -> Detector:
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}") from None
    return factory()

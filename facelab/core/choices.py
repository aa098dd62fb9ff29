"""Every user-facing choice, defined once. CLI options, config files and the UI derive from these."""

from __future__ import annotations

from typing import Literal, get_args

FaceType = Literal["half", "mid_full", "full", "whole_face", "head"]
FACE_TYPES: tuple[str, ...] = get_args(FaceType)

DetectorName = Literal["dlib", "blazeface"]
DETECTORS: tuple[str, ...] = get_args(DetectorName)

LandmarkName = Literal["auto", "dlib", "facemesh"]
LANDMARK_BACKENDS: tuple[str, ...] = get_args(LandmarkName)

ImageFormat = Literal["png", "jpg"]
IMAGE_FORMATS: tuple[str, ...] = get_args(ImageFormat)

VideoCodec = Literal["h264", "h265"]
VIDEO_CODECS: tuple[str, ...] = get_args(VideoCodec)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")

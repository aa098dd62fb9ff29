"""The fixed user-facing choices (face types, formats, precisions...), each defined once; CLI options, config
files and the UI derive from these. Choices that name a plugin (detectors, landmark backends, sort methods,
colour transfers, mask modes, architectures) are not here: they come from the plugin's registry."""

from __future__ import annotations

from typing import Literal, get_args

FaceType = Literal["half", "mid_full", "full", "whole_face", "head"]
FACE_TYPES: tuple[str, ...] = get_args(FaceType)

ImageFormat = Literal["png", "jpg"]
IMAGE_FORMATS: tuple[str, ...] = get_args(ImageFormat)

VideoCodec = Literal["h264", "h265"]
VIDEO_CODECS: tuple[str, ...] = get_args(VideoCodec)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")

OptimizerName = Literal["adam", "adabelief", "rmsprop"]

Precision = Literal["auto", "fp32", "bf16", "fp16"]

DeviceName = Literal["auto", "cpu", "cuda", "mps"]

InitName = Literal["default", "he", "ca"]
INITS: tuple[str, ...] = get_args(InitName)


SharpenMode = Literal["none", "box", "gaussian", "unsharp"]

MergeDirection = Literal["src2dst", "dst2src"]

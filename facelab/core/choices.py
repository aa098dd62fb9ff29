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

OptimizerName = Literal["adam", "adabelief", "rmsprop"]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

DeviceName = Literal["auto", "cpu", "cuda", "mps"]
DEVICES: tuple[str, ...] = get_args(DeviceName)

InitName = Literal["default", "he", "ca"]
INITS: tuple[str, ...] = get_args(InitName)

PresetName = Literal["demo", "quick96", "saehd"]
PRESETS: tuple[str, ...] = get_args(PresetName)

SharpenMode = Literal["none", "box", "gaussian", "unsharp"]
SHARPEN_MODES: tuple[str, ...] = get_args(SharpenMode)

MergeDirection = Literal["src2dst", "dst2src"]
MERGE_DIRECTIONS: tuple[str, ...] = get_args(MergeDirection)

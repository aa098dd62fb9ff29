"""Extraction options, shared by the CLI, config files and the one-command swap."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from facelab.core.choices import FaceType, ImageFormat
from facelab.face.detect import DETECTORS
from facelab.face.landmarks import LANDMARK_BACKENDS


class ExtractOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    config_section: ClassVar[str] = "extract"

    face_type: FaceType = Field("whole_face", description="face type of the aligned crops")
    size: int = Field(256, ge=64, le=1024, description="aligned face size in pixels, 64..1024")
    detector: Annotated[str, DETECTORS.choice()] = Field("dlib", description="face detector")
    landmarks: Annotated[str, LANDMARK_BACKENDS.choice()] = Field(
        "auto", description="landmark model (auto: face mesh at large yaw, else dlib)")
    max_faces: int = Field(0, ge=0, description="keep the N largest faces per frame; 0 keeps all")
    min_face_size: int = Field(40, ge=0, description="ignore faces whose box is smaller (pixels)")
    debug: bool = Field(False, description="write annotated frames to OUTPUT/_extract/debug")
    smooth: int = Field(0, ge=0, le=30, description="average landmarks over +-N neighbouring frames of a shot")
    only_like: Path | None = Field(None, description="keep only faces like the person in this image or folder")
    identity_threshold: float = Field(0.6, gt=0, le=2, description="largest identity distance for --only-like")
    workers: int = Field(default_factory=lambda: max(1, min(os.cpu_count() or 1, 8)), ge=1, le=64,
                         description="worker processes (default: CPU count, up to 8)")
    jpeg_quality: int = Field(95, ge=1, le=100, description="JPEG quality of the faces")
    image_format: ImageFormat = Field("jpg", description="image format of the faces")
    fps: float | None = Field(None, gt=0, description="sample the video at this rate instead of every frame")
    track: int = Field(8, ge=1, le=100, description="detect anew every N frames; between, re-detect each face "
                       "only in a window around where it was (1: full detection on every frame)")
    detect_max_side: int = Field(1280, ge=160, description="detect on frames downscaled to this longest side")

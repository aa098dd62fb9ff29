"""Extraction options, shared by the CLI, config files and the one-command swap."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from facelab.core.choices import DetectorName, FaceType, ImageFormat, LandmarkName


class ExtractOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    config_section: ClassVar[str] = "extract"

    face_type: FaceType = "whole_face"
    size: int = Field(256, ge=64, le=1024)
    detector: DetectorName = "dlib"
    landmarks: LandmarkName = "auto"
    max_faces: int = Field(0, ge=0, description="keep the N largest faces per frame; 0 keeps all")
    min_face_size: int = Field(40, ge=0, description="drop faces whose box is smaller (pixels)")
    debug: bool = False
    smooth: int = Field(0, ge=0, le=30, description="average landmarks over +-N neighbouring frames")
    only_like: Path | None = None
    identity_threshold: float = Field(0.6, gt=0, le=2)
    workers: int = Field(default_factory=lambda: max(1, min(os.cpu_count() or 1, 8)), ge=1, le=64)
    jpeg_quality: int = Field(95, ge=1, le=100)
    image_format: ImageFormat = "jpg"
    fps: float | None = Field(None, gt=0)
    track: int = Field(8, ge=1, le=100, description="detect anew every N frames; between, re-detect each face "
                       "only in a window around where it was (1: full detection on every frame)")
    detect_max_side: int = Field(1280, ge=160, description="frames larger than this are detected downscaled")

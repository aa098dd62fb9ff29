"""Options of `facelab evaluate`: flags, config file section [evaluate], library calls."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from facelab.core.choices import DetectorName, LandmarkName


class EvaluateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    config_section: ClassVar[str] = "evaluate"

    frames: int = Field(100, ge=1, description="frames to evaluate, spread evenly over the video")
    detector: DetectorName = Field("dlib", description="face detector")
    landmarks: LandmarkName = Field("auto", description="68-point landmark model")
    temporal: bool = Field(True, description="also measure frame-to-frame jitter and flicker (reads frame i + 1)")
    src_limit: int = Field(200, ge=1, description="src faces averaged into the src identity")

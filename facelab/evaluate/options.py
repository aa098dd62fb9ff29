"""Options of `facelab evaluate`: flags, config file section [evaluate], library calls."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from facelab.face.detect import DETECTORS
from facelab.face.landmarks import LANDMARK_BACKENDS


class EvaluateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    config_section: ClassVar[str] = "evaluate"

    frames: int = Field(100, ge=1, description="frames to evaluate, spread evenly over the video")
    detector: Annotated[str, DETECTORS.choice()] = Field("dlib", description="face detector")
    landmarks: Annotated[str, LANDMARK_BACKENDS.choice()] = Field("auto", description="68-point landmark model")
    temporal: bool = Field(True, description="also measure frame-to-frame jitter and flicker (reads frame i + 1)")
    src_limit: int = Field(200, ge=1, description="src faces averaged into the src identity")

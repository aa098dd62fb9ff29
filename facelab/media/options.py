"""Options of `facelab video frames` and `facelab video build` (flags and config-file sections)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from facelab.core.choices import ImageFormat, VideoCodec


class FramesOptions(BaseModel):
    """Splitting a video into frame images."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    config_section: ClassVar[str] = "video_frames"

    fps: str | None = Field(None, description="resample to this frame rate (e.g. 10, 29.97 or 30000/1001); "
                                              "default: the video's")
    format: ImageFormat = Field("png", description="image format of the frames")
    jpeg_quality: int = Field(95, ge=1, le=100, description="JPEG quality for --format jpg")


class BuildOptions(BaseModel):
    """Encoding a folder of frames into a video."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    config_section: ClassVar[str] = "video_build"

    audio_from: Path | None = Field(None, description="copy the audio track of this video (or audio file) "
                                                      "into the output")
    fps: str | None = Field(None, description="frame rate (e.g. 30 or 30000/1001); default: from DIR/video.json, "
                                              "else 30")
    codec: VideoCodec = Field("h264", description="video codec")
    crf: int | None = Field(None, ge=0, le=51, description="quality, 0-51: lower is better and larger; "
                                                           "default: 18")
    lossless: bool = Field(False, description="lossless: decodes back to the exact frame pixels")

"""The result of an evaluation: one row per sampled frame, the inputs, and the summary."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

FrameStatus = Literal["ok", "no_face_result", "no_face_dst"]
NAN = float("nan")


@dataclass
class FrameMetrics:
    """One sampled frame. Distances: identity in dlib embedding units (same person below 0.6), landmarks
    and jitter in inter-ocular distances, pose in degrees, flicker in 8-bit levels. `detail` is the
    result's sharpness over dst's; the mouth and eye openings (each face's own landmarks) are in that
    face's inter-ocular distances."""

    frame: int
    status: FrameStatus
    ssim: float = NAN
    perceptual: float = NAN
    id_src: float = NAN
    id_dst: float = NAN
    landmarks: float = NAN
    pose: float = NAN
    yaw: float = NAN
    pitch: float = NAN
    roll: float = NAN
    jitter: float = NAN
    flicker: float = NAN
    detail: float = NAN
    mouth_open_result: float = NAN
    mouth_open_dst: float = NAN
    eye_open_result: float = NAN
    eye_open_dst: float = NAN

    @staticmethod
    def columns() -> list[str]:
        return [f.name for f in fields(FrameMetrics)]

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.columns()}


@dataclass
class Evaluation:
    rows: list[FrameMetrics]
    info: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

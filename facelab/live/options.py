"""Options of `facelab live`, shared by the CLI and config files (section [live]).

The compositing knobs are merge's own ``FrameOptions`` (the same compositor runs: facelab.merge.compose),
so every merge flag (--mode, --mask-mode, --erode, --blur, --color-transfer, ...) works here with the
same meaning and defaults (mask blur 5 % and rct colour transfer). The fields below are the live
pipeline's: capture pacing, detection and tracking, the model's threads, the output encoder, statistics.
"""

from __future__ import annotations

import os
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from facelab.core.choices import DeviceName, VideoCodec
from facelab.face.detect import DETECTORS
from facelab.face.landmarks import LANDMARK_BACKENDS
from facelab.merge.options import FrameOptions, MergeOptions


def _default_model_threads(cpus: int) -> int:
    """Measured 2026-11-30 on an idle 2-core machine, quick96 model: 2 threads 18.8 fps / 137 ms median
    latency against 15.7 fps / 158 ms with 1 (docs/live.md)."""
    return min(cpus, max(2, cpus - 1), 8)


class LiveOptions(FrameOptions):
    config_section: ClassVar[str] = "live"

    realtime: bool = Field(True, description="play a video file as a live source, at its own frame rate (frames the "
                           "pipeline cannot keep up with are dropped, as from a camera); --no-realtime swaps every "
                           "frame of a file as fast as possible")
    detector: Annotated[str, DETECTORS.choice()] = Field("dlib", description="face detector")
    landmarks: Annotated[str, LANDMARK_BACKENDS.choice()] = Field(
        "dlib", description="landmark model (auto: face mesh at large yaw, else dlib; slower)")
    detect_every: int = Field(8, ge=1, le=100, description="detect faces anew every N frames; between, each face is "
                              "tracked by its landmarks from the previous frame (1: detect on every frame)")
    pace_detection: bool = Field(True, description="from a live source, start detecting a frame just in time for "
                                 "the model (when it is due to be free, less the detection's usual time) rather than "
                                 "as soon as it took the previous one: the frame is fresher by about the model's time")
    detect_max_side: int = Field(640, ge=160, description="detect on frames downscaled to this longest side")
    max_faces: int = Field(1, ge=0, description="swap the N largest faces; 0 swaps all")
    min_face_size: int = Field(40, ge=0, description="ignore faces whose box is smaller (pixels)")
    smooth: float = Field(1.0, ge=0, le=10, description="temporal smoothing of the landmarks (a One Euro filter: "
                          "steadier still faces at higher values, motion still followed); 0: off")
    device: DeviceName = Field("auto", description="where the model runs: auto (CUDA when present), cpu, cuda, mps")
    model_threads: int = Field(default_factory=lambda: _default_model_threads(os.cpu_count() or 1), ge=1, le=64,
                               description="CPU threads of the model (default: CPU count - 1, at least 2 and at "
                               "most 8: the other stages need a core, but on 2 cores the model gains more from "
                               "both; lower it when other jobs share the CPU)")
    swap_workers: int = Field(1, ge=1, le=8, description="threads running the model on frames side by side (from a "
                              "live source; each with --model-threads threads): more frames per second where one "
                              "model call cannot use the cores, at the same latency")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="a PyTorch model on the CPU: bf16 autocast (auto: where the CPU has native bf16) or fp32")
    trace: Literal["fused", "trace", "off"] = Field(
        "fused", description="a PyTorch model on the CPU: run a frozen TorchScript trace of it (fused: with oneDNN "
        "Graph fusion; less CPU per face), or the eager model (off); falls back to eager when tracing fails")
    fps: float | None = Field(None, gt=0, le=240, description="frame rate of the output video file and the virtual "
                              "camera (default: the source's)")
    codec: VideoCodec = Field("h264", description="video codec of the output file")
    crf: int = Field(20, ge=0, le=51, description="quality of the output file (CRF: lower is better, larger)")
    preset: str = Field("veryfast", pattern=r"^[a-z]+$", description="encoder speed preset of the output file "
                        "(x264/x265: ultrafast .. veryslow)")
    stats_every: float = Field(2.0, ge=0, description="print fps and per-stage milliseconds to stderr every N "
                               "seconds (0: only at the end)")
    max_frames: int = Field(0, ge=0, description="stop after N frames out (0: until the source ends or Ctrl+C)")

    def merge_options(self) -> MergeOptions:
        """The compositor's options: the frame options given here, run options at merge's defaults."""
        frame = {k: getattr(self, k) for k in FrameOptions.model_fields}
        return MergeOptions.model_validate({**frame, "workers": 1})

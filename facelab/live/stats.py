"""Live statistics: frames per second, milliseconds per stage and frame-in to frame-out latency, over a
recent window (for the periodic line and the window overlay) and over the whole run (the summary)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STAGES: tuple[str, ...] = ("capture", "detect", "align", "swap", "merge", "output")
_WINDOW = 90  # frames in the recent window


def _ms(values: list[float] | deque[float]) -> float:
    return round(float(np.mean(values)) * 1000.0, 2) if values else 0.0


@dataclass
class LiveSummary:
    source: str
    output: str
    frames_out: int
    source_frames: int  # the source's frames up to the last one out (its number + 1)
    dropped: int  # of those, the frames never output: skipped by a paced reader or replaced while the pipeline was
    # busy (frames still on their way when the run stopped are not counted)
    faces: int  # faces swapped
    detections: int  # full detections (the others were tracked)
    seconds: float
    fps: float
    stage_ms: dict[str, float]  # mean per frame, wall-clock
    stage_cpu_ms: dict[str, float]  # mean per frame, CPU time of the stage's thread (the model's own extra
    # threads not included): what each stage costs whatever the machine's load
    latency_ms_median: float
    latency_ms_p95: float
    notes: list[str] = field(default_factory=list)
    model_runs: str = ""  # what ran the model (facelab.live.faces.freeze_model: frozen trace, eager, onnxruntime)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class LiveStats:
    """Fed by the stages; read by the reporting (any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.perf_counter()
        self.recent: dict[str, deque[float]] = {s: deque(maxlen=_WINDOW) for s in STAGES}
        self.totals: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.cpu_totals: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.latencies: list[float] = []
        self.out_times: deque[float] = deque(maxlen=_WINDOW)
        self.frames_out = 0
        self.faces = 0
        self.last_index = -1
        self.replaced = 0

    def frame_done(self, index: int, t_in: float, stage_s: dict[str, float], cpu_s: dict[str, float],
                   faces: int) -> None:
        now = time.perf_counter()
        with self._lock:
            for stage, s in stage_s.items():
                self.recent[stage].append(s)
                self.totals[stage] += s
            for stage, s in cpu_s.items():
                self.cpu_totals[stage] += s
            self.latencies.append(now - t_in)
            self.out_times.append(now)
            self.frames_out += 1
            self.faces += faces
            self.last_index = max(self.last_index, index)

    def recent_fps(self) -> float:
        with self._lock:
            t = list(self.out_times)
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def line(self) -> str:
        """One line: fps, latency, per-stage ms over the recent frames, drops so far."""
        fps = self.recent_fps()
        with self._lock:
            stages = " ".join(f"{s} {_ms(self.recent[s]):.1f}" for s in STAGES)
            lat = self.latencies[-_WINDOW:]
            dropped = self.last_index + 1 - self.frames_out
        lat_ms = float(np.median(lat)) * 1000.0 if lat else 0.0
        return f"{fps:.1f} fps | latency {lat_ms:.0f} ms | ms: {stages} | dropped {max(dropped, 0)}"

    def summary(self, source: str, output: str, detections: int, notes: list[str], model_runs: str = "") -> LiveSummary:
        with self._lock:
            seconds = time.perf_counter() - self.started
            n = self.frames_out
            lat = np.array(self.latencies) * 1000.0 if self.latencies else np.zeros(1)
            return LiveSummary(
                source=source, output=output, frames_out=n, source_frames=self.last_index + 1,
                dropped=max(0, self.last_index + 1 - n), faces=self.faces, detections=detections,
                seconds=round(seconds, 3), fps=round(n / seconds, 2) if seconds > 0 else 0.0,
                stage_ms={s: round(self.totals[s] / n * 1000.0, 2) if n else 0.0 for s in STAGES},
                stage_cpu_ms={s: round(self.cpu_totals[s] / n * 1000.0, 2) if n else 0.0 for s in STAGES},
                latency_ms_median=round(float(np.median(lat)), 1),
                latency_ms_p95=round(float(np.percentile(lat, 95)), 1),
                notes=notes, model_runs=model_runs)

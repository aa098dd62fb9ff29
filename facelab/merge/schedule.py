"""How the model shares the CPU with the compositing workers during a merge."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


class ThreadPlan:
    """One of two schedules for the model and the workers, chosen by measuring the first batches.

    - "lockstep": before each batch the workers finish their frames, then the model runs alone on every
      torch thread. A multi-threaded model sharing the cores with busy workers loses more than the
      overlap gains, since its threads wait for each other whenever one is preempted.
    - "overlap": the model runs on one torch thread while the workers composite earlier frames on the
      other cores; it can win when the model is cheap next to the per-frame work.

    The first two batches run in lockstep: batch 0 warms up, batch 1 measures the model on all ``cores``
    threads (mc, seconds per frame) and the workers' phase after it (d); the workers report their CPU
    seconds per frame (w, decoding included). One thread would take m1 = PARALLEL_EFFICIENCY cores mc.
    Overlap is taken when OVERLAP_PENALTY max(m1, (m1 + w) / cores) < mc + d, the penalty being what
    running side by side costs the model. Both constants were measured; the figures are in docs/merge.md.
    """

    PARALLEL_EFFICIENCY = 0.87
    OVERLAP_PENALTY = 1.1

    def __init__(self, cores: int, active: bool) -> None:
        self.cores = cores
        self.schedule = "probe" if active and cores > 1 else "lockstep"
        self.threads = cores
        self.batches = 0
        self.mc = 0.0
        self._frames = 0
        self._phase_start = 0.0
        self.work_s = 0.0
        self.work_frames = 0

    def work(self, cpu_seconds: float) -> None:
        self.work_s += cpu_seconds
        self.work_frames += 1

    def before_predict(self, drain: Callable[[], None]) -> None:
        """Set the threads for the next batch; in lockstep, let the workers finish first."""
        if self.schedule != "overlap":
            drain()
        if self.schedule == "probe" and self.batches == 2:
            d = (time.perf_counter() - self._phase_start) / self._frames
            w = self.work_s / max(self.work_frames, 1)
            m1 = self.PARALLEL_EFFICIENCY * self.cores * self.mc
            overlap = self.OVERLAP_PENALTY * max(m1, (m1 + w) / self.cores)
            self.schedule = "overlap" if overlap < self.mc + d else "lockstep"
        self.threads = 1 if self.schedule == "overlap" else self.cores
        torch.set_num_threads(self.threads)

    def after_predict(self, seconds: float, frames: int) -> None:
        if self.schedule == "probe" and self.batches == 1:
            self.mc = seconds / frames
        self.batches += 1
        self._frames = frames
        self._phase_start = time.perf_counter()

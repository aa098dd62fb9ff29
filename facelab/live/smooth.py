"""Causal landmark smoothing for live video: a One Euro filter (Casiez, Roussel and Vogel, CHI 2012) on
each face's landmarks.

Offline extraction averages over past and future frames (facelab.extract.smooth); live output cannot wait
for the future, and a plain running average lags behind a moving face. The One Euro filter is a low-pass
whose cutoff rises with the speed of the signal: a still face is smoothed strongly (dlib's points jump
by whole pixels), a moving one hardly at all, so there is no visible lag. Speeds are measured in face
sizes per second, so the behaviour does not depend on how large the face is in the frame.
"""

from __future__ import annotations

import math

import numpy as np

from facelab.core.types import Points

_D_CUTOFF = 1.0  # Hz: the cutoff of the speed estimate
_BETA = 10.0  # Hz per (face size / s): how fast the cutoff rises with speed


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def face_size(points: Points) -> float:
    return float(np.sqrt(max(np.ptp(points[:, 0]) * np.ptp(points[:, 1]), 1.0)))


class OneEuro:
    """The filter of one face track. ``strength`` 0 passes the landmarks through unchanged; 1 sets the
    cutoff of a still face to 1 Hz, higher values lower it (1 / strength Hz)."""

    def __init__(self, strength: float) -> None:
        self.min_cutoff = 1.0 / strength if strength > 0 else math.inf
        self.value: Points | None = None
        self.speed: Points | None = None
        self.t = 0.0

    def __call__(self, points: Points, t: float) -> Points:
        if self.value is None or self.speed is None or not math.isfinite(self.min_cutoff):
            self.value, self.speed, self.t = points.copy(), np.zeros_like(points), t
            return points
        dt = max(t - self.t, 1e-3)
        size = face_size(points)
        speed = (points - self.value) / dt / size
        self.speed = self.speed + _alpha(_D_CUTOFF, dt) * (speed - self.speed)
        cutoff = self.min_cutoff + _BETA * float(np.abs(self.speed).mean())
        self.value = self.value + _alpha(cutoff, dt) * (points - self.value)
        self.t = t
        out: Points = self.value.copy()
        return out

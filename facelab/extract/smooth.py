"""Temporal landmark smoothing: average each face's landmarks over neighbouring frames of its shot.

Faces are linked into tracks frame to frame by the nearest landmark centroid. A track ends at a gap
(a frame without that face) or a jump (the centroid moves by more than a third of the face size, or the
size changes by more than 25%), which is how a shot cut shows in the landmarks; smoothing never
averages across such a break.
"""

from __future__ import annotations

import numpy as np

from facelab.core.types import Points

_MAX_JUMP = 1 / 3
_MAX_SCALE_CHANGE = 0.25


def _size(lm: Points) -> float:
    return float(np.sqrt(np.ptp(lm[:, 0]) * np.ptp(lm[:, 1])))


def link_tracks(frames: list[list[Points]]) -> list[list[tuple[int, int]]]:
    """Tracks as lists of (frame position, face position), from per-frame landmark lists in order."""
    tracks: list[list[tuple[int, int]]] = []
    open_tracks: dict[int, int] = {}  # face position in the previous frame -> track id
    for t, faces in enumerate(frames):
        new_open: dict[int, int] = {}
        prev = frames[t - 1] if t > 0 else []
        taken: set[int] = set()
        for j, lm in enumerate(faces):
            c, s = lm.mean(axis=0), _size(lm)
            best, best_d = -1, float("inf")
            for i, plm in enumerate(prev):
                if i in taken or i not in open_tracks:
                    continue
                d = float(np.linalg.norm(plm.mean(axis=0) - c))
                if d < best_d:
                    best, best_d = i, d
            if best >= 0:
                ps = _size(prev[best])
                if best_d <= _MAX_JUMP * s and abs(s - ps) <= _MAX_SCALE_CHANGE * ps:
                    tid = open_tracks[best]
                    tracks[tid].append((t, j))
                    new_open[j] = tid
                    taken.add(best)
                    continue
            tracks.append([(t, j)])
            new_open[j] = len(tracks) - 1
        open_tracks = new_open
    return tracks


def smooth_landmarks(frames: list[list[Points]], radius: int) -> list[list[Points]]:
    """Landmarks averaged with triangular weights over +-radius frames of the same track."""
    if radius <= 0:
        return frames
    out = [[lm.copy() for lm in faces] for faces in frames]
    for track in link_tracks(frames):
        stack = np.stack([frames[t][j] for t, j in track])
        n = len(track)
        for k, (t, j) in enumerate(track):
            lo, hi = max(0, k - radius), min(n, k + radius + 1)
            w = radius + 1 - np.abs(np.arange(lo, hi) - k)
            out[t][j] = (stack[lo:hi] * w[:, None, None]).sum(axis=0) / w.sum()
    return out

"""Faces of a live stream: a full detection every N frames, landmark tracking between, smoothing.

The detector and the landmark model are extraction's (facelab.extract.analyze.FrameAnalyzer, with the
same options). Between detections a face is not searched for at all: the landmark model runs on a box
placed from the face's landmarks in the previous frame (the HOG-like box the `auto` backend uses,
facelab.face.landmarks.auto), which costs a few milliseconds where a detection costs tens. A face whose
new landmarks jump (a third of its size) or change size by a quarter from the previous frame's is lost,
and the frame falls back to a full detection, as extraction's `--track` does. A re-detected face keeps its
track (and its smoothing state) when extraction's track linking (facelab.extract.smooth.link_tracks)
joins it to a face of the previous frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelab.core.types import Image, Points
from facelab.extract.analyze import FrameAnalyzer
from facelab.extract.options import ExtractOptions
from facelab.extract.smooth import link_tracks
from facelab.face.landmarks.auto import hog_box_from_landmarks
from facelab.live.options import LiveOptions
from facelab.live.smooth import OneEuro, face_size

_MAX_JUMP = 1 / 3  # of the face size, between consecutive frames (as extraction's track linking)
_MAX_SCALE_CHANGE = 0.25


@dataclass
class TrackedFace:
    track: int  # a number that stays with the face while it is followed
    raw: Points  # the landmark model's points in this frame
    landmarks: Points  # smoothed: what the face is aligned with


def _continues(prev: Points, cur: Points) -> bool:
    ps, cs = face_size(prev), face_size(cur)
    jump = float(np.linalg.norm(prev.mean(axis=0) - cur.mean(axis=0)))
    return bool(np.all(np.isfinite(cur))) and jump <= _MAX_JUMP * ps and abs(cs - ps) <= _MAX_SCALE_CHANGE * ps


class FaceTracker:
    def __init__(self, opts: LiveOptions, fps: float) -> None:
        ext = ExtractOptions(detector=opts.detector, landmarks=opts.landmarks, max_faces=opts.max_faces,
                             min_face_size=opts.min_face_size, detect_max_side=opts.detect_max_side, workers=1)
        self.analyzer = FrameAnalyzer(ext)
        self.detect_every = opts.detect_every
        self.strength = opts.smooth
        self.fps = fps
        self.faces: list[TrackedFace] = []
        self.filters: dict[int, OneEuro] = {}
        self.since_detection = 0
        self.next_track = 0
        self.detections = 0  # full detections run (a statistic)

    def will_detect(self) -> bool:
        """Whether the next frame gets a full detection (else the faces are tracked, unless one is lost)."""
        return not (self.faces and self.since_detection < self.detect_every - 1)

    def update(self, image: Image, index: int) -> list[TrackedFace]:
        """The faces of the frame numbered ``index`` in the source (its time for the smoothing)."""
        raw: list[Points] | None = None
        if not self.will_detect():
            raw = self._follow(image)
        if raw is None:
            raw = self._detect(image)
            self.since_detection = 0
        else:
            self.since_detection += 1
        self.faces = self._link(raw, index / self.fps)
        return self.faces

    def _follow(self, image: Image) -> list[Points] | None:
        """Every face's landmarks on a box placed from its previous ones; None when any face is lost."""
        out = []
        for face in self.faces:
            box = hog_box_from_landmarks(face.raw, 1.0, "dlib")
            found = self.analyzer.face_in_box(image, box)
            if found is None or not _continues(face.raw, found.landmarks):
                return None
            out.append(found.landmarks)
        return out

    def _detect(self, image: Image) -> list[Points]:
        self.detections += 1
        return [f.landmarks for f in self.analyzer.analyze(image)]

    def _link(self, raw: list[Points], t: float) -> list[TrackedFace]:
        """Faces carrying the track of the previous frame's face they continue (else a new track), smoothed."""
        prev = self.faces
        tracks = link_tracks([[f.raw for f in prev], raw])
        continued = {j: prev[i].track for tr in tracks if len(tr) == 2 for (_, i), (_, j) in [tr]}
        faces = []
        for j, points in enumerate(raw):
            track = continued.get(j)
            if track is None:
                track, self.next_track = self.next_track, self.next_track + 1
                self.filters[track] = OneEuro(self.strength)
            faces.append(TrackedFace(track, points, self.filters[track](points, t)))
        live = {f.track for f in faces}
        self.filters = {k: v for k, v in self.filters.items() if k in live}
        return faces

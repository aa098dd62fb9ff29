"""Per-frame face analysis: detect, 68 landmarks, filter by size, count and identity; with tracking.

Tracking: in a run of consecutive frames, the first frame gets a full detection; in the following
frames each face is re-detected only in a window twice its size around where it was, scaled down so
the face is about 120 px (a fraction of the cost of a whole-frame pass). Every face is still found by
the detector in every frame: tracking only narrows where it looks. When a face is not found in its
window, the frame falls back to a full detection. New faces appear at the next full detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelab.core.types import Image, Points
from facelab.extract.options import ExtractOptions
from facelab.face.detect import create_detector
from facelab.face.identity import Embedding, create_embedder, distance
from facelab.face.landmarks import create_landmarker
from facelab.face.types import FaceBox, iou

_WINDOW = 2.0  # search window side, in face sizes
_WINDOW_PX = 240  # the window is scaled to at most this side
_MIN_IOU = 0.3


@dataclass
class DetectedFace:
    box: FaceBox
    landmarks: Points
    landmarker: str
    identity: Embedding | None = None


def _scaled(box: FaceBox, s: float, dx: float = 0.0, dy: float = 0.0) -> FaceBox:
    return FaceBox(box.left * s + dx, box.top * s + dy, box.right * s + dx, box.bottom * s + dy,
                   box.score, box.detector)


class FrameAnalyzer:
    """Holds the models of one worker process."""

    def __init__(self, opts: ExtractOptions, reference: Embedding | None = None) -> None:
        self.opts = opts
        self.detector = create_detector(opts.detector)
        self.landmarker = create_landmarker(opts.landmarks)
        self.reference = reference
        self.embedder = create_embedder() if reference is not None else None

    def detect(self, image: Image) -> list[FaceBox]:
        h, w = image.shape[:2]
        scale = self.opts.detect_max_side / max(h, w)
        if scale >= 1.0:
            return self.detector.detect(image)
        small = np.asarray(cv2.resize(image, (round(w * scale), round(h * scale)),
                                      interpolation=cv2.INTER_AREA), dtype=np.uint8)
        return [_scaled(b, 1.0 / scale) for b in self.detector.detect(small)]

    def detect_near(self, image: Image, prev: FaceBox) -> FaceBox | None:
        """The face in a window around `prev`, or None when the detector finds none there."""
        side = _WINDOW * max(prev.width, prev.height)
        x0 = (prev.left + prev.right) / 2 - side / 2
        y0 = (prev.top + prev.bottom) / 2 - side / 2
        s = min(1.0, _WINDOW_PX / side)
        out = max(1, round(side * s))
        m = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]])
        crop = np.asarray(cv2.warpAffine(image, m, (out, out), flags=cv2.INTER_AREA,
                                         borderMode=cv2.BORDER_CONSTANT), dtype=np.uint8)
        expected = _scaled(prev, s, -x0 * s, -y0 * s)
        best = max(self.detector.detect(crop), key=lambda b: iou(b, expected), default=None)
        if best is None or iou(best, expected) < _MIN_IOU:
            return None
        return _scaled(best, 1.0 / s, x0, y0)

    def face_in_box(self, image: Image, box: FaceBox) -> DetectedFace | None:
        """The landmark model's 68 points for the face in ``box`` (None when it gives no finite points): the
        step of extraction after detection, also used for a box placed by hand (the studio's face fixing)."""
        pts, used = self.landmarker.landmarks(image, box)
        if not np.all(np.isfinite(pts)):
            return None
        return DetectedFace(box, pts, used)

    def _faces(self, image: Image, boxes: list[FaceBox], known: list[Embedding | None] | None) -> list[DetectedFace]:
        faces: list[DetectedFace] = []
        for k, box in enumerate(boxes):
            face = self.face_in_box(image, box)
            if face is None:
                continue
            if self.embedder is not None and self.reference is not None:
                face.identity = known[k] if known is not None else None
                if face.identity is None:  # a tracked face keeps the identity checked when it was found
                    face.identity = self.embedder.embed(image, face.landmarks)
                    if distance(face.identity, self.reference) > self.opts.identity_threshold:
                        continue
            faces.append(face)
            if self.opts.max_faces and len(faces) >= self.opts.max_faces:
                break
        return faces

    def analyze(self, image: Image) -> list[DetectedFace]:
        """Faces of one frame from a full detection, largest first."""
        boxes = [b for b in self.detect(image) if b.size >= self.opts.min_face_size]
        boxes.sort(key=lambda b: -b.size)
        return self._faces(image, boxes, None)

    def track(self, image: Image, prev: list[DetectedFace]) -> list[DetectedFace]:
        """Faces of a frame following one where `prev` were found (full detection if any is lost)."""
        if not prev:
            return self.analyze(image)
        boxes = []
        for face in prev:
            box = self.detect_near(image, face.box)
            if box is None or box.size < self.opts.min_face_size:
                return self.analyze(image)
            boxes.append(box)
        return self._faces(image, boxes, [f.identity for f in prev])

    def analyze_run(self, images: list[Image]) -> list[list[DetectedFace]]:
        """Faces of consecutive frames: a full detection on the first, tracking after it."""
        out: list[list[DetectedFace]] = []
        for k, img in enumerate(images):
            out.append(self.analyze(img) if k == 0 else self.track(img, out[-1]))
        return out

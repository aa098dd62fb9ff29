"""Per-frame face analysis: detect, 68 landmarks, filter by size, count and identity."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelab.extract.options import ExtractOptions
from facelab.face.detect import create_detector
from facelab.face.identity import Embedding, create_embedder, distance
from facelab.face.landmarks import create_landmarker
from facelab.face.types import FaceBox, Image, Points


@dataclass
class DetectedFace:
    box: FaceBox
    landmarks: Points
    landmarker: str
    identity: Embedding | None = None


def _scaled(box: FaceBox, s: float) -> FaceBox:
    return FaceBox(box.left * s, box.top * s, box.right * s, box.bottom * s, box.score, box.detector)


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

    def analyze(self, image: Image) -> list[DetectedFace]:
        boxes = [b for b in self.detect(image) if b.size >= self.opts.min_face_size]
        boxes.sort(key=lambda b: -b.size)
        faces: list[DetectedFace] = []
        for box in boxes:
            pts, used = self.landmarker.landmarks(image, box)
            if not np.all(np.isfinite(pts)):
                continue
            face = DetectedFace(box, pts, used)
            if self.embedder is not None and self.reference is not None:
                face.identity = self.embedder.embed(image, pts)
                if distance(face.identity, self.reference) > self.opts.identity_threshold:
                    continue
            faces.append(face)
            if self.opts.max_faces and len(faces) >= self.opts.max_faces:
                break
        return faces

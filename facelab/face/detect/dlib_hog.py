"""dlib's HOG + linear SVM frontal face detector, with an upsampling retry for small faces."""

from __future__ import annotations

import dlib

from facelab.core.types import Image
from facelab.face.types import FaceBox


class DlibHogDetector:
    name = "dlib"

    def __init__(self, max_upsample: int = 1, threshold: float = 0.0) -> None:
        self._det = dlib.get_frontal_face_detector()
        self.max_upsample = max_upsample
        self.threshold = threshold

    def detect(self, image: Image) -> list[FaceBox]:
        # Upsampling doubles the image per step (4x the time): only retry when nothing was found.
        for upsample in range(self.max_upsample + 1):
            rects, scores, _ = self._det.run(image, upsample, self.threshold)
            if len(rects):
                boxes = [
                    FaceBox(float(r.left()), float(r.top()), float(r.right()), float(r.bottom()),
                            float(s), self.name)
                    for r, s in zip(rects, scores, strict=True)
                ]
                return sorted(boxes, key=lambda b: -b.score)
        return []

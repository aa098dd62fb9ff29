"""Near-identical faces: groups of faces whose thumbnails differ by less than a threshold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelab.core.types import FloatArray
from facelab.faceset.features import THUMB_SIZE

# RMS difference of the 32x32 colour thumbnails, in grey levels (0..255). Measured on the bundled and
# shared clips (128 px faces): a JPEG re-encode of a face is 0.5 from it at quality 95 and 1.6 at 75; the
# closest distinct frames were 1.6 apart (consecutive frames at 25 fps of a speech) and 1.7 (a still
# talking head at 6 fps). Raise it to also drop frames where nothing moved.
DEFAULT_DEDUPE_THRESHOLD = 1.5
_BLOCK = 512
_COARSE = 4  # coarse thumbnails: means of 4x4 pixel blocks


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _coarse(thumbs: NDArray[Any]) -> FloatArray:
    """Means of 4x4 pixel blocks (8x8x3 values). The RMS difference of two coarse thumbnails is never more
    than that of the full ones (the mean of squares is at least the square of the mean), so pairs farther
    apart than the threshold here can be skipped without checking them in full."""
    n = len(thumbs)
    side = THUMB_SIZE // _COARSE
    blocks = thumbs.reshape(n, side, _COARSE, side, _COARSE, 3).mean(axis=(2, 4), dtype=np.float64)
    out: FloatArray = blocks.reshape(n, -1)
    return out


def _rms(a: NDArray[Any], b: NDArray[Any]) -> FloatArray:
    diff = a.astype(np.float64) - b.astype(np.float64)
    out: FloatArray = np.sqrt(np.mean(diff * diff, axis=1))
    return out


def duplicate_groups(thumbs: NDArray[Any], threshold: float) -> list[list[int]]:
    """Groups (of 2 or more, each sorted) of faces linked by RMS differences <= threshold of their thumbnails
    (rows of THUMB_SIZE x THUMB_SIZE x 3 values, any numeric type; kept as given, so uint8 stays small)."""
    data = np.asarray(thumbs)
    n = len(data)
    if n < 2:
        return []
    coarse = _coarse(data)
    norms = np.sum(coarse * coarse, axis=1)
    # squared-distance bound for the coarse values, with room for the rounding of the expansion below
    limit = threshold * threshold * coarse.shape[1] * (1 + 1e-6) + 1e-6 * float(norms.max(initial=0.0))
    parent = list(range(n))
    for start in range(0, n, _BLOCK):
        rows = coarse[start:start + _BLOCK]
        sq = norms[start:start + _BLOCK, None] + norms[None, :] - 2.0 * rows @ coarse.T
        a, b = np.nonzero(sq <= limit)
        a = a + start
        keep = a < b
        a, b = a[keep], b[keep]
        for lo in range(0, len(a), 4096):  # check the candidate pairs in full, in chunks
            ia, ib = a[lo:lo + 4096], b[lo:lo + 4096]
            close = _rms(data[ia], data[ib]) <= threshold
            for i, j in zip(ia[close].tolist(), ib[close].tolist(), strict=True):
                ri, rj = _find(parent, i), _find(parent, j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(_find(parent, i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def keep_sharpest(groups: Sequence[Sequence[int]], sharpness: Sequence[float]) -> tuple[list[int], list[int]]:
    """(kept, removed): the sharpest face of each group is kept (the first on ties), the others removed."""
    kept: list[int] = []
    removed: list[int] = []
    for group in groups:
        best = max(group, key=lambda i: (sharpness[i], -i))
        kept.append(best)
        removed.extend(i for i in group if i != best)
    return kept, sorted(removed)

"""Near-identical faces: groups of faces whose thumbnails differ by less than a threshold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# RMS difference of the 32x32 colour thumbnails, in grey levels (0..255). Measured on the bundled and
# shared clips (128 px faces): a JPEG re-encode of a face is 0.5 from it at quality 95 and 1.6 at 75; the
# closest distinct frames were 1.6 apart (consecutive frames at 25 fps of a speech) and 1.7 (a still
# talking head at 6 fps). Raise it to also drop frames where nothing moved.
DEFAULT_DEDUPE_THRESHOLD = 1.5
_BLOCK = 512


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def duplicate_groups(thumbs: FloatArray, threshold: float) -> list[list[int]]:
    """Groups (of 2 or more, each sorted) of faces linked by RMS thumbnail differences <= threshold."""
    data = np.asarray(thumbs, dtype=np.float64)
    n = len(data)
    if n < 2:
        return []
    dims = data.shape[1]
    norms = np.sum(data * data, axis=1)
    limit = threshold * threshold * dims  # squared Euclidean distance for the RMS threshold
    parent = list(range(n))
    for start in range(0, n, _BLOCK):
        rows = data[start:start + _BLOCK]
        sq = norms[start:start + _BLOCK, None] + norms[None, :] - 2.0 * rows @ data.T
        for a, b in zip(*np.nonzero(sq <= limit), strict=True):
            i, j = start + int(a), int(b)
            if i < j:
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

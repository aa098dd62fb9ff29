"""`faceset coverage`: does the src faceset show the mouth shapes and head turns that dst makes?

A swap draws dst's expression and pose with src's face only as far as src's faces show them; what src
never shows, the model can only guess (from the face prior, at best). Measured on the quality benchmark's
five pairs (docs/quality.md, "Why the mouth misses its target on two pairs"): the pair whose src keeps its
mouth closed in 98% of its faces follows dst's talking mouth at r = 0.79, against 0.91-0.96 on the pairs
whose src shows the mouth shapes dst makes.

Both facesets are read from their metadata only (landmarks and pose; no pixel is decoded). Each face falls
into a mouth-opening bin (facelab.face.expression.MOUTH_BIN_EDGES) and a yaw bin (YAW_EDGES). A bin is a
gap when dst spends at least GAP_DST_SHARE of its faces, and at least GAP_DST_FACES faces, there while src has
fewer than GAP_SRC_SHARE of its faces, or fewer than GAP_SRC_FACES faces, there. Yaw shares are over each side's
faces with a pose (faces imported without one count in the mouth bins only). Training flips src's faces at random
by default (``random_flip_src``), so with ``mirror_src`` src's yaws count on both sides (a face turned 35 degrees one
way is also seen turned 35 degrees the other way); mouth openings do not change in a mirror.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelab.core.errors import InputError
from facelab.face.expression import MOUTH_BIN_EDGES, MOUTH_BIN_NAMES, mouth_bins
from facelab.faceset.store import FaceStore, open_store

YAW_EDGES = (-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0)  # degrees; the end bins take everything beyond
GAP_DST_SHARE = 0.10
GAP_SRC_SHARE = 0.02
GAP_SRC_FACES = 5
GAP_DST_FACES = 5  # a few frames of a short dst are no gap (10% of a 20-face dst is 2 faces)


def yaw_bin_names() -> tuple[str, ...]:
    inner = tuple(f"{a:+.0f}..{b:+.0f}" for a, b in pairwise(YAW_EDGES))
    return (f"< {YAW_EDGES[0]:+.0f}", *inner, f">= {YAW_EDGES[-1]:+.0f}")


@dataclass(frozen=True)
class Bin:
    """One bin of one measure: how many faces of each side fall into it, and their shares of that side."""

    name: str
    src: int
    dst: int
    src_share: float
    dst_share: float

    @property
    def gap(self) -> bool:
        return (self.dst_share >= GAP_DST_SHARE and self.dst >= GAP_DST_FACES
                and (self.src_share < GAP_SRC_SHARE or self.src < GAP_SRC_FACES))


@dataclass(frozen=True)
class Coverage:
    src: Path
    dst: Path
    src_faces: int
    dst_faces: int
    mouth: tuple[Bin, ...]
    yaw: tuple[Bin, ...]  # faces with a pose only; empty when either side has no face with a pose
    src_posed: int  # faces with a pose (what the yaw bins count)
    dst_posed: int

    def gaps(self) -> list[str]:
        """One sentence per gap: what dst does often that src hardly shows."""
        out = []
        for what, bins in (("mouth is {name}", self.mouth), ("head is turned {name} degrees (yaw)", self.yaw)):
            for b in bins:
                if b.gap:
                    out.append(f"dst's {what.format(name=b.name)} in {b.dst_share:.1%} of its faces, src in "
                               f"{b.src} ({b.src_share:.1%}): the swap will follow dst there only as well as the "
                               "model can guess; add src footage that shows it")
        return out

    def to_dict(self) -> dict[str, Any]:
        def rows(bins: tuple[Bin, ...]) -> list[dict[str, Any]]:
            return [{"bin": b.name, "src": b.src, "dst": b.dst, "src_share": round(b.src_share, 4),
                     "dst_share": round(b.dst_share, 4), "gap": b.gap} for b in bins]

        return {"src": str(self.src), "dst": str(self.dst), "src_faces": self.src_faces,
                "dst_faces": self.dst_faces, "src_posed": self.src_posed, "dst_posed": self.dst_posed,
                "mouth_bin_edges": list(MOUTH_BIN_EDGES),
                "yaw_bin_edges": list(YAW_EDGES), "mouth": rows(self.mouth), "yaw": rows(self.yaw),
                "gaps": self.gaps()}


def _bins(names: tuple[str, ...], src: NDArray[np.int64], dst: NDArray[np.int64], mirror_src: bool = False
          ) -> tuple[Bin, ...]:
    """Counts and shares per bin; ``mirror_src``: src's faces also counted mirrored (bin i as bin n - 1 - i, for
    bins whose edges are symmetric about 0), each half a face."""
    cs, cd = (np.bincount(x, minlength=len(names)).astype(np.float64) for x in (src, dst))
    if mirror_src:
        cs = (cs + cs[::-1]) / 2.0
    ns, nd = max(len(src), 1), max(len(dst), 1)
    return tuple(Bin(n, round(float(cs[i])), int(cd[i]), float(cs[i]) / ns, float(cd[i]) / nd)
                 for i, n in enumerate(names))


def _side(store: FaceStore, path: Path) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Mouth bins of every face and yaw bins of the faces with a pose."""
    if len(store) == 0:
        raise InputError("no faces in this faceset", path)
    yaws = np.asarray(store.yaws, dtype=np.float64)
    yaw = np.digitize(yaws[np.isfinite(yaws)], YAW_EDGES).astype(np.int64)
    return mouth_bins(np.asarray(store.landmarks, dtype=np.float64)), yaw


def store_coverage(src: FaceStore, dst: FaceStore, src_path: Path, dst_path: Path, mirror_src: bool = True
                   ) -> Coverage:
    """How the faces of the src store cover the dst store's mouth openings and yaws (open stores);
    ``mirror_src``: src's faces are flipped at random in training (its default), see the module docstring."""
    src_mouth, src_yaw = _side(src, src_path)
    dst_mouth, dst_yaw = _side(dst, dst_path)
    yaw = _bins(yaw_bin_names(), src_yaw, dst_yaw, mirror_src) if len(src_yaw) and len(dst_yaw) else ()
    return Coverage(Path(src_path), Path(dst_path), len(src_mouth), len(dst_mouth),
                    _bins(MOUTH_BIN_NAMES, src_mouth, dst_mouth), yaw, len(src_yaw), len(dst_yaw))


def faceset_coverage(src: Path, dst: Path, mirror_src: bool = True) -> Coverage:
    """How src's faces cover dst's mouth openings and yaws (folders or packs; metadata only)."""
    src_store = open_store(src)
    try:
        dst_store = open_store(dst)
        try:
            return store_coverage(src_store, dst_store, Path(src), Path(dst), mirror_src)
        finally:
            dst_store.close()
    finally:
        src_store.close()

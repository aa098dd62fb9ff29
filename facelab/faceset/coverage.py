"""`faceset coverage`: does the src faceset show the mouth shapes and head turns and tilts that dst makes?

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
from facelab.face.pose import estimate_pose
from facelab.faceset.store import FaceStore, open_store

YAW_EDGES = (-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0)  # degrees; the end bins take everything beyond
GAP_DST_SHARE = 0.10
GAP_SRC_SHARE = 0.02
GAP_SRC_FACES = 5
GAP_DST_FACES = 5  # a few frames of a short dst are no gap (10% of a 20-face dst is 2 faces)


# Reach: how far dst's head turns (yaw) and tilts (pitch) beyond the farthest src face, where the bins above can miss
# it (a 15-degree bin that both sides share). A dst face more than REACH_MARGIN degrees beyond src's extreme is out
# of reach; a gap when at least GAP_REACH_SHARE of dst's faces, and GAP_DST_FACES faces, are. Found on d12-d3
# (docs/quality.md, session 26): the frames whose swap came out nearer dst than src were dst turned 12-15 degrees
# and looking down 12-13 where src's faces reach 10.6 and 10.9; the yaw bins saw no gap.
REACH_MARGIN = 3.0
GAP_REACH_SHARE = 0.05
ADVICE = ": the swap will follow dst there only as well as the model can guess; add src footage that shows it"


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
class Reach:
    """One head angle: the range of src's faces (mirrored for yaw when src is flipped in training), dst's range,
    and how many of dst's faces lie more than REACH_MARGIN degrees outside src's."""

    name: str  # "yaw" or "pitch"
    src_low: float
    src_high: float
    dst_low: float
    dst_high: float
    beyond: int
    beyond_share: float

    @property
    def gap(self) -> bool:
        return self.beyond >= GAP_DST_FACES and self.beyond_share >= GAP_REACH_SHARE

    def sentence(self) -> str:
        what = "turns (yaw)" if self.name == "yaw" else "tilts (pitch, up > 0)"
        return (f"dst's head {what} over {self.dst_low:+.0f}..{self.dst_high:+.0f} degrees where src's faces reach "
                f"{self.src_low:+.0f}..{self.src_high:+.0f}: {self.beyond} of its faces ({self.beyond_share:.1%}) lie "
                f"more than {REACH_MARGIN:.0f} degrees beyond{ADVICE}")


def _reach(name: str, src: NDArray[np.float64], dst: NDArray[np.float64], mirror_src: bool) -> Reach:
    lo, hi = float(src.min()), float(src.max())
    if mirror_src:
        lo, hi = min(lo, -hi), max(hi, -lo)
    out = int(((dst < lo - REACH_MARGIN) | (dst > hi + REACH_MARGIN)).sum())
    return Reach(name, lo, hi, float(dst.min()), float(dst.max()), out, out / len(dst))


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
    reach: tuple[Reach, ...] = ()  # yaw (faces with a pose; none when a side has none) and pitch (every face)

    def gaps(self) -> list[str]:
        """One sentence per gap: what dst does often that src hardly shows."""
        out = []
        for what, bins in (("mouth is {name}", self.mouth), ("head is turned {name} degrees (yaw)", self.yaw)):
            for b in bins:
                if b.gap:
                    out.append(f"dst's {what.format(name=b.name)} in {b.dst_share:.1%} of its faces, src in "
                               f"{b.src} ({b.src_share:.1%}){ADVICE}")
        out.extend(r.sentence() for r in self.reach if r.gap)
        return out

    def to_dict(self) -> dict[str, Any]:
        def rows(bins: tuple[Bin, ...]) -> list[dict[str, Any]]:
            return [{"bin": b.name, "src": b.src, "dst": b.dst, "src_share": round(b.src_share, 4),
                     "dst_share": round(b.dst_share, 4), "gap": b.gap} for b in bins]

        return {"src": str(self.src), "dst": str(self.dst), "src_faces": self.src_faces,
                "dst_faces": self.dst_faces, "src_posed": self.src_posed, "dst_posed": self.dst_posed,
                "mouth_bin_edges": list(MOUTH_BIN_EDGES),
                "yaw_bin_edges": list(YAW_EDGES), "mouth": rows(self.mouth), "yaw": rows(self.yaw),
                "reach": [{"angle": r.name, "src": [round(r.src_low, 2), round(r.src_high, 2)],
                           "dst": [round(r.dst_low, 2), round(r.dst_high, 2)], "beyond": r.beyond,
                           "beyond_share": round(r.beyond_share, 4), "gap": r.gap} for r in self.reach],
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


@dataclass(frozen=True)
class _Side:
    mouth: NDArray[np.int64]  # every face's mouth bin
    yaws: NDArray[np.float64]  # the yaws of the faces with a pose
    pitches: NDArray[np.float64]  # every face's pitch as its aligned crop shows it


def _side(store: FaceStore, path: Path) -> _Side:
    """The pitch is fitted to the aligned face's landmarks (no camera: the tilt the model sees in its crop), not
    taken from the extraction's pose, whose pitch in the whole frame also holds where the face sits in it (on d18-d9,
    a selfie clip against a desk camera, 87% of dst's faces fell outside src's range that way, 31% in the crops)."""
    if len(store) == 0:
        raise InputError("no faces in this faceset", path)
    yaws = np.asarray(store.yaws, dtype=np.float64)
    landmarks = np.asarray(store.landmarks, dtype=np.float64)
    pitches = np.array([estimate_pose(lm).pitch for lm in landmarks], dtype=np.float64)
    return _Side(mouth_bins(landmarks), yaws[np.isfinite(yaws)], pitches)


def store_coverage(src: FaceStore, dst: FaceStore, src_path: Path, dst_path: Path, mirror_src: bool = True
                   ) -> Coverage:
    """How the faces of the src store cover the dst store's mouth openings, yaws and pitches (open stores);
    ``mirror_src``: src's faces are flipped at random in training (its default), see the module docstring."""
    s, d = _side(src, src_path), _side(dst, dst_path)
    posed = len(s.yaws) > 0 and len(d.yaws) > 0
    src_yaw, dst_yaw = (np.digitize(x.yaws, YAW_EDGES).astype(np.int64) for x in (s, d))
    yaw = _bins(yaw_bin_names(), src_yaw, dst_yaw, mirror_src) if posed else ()
    reach = ((_reach("yaw", s.yaws, d.yaws, mirror_src),) if posed else ()) + (
        _reach("pitch", s.pitches, d.pitches, False),)
    return Coverage(Path(src_path), Path(dst_path), len(s.mouth), len(d.mouth),
                    _bins(MOUTH_BIN_NAMES, s.mouth, d.mouth), yaw, len(src_yaw), len(dst_yaw), reach)


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

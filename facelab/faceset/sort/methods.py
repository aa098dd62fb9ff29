"""The sort methods: each a small function from the faces (records, and features where it needs pixels)
to an order, plus the faces it sends to the trash. ``SORT_METHODS`` is the registry of methods: a new
method is one function plus one ``SORT_METHODS.register`` line, and the CLI's choices come from it.

Orders (first to last):
- blur: sharpest first (variance of the Laplacian in the face hull).
- motion-blur: least motion-blurred first (gradient strength in the face's weakest direction).
- face-yaw: yaw ascending (faces turned to the image's left first, to the right last).
- face-pitch: pitch descending (looking up first, looking down last).
- source-rect-size: largest face in its source frame first.
- hist: a chain of similar faces: each next face has the closest colour histogram to the one before.
- hist-dissim: the most unusual histogram first (largest mean distance to all the others).
- brightness: brightest first. hue: hue descending (0..360 degrees).
- black: fewest black pixels first; faces with black patches (cut by the frame border) last.
- origname: source frame order (frame number, then face index within the frame).
- oneface: faces of frames that hold several faces go to the trash; the rest in frame order.
- absdiff: a chain of similar faces by mean absolute pixel difference of small thumbnails.
- identity: closest to the set's main identity first; other people last.
- best / best-fast: keep ``target`` faces spread evenly over yaw x pitch bins (sharpest in each bin; best
  then picks the most different by histogram among the sharper half); the rest go to the trash.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from facelab.core.registry import Registry
from facelab.core.types import FloatArray
from facelab.face.identity import SAME_PERSON_THRESHOLD
from facelab.face.pose import estimate_pose
from facelab.faceset.features import THUMB_SIZE, FaceFeatures
from facelab.faceset.folder import natural_key
from facelab.faceset.record import FaceRecord
from facelab.faceset.sort.identity import main_identity

DEFAULT_BEST_TARGET = 2000
YAW_BINS = 9
PITCH_BINS = 3


@dataclass(frozen=True, slots=True)
class SortInput:
    """What a method sees: the faces (path, record) and, when the method needs pixels, their features."""

    faces: Sequence[tuple[Path, FaceRecord]]
    features: Sequence[FaceFeatures] = ()
    target: int = DEFAULT_BEST_TARGET

    @property
    def records(self) -> list[FaceRecord]:
        return [record for _, record in self.faces]


@dataclass(frozen=True, slots=True)
class SortResult:
    """Indices into the input: ``order`` is kept in that order, ``trash`` is moved out. ``scores`` (one per
    face, or empty) is the value a method ranked by, for reports."""

    order: list[int]
    trash: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MethodSpec:
    run: Callable[[SortInput], SortResult]
    features: frozenset[str]  # empty: metadata only, no pixel decoding


# ----------------------------------------------------------------------------------------------------
# helpers


def _ranked(scores: Sequence[float], descending: bool) -> SortResult:
    """Order by score (stable: ties keep the input order)."""
    keyed = [(-s if descending else s, i) for i, s in enumerate(scores)]
    return SortResult(order=[i for _, i in sorted(keyed)], scores=[float(s) for s in scores])


def _feature(data: SortInput, name: str) -> list[float]:
    values = [getattr(f, name) for f in data.features]
    if len(values) != len(data.faces) or any(v is None for v in values):
        raise ValueError(f"feature {name!r} was not computed for every face")
    return [float(v) for v in values]


def _stacked(data: SortInput, name: str) -> NDArray[Any]:
    values = [getattr(f, name) for f in data.features]
    if len(values) != len(data.faces) or any(v is None for v in values):
        raise ValueError(f"feature {name!r} was not computed for every face")
    return np.stack(values) if values else np.zeros((0, 1))


def _vectors(data: SortInput, name: str) -> FloatArray:
    return _stacked(data, name).astype(np.float64)


def _pose(record: FaceRecord) -> tuple[float, float]:
    """(yaw, pitch) from the record, or estimated from the source landmarks for records without a pose."""
    if record.pose is not None:
        return record.pose.yaw, record.pose.pitch
    pose = estimate_pose(record.source_landmarks_array(), (record.source.width, record.source.height))
    return pose.yaw, pose.pitch


def _frame_key(item: tuple[Path, FaceRecord]) -> tuple[int, tuple[tuple[str | int, ...], str], int]:
    record = item[1]
    return record.source.index, natural_key(record.source.frame), record.face_index


def greedy_chain(vectors: FloatArray, norm: Literal["l1", "l2"]) -> list[int]:
    """Start at face 0 and go each time to the nearest face not yet visited (L1 or L2 distance).

    The unvisited rows are kept packed (the visited one is overwritten by the last), so each step is one
    nearest-neighbour search over a shrinking block (OpenCV's batchDistance, about 4x numpy's speed).
    """
    n = len(vectors)
    if n == 0:
        return []
    rest = np.array(vectors, dtype=np.float32, copy=True)
    ids = np.arange(n)
    current, order = rest[0].copy(), [0]
    rest[0], ids[0] = rest[n - 1], ids[n - 1]
    norm_type = cv2.NORM_L1 if norm == "l1" else cv2.NORM_L2
    for m in range(n - 1, 0, -1):
        _, nearest = cv2.batchDistance(current[None, :], rest[:m], cv2.CV_32F, normType=norm_type, K=1)
        k = int(nearest[0, 0])
        order.append(int(ids[k]))
        current = rest[k].copy()
        rest[k], ids[k] = rest[m - 1], ids[m - 1]
    return order


def hellinger_matrix(hists: FloatArray, rows: FloatArray | None = None) -> FloatArray:
    """Distances between sqrt-histograms (rows x all): Euclidean distance of the square roots."""
    a = hists if rows is None else rows
    sq = np.sum(a * a, axis=1)[:, None] + np.sum(hists * hists, axis=1)[None, :] - 2.0 * (a @ hists.T)
    out: FloatArray = np.sqrt(np.maximum(sq, 0.0))
    return out


# ----------------------------------------------------------------------------------------------------
# the methods


def by_blur(data: SortInput) -> SortResult:
    return _ranked(_feature(data, "sharpness"), descending=True)


def by_motion_blur(data: SortInput) -> SortResult:
    return _ranked(_feature(data, "motion"), descending=True)


def by_yaw(data: SortInput) -> SortResult:
    return _ranked([_pose(r)[0] for r in data.records], descending=False)


def by_pitch(data: SortInput) -> SortResult:
    return _ranked([_pose(r)[1] for r in data.records], descending=True)


def by_rect_size(data: SortInput) -> SortResult:
    areas = []
    for record in data.records:
        left, top, right, bottom = record.rect
        areas.append((right - left) * (bottom - top))
    return _ranked(areas, descending=True)


def by_hist(data: SortInput) -> SortResult:
    return SortResult(order=greedy_chain(_vectors(data, "hist"), "l2"))  # L2 of sqrt histograms: Hellinger


def by_hist_dissim(data: SortInput) -> SortResult:
    hists = _vectors(data, "hist")
    n = len(hists)
    scores = np.zeros(n)
    for start in range(0, n, 1024):  # rows in blocks: memory stays O(1024 * n)
        scores[start:start + 1024] = hellinger_matrix(hists, hists[start:start + 1024]).sum(axis=1)
    return _ranked((scores / max(n - 1, 1)).tolist(), descending=True)


def by_brightness(data: SortInput) -> SortResult:
    return _ranked(_feature(data, "brightness"), descending=True)


def by_hue(data: SortInput) -> SortResult:
    return _ranked(_feature(data, "hue"), descending=True)


def by_black(data: SortInput) -> SortResult:
    return _ranked(_feature(data, "black"), descending=False)


def by_origname(data: SortInput) -> SortResult:
    keyed = sorted(range(len(data.faces)), key=lambda i: (_frame_key(data.faces[i]), i))
    return SortResult(order=keyed)


def by_oneface(data: SortInput) -> SortResult:
    records = data.records
    per_frame: dict[tuple[int, str], int] = {}
    for record in records:
        key = (record.source.index, record.source.frame)
        per_frame[key] = per_frame.get(key, 0) + 1
    ordered = by_origname(data).order
    keep: list[int] = []
    trash: list[int] = []
    for i in ordered:
        record = records[i]
        (keep if per_frame[(record.source.index, record.source.frame)] == 1 else trash).append(i)
    return SortResult(order=keep, trash=trash)


def _absdiff_thumbs(data: SortInput) -> FloatArray:
    thumbs = _stacked(data, "thumb")
    if not len(thumbs):
        return thumbs.astype(np.float64)
    side = THUMB_SIZE // 2  # 2x2 block means: 16 x 16 x 3 values keep the chain fast on large sets
    blocks = thumbs.reshape(len(thumbs), side, 2, side, 2, 3).mean(axis=(2, 4), dtype=np.float64)
    out: FloatArray = blocks.reshape(len(thumbs), -1)
    return out


def by_absdiff(data: SortInput) -> SortResult:
    return SortResult(order=greedy_chain(_absdiff_thumbs(data), "l1"))


def by_identity(data: SortInput) -> SortResult:
    embeddings = _vectors(data, "identity")
    if not len(embeddings):
        return SortResult(order=[])
    centre = main_identity(embeddings, SAME_PERSON_THRESHOLD)
    return _ranked(np.linalg.norm(embeddings - centre, axis=1).tolist(), descending=False)


def bin_quotas(counts: Sequence[int], target: int) -> list[int]:
    """Split ``target`` over bins as evenly as their counts allow (a bin never gets more than it has)."""
    quotas = [0] * len(counts)
    left = min(target, sum(counts))
    open_bins = [b for b in sorted(range(len(counts)), key=lambda b: counts[b]) if counts[b] > 0]
    while left > 0 and open_bins:
        share = max(1, left // len(open_bins))
        for b in list(open_bins):
            give = min(share, counts[b] - quotas[b], left)
            quotas[b] += give
            left -= give
            if quotas[b] == counts[b]:
                open_bins.remove(b)
            if left == 0:
                break
    return quotas


def pose_bins(poses: Sequence[tuple[float, float]]) -> list[tuple[int, int]]:
    """(yaw bin, pitch bin) of each face: YAW_BINS x PITCH_BINS equal steps over the set's range."""
    if not poses:
        return []
    arr = np.asarray(poses, dtype=np.float64)

    def digitize(values: FloatArray, bins: int) -> FloatArray:
        lo, hi = float(values.min()), float(values.max())
        if hi - lo < 1e-9:
            return np.zeros(len(values))
        out: FloatArray = np.minimum(((values - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)
        return out

    yaw, pitch = digitize(arr[:, 0], YAW_BINS), digitize(arr[:, 1], PITCH_BINS)
    return [(int(y), int(p)) for y, p in zip(yaw, pitch, strict=True)]


def _farthest_by_hist(candidates: list[int], count: int, hists: FloatArray) -> list[int]:
    """``count`` of the candidates (sharpest first), each next one the farthest from those chosen."""
    chosen = [candidates[0]]
    nearest = hellinger_matrix(hists[candidates], hists[[candidates[0]]])[0]
    while len(chosen) < count:
        pick = int(np.argmax(nearest))
        chosen.append(candidates[pick])
        nearest = np.minimum(nearest, hellinger_matrix(hists[candidates], hists[[candidates[pick]]])[0])
        nearest[pick] = -1.0
    return chosen


def _best(data: SortInput, diverse: bool) -> SortResult:
    if data.target < 1:
        raise ValueError("target must be at least 1")
    sharp = _feature(data, "sharpness")
    hists = _vectors(data, "hist") if diverse else None
    bins = pose_bins([_pose(r) for r in data.records])
    if len(set(bins)) > data.target:  # too few faces wanted for every pose bin: cover the yaw range first
        bins = [(yaw, 0) for yaw, _ in bins]
    members: dict[tuple[int, int], list[int]] = {}
    for i, b in enumerate(bins):
        members.setdefault(b, []).append(i)
    keys = sorted(members)
    quotas = bin_quotas([len(members[k]) for k in keys], data.target)
    keep: list[int] = []
    for key, quota in zip(keys, quotas, strict=True):
        if quota == 0:
            continue
        ranked = sorted(members[key], key=lambda i: (-sharp[i], i))
        if hists is None or quota == len(ranked):
            chosen = ranked[:quota]
        else:
            pool = ranked[: max(quota, math.ceil(len(ranked) / 2))]
            chosen = sorted(_farthest_by_hist(pool, quota, hists), key=lambda i: (-sharp[i], i))
        keep.extend(chosen)
    kept = set(keep)
    return SortResult(order=keep, trash=[i for i in range(len(data.faces)) if i not in kept], scores=sharp)


def by_best(data: SortInput) -> SortResult:
    return _best(data, diverse=True)


def by_best_fast(data: SortInput) -> SortResult:
    return _best(data, diverse=False)


def _f(*names: str) -> frozenset[str]:
    return frozenset(names)


SORT_METHODS: Registry[MethodSpec] = Registry("sort method")
SORT_METHODS.register("blur", MethodSpec(by_blur, _f("sharpness")))
SORT_METHODS.register("motion-blur", MethodSpec(by_motion_blur, _f("motion")))
SORT_METHODS.register("face-yaw", MethodSpec(by_yaw, _f()))
SORT_METHODS.register("face-pitch", MethodSpec(by_pitch, _f()))
SORT_METHODS.register("source-rect-size", MethodSpec(by_rect_size, _f()))
SORT_METHODS.register("hist", MethodSpec(by_hist, _f("hist")))
SORT_METHODS.register("hist-dissim", MethodSpec(by_hist_dissim, _f("hist")))
SORT_METHODS.register("brightness", MethodSpec(by_brightness, _f("brightness")))
SORT_METHODS.register("hue", MethodSpec(by_hue, _f("hue")))
SORT_METHODS.register("black", MethodSpec(by_black, _f("black")))
SORT_METHODS.register("origname", MethodSpec(by_origname, _f()))
SORT_METHODS.register("oneface", MethodSpec(by_oneface, _f()))
SORT_METHODS.register("absdiff", MethodSpec(by_absdiff, _f("thumb")))
SORT_METHODS.register("identity", MethodSpec(by_identity, _f("identity")))
SORT_METHODS.register("best", MethodSpec(by_best, _f("sharpness", "hist")))
SORT_METHODS.register("best-fast", MethodSpec(by_best_fast, _f("sharpness")))

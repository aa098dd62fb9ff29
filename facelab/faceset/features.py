"""Per-face features for sorting and cleaning a faceset, computed in one pass over the face files.

Only the features asked for are computed, and the pixels are decoded only when one of them needs them
(every feature here does; the metadata-only sorts never call this module). Measures are taken inside the
face hull (the "full" landmark hull, as extraction's sharpness), except the histogram, the thumbnail and
the black share, which describe the whole aligned image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import cv2
import numpy as np

from facelab.core.pool import WorkerPool
from facelab.core.types import F32, U8, BoolArray, FloatArray
from facelab.face.identity import Embedder, create_embedder
from facelab.face.masks import face_hull_mask
from facelab.face.quality import sharpness
from facelab.faceset.record import FaceRecord, read_face

Feature = Literal["sharpness", "motion", "hist", "brightness", "hue", "black", "thumb", "identity"]
FEATURES: tuple[str, ...] = get_args(Feature)

HIST_BINS = 32  # per BGR channel
THUMB_SIZE = 32  # thumbnails are THUMB_SIZE x THUMB_SIZE BGR
BLACK_LEVEL = 8  # a pixel is black when all its channels are at most this
# Below this many faces a worker pool costs more to start (spawn, imports, dlib models) than it saves.
POOL_MIN_FACES = 48



@dataclass(frozen=True, slots=True)
class FaceFeatures:
    """The features of one face; a feature that was not asked for is None."""

    sharpness: float | None = None  # variance of the Laplacian in the face hull
    motion: float | None = None  # RMS gradient in the weakest direction (low: motion blur), in the hull
    hist: FloatArray | None = None  # sqrt of the normalised B, G, R histograms (3 * HIST_BINS)
    brightness: float | None = None  # mean HSV value in the hull, 0..1
    hue: float | None = None  # saturation-weighted circular mean hue in the hull, degrees 0..360
    black: float | None = None  # share of black pixels in the whole image, 0..1
    thumb: U8 | None = None  # THUMB_SIZE x THUMB_SIZE x 3 BGR, flattened
    identity: FloatArray | None = None  # 128-d identity embedding (from the record when it has one)


def motion_sharpness(grey: F32, mask: BoolArray) -> float:
    """RMS directional derivative along the direction where it is weakest (the smaller eigenvalue of the
    gradient structure tensor over the mask). Blur along one direction removes the gradients across it,
    so a motion-blurred face scores low even when edges in the other direction stay crisp."""
    gx = np.asarray(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), dtype=np.float64)[mask]
    gy = np.asarray(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3), dtype=np.float64)[mask]
    if gx.size == 0:
        return 0.0
    sxx, syy, sxy = float(np.mean(gx * gx)), float(np.mean(gy * gy)), float(np.mean(gx * gy))
    half_trace, det = (sxx + syy) / 2.0, sxx * syy - sxy * sxy
    smallest = half_trace - float(np.sqrt(max(half_trace * half_trace - det, 0.0)))
    return float(np.sqrt(max(smallest, 0.0)))


def _hue(hsv: U8, mask: BoolArray) -> float:
    hue = hsv[..., 0][mask].astype(np.float64) * (2.0 * np.pi / 180.0)  # OpenCV hue is 0..179
    weight = hsv[..., 1][mask].astype(np.float64) + 1e-6
    angle = np.arctan2(np.sum(weight * np.sin(hue)), np.sum(weight * np.cos(hue)))
    return float(np.degrees(angle) % 360.0)


def _histogram(bgr: U8) -> FloatArray:
    parts = []
    for channel in range(3):
        counts = np.bincount((bgr[..., channel] // (256 // HIST_BINS)).ravel(), minlength=HIST_BINS)
        parts.append(np.sqrt(counts / max(int(counts.sum()), 1)))
    out: FloatArray = np.concatenate(parts).astype(np.float64)
    return out


def image_features(bgr: U8, record: FaceRecord, wanted: frozenset[str],
                   embedder: Embedder | None = None) -> FaceFeatures:
    """The wanted features of one decoded face (BGR uint8) with its record."""
    landmarks = record.landmarks_array()
    size = (int(bgr.shape[0]), int(bgr.shape[1]))
    hull = face_hull_mask(landmarks, size, "full") > 0.5
    values: dict[str, object] = {}
    if wanted & {"sharpness", "motion"}:
        grey = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        if "sharpness" in wanted:
            values["sharpness"] = sharpness(grey, hull.astype(np.float32))
        if "motion" in wanted:
            values["motion"] = motion_sharpness(grey.astype(np.float32), hull)
    if wanted & {"brightness", "hue"}:
        hsv = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV), dtype=np.uint8)
        if "brightness" in wanted:
            values["brightness"] = float(hsv[..., 2][hull].mean() / 255.0) if hull.any() else 0.0
        if "hue" in wanted:
            values["hue"] = _hue(hsv, hull)
    if "hist" in wanted:
        values["hist"] = _histogram(bgr)
    if "black" in wanted:
        values["black"] = float(np.mean(np.all(bgr <= BLACK_LEVEL, axis=2)))
    if "thumb" in wanted:
        small = cv2.resize(bgr, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
        values["thumb"] = np.ascontiguousarray(small, dtype=np.uint8).ravel()
    if "identity" in wanted:
        if record.identity is not None:
            values["identity"] = np.asarray(record.identity, dtype=np.float64)
        else:
            net = embedder if embedder is not None else create_embedder()
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            values["identity"] = net.embed(rgb, landmarks)
    return FaceFeatures(**values)  # type: ignore[arg-type]


def face_features(path: Path, wanted: frozenset[str], embedder: Embedder | None = None) -> FaceFeatures:
    """Read one face file and compute the wanted features. Errors as ``read_face``."""
    bgr, record = read_face(path)
    return image_features(bgr, record, wanted, embedder)


# ----------------------------------------------------------------------------------------------------
# one pass over many faces

_worker_embedder: Embedder | None = None


def _init_worker(load_embedder: bool) -> None:
    global _worker_embedder
    cv2.setNumThreads(1)
    _worker_embedder = create_embedder() if load_embedder else None


def _worker(path: Path, wanted: frozenset[str]) -> FaceFeatures:
    return face_features(path, wanted, _worker_embedder)


def _needs_embedder(records: Iterable[FaceRecord], wanted: frozenset[str]) -> bool:
    return "identity" in wanted and any(r.identity is None for r in records)


def compute_features(faces: Sequence[tuple[Path, FaceRecord]], wanted: Iterable[str], workers: int = 1,
                     progress: Callable[[int], None] | None = None) -> list[FaceFeatures]:
    """Features of every face, in the order given. ``workers`` > 1 spreads the work over processes
    (only for sets of POOL_MIN_FACES or more). ``progress(n)`` is called as faces finish.

    Raises InputError/MetadataError when a face file cannot be read (scan the folder first).
    """
    want = frozenset(wanted)
    unknown = want - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown features: {', '.join(sorted(unknown))}")
    paths = [path for path, _ in faces]
    load_embedder = _needs_embedder((record for _, record in faces), want)
    out: list[FaceFeatures] = []
    if workers <= 1 or len(paths) < POOL_MIN_FACES:
        embedder = create_embedder() if load_embedder else None
        for path in paths:
            out.append(face_features(path, want, embedder))
            if progress is not None:
                progress(1)
        return out
    chunk = max(1, min(16, len(paths) // (workers * 8)))
    with WorkerPool[FaceFeatures](workers, "process", initializer=_init_worker, initargs=(load_embedder,)) as pool:
        for result in pool.map(_worker, paths, [want] * len(paths), chunksize=chunk):
            out.append(result)
            if progress is not None:
                progress(1)
    return out

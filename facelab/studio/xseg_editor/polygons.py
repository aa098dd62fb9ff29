"""Polygons for the XSeg editor: seeding from a predicted mask, mapping between faces, checking page input.

Coordinates are aligned-face pixels with OpenCV's convention (pixel (i, j)'s centre is at x=i, y=j), the
same as ``xseg_polygons`` and ``facelab.face.masks.polygon_mask``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from facelab.core.errors import InputError
from facelab.core.geometry import transform_points
from facelab.core.types import Mask
from facelab.face.masks import polygon_mask
from facelab.faceset.record import FaceRecord, XSegPolygon

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
SEED_TARGET_IOU = 0.95  # the seeded polygons' filled mask against the model's mask (thresholded at 0.5)
MAX_POLYGONS = 200
MAX_POINTS = 5000


@dataclass(frozen=True)
class Seed:
    polygons: list[XSegPolygon]
    iou: float  # of the polygons' filled mask (>= 0.5) with the model's mask (>= 0.5)
    epsilon: float  # approxPolyDP tolerance used, in aligned pixels
    min_area: float  # contours smaller than this (pixels) were dropped


def mask_iou(a: Mask, b: Mask, threshold: float = 0.5) -> float:
    """Intersection over union of two masks thresholded at ``threshold`` (1.0 when both are empty)."""
    ma, mb = np.asarray(a) >= threshold, np.asarray(b) >= threshold
    union = int(np.count_nonzero(ma | mb))
    return 1.0 if union == 0 else int(np.count_nonzero(ma & mb)) / union


def filled(polygons: Sequence[XSegPolygon], size: int) -> Mask:
    """The polygons drawn in order (include 1, exclude 0) at ``size`` x ``size``: what training uses."""
    return polygon_mask(polygons, IDENTITY, size) if polygons else np.zeros((size, size), np.float32)


def _contours(binary: np.ndarray[Any, Any], epsilon: float, min_area: float) -> list[XSegPolygon]:
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return []
    parents = hierarchy[0][:, 3]

    def depth(i: int) -> int:
        d = 0
        while parents[i] >= 0:
            i, d = int(parents[i]), d + 1
        return d

    found: list[tuple[int, int, XSegPolygon]] = []
    for i, contour in enumerate(contours):
        d = depth(i)
        if cv2.contourArea(contour) < min_area and len(contour) > 2:
            continue
        approx = cv2.approxPolyDP(contour, epsilon, True)[:, 0, :] if epsilon > 0 else contour[:, 0, :]
        if len(approx) < 3:
            if len(contour) < 3 or min_area > 0:
                continue
            approx = contour[:, 0, :]
            if len(approx) < 3:
                continue
        kind = "include" if d % 2 == 0 else "exclude"  # outer boundaries, holes, islands in holes, ...
        pts = [(float(x), float(y)) for x, y in approx]
        found.append((d, i, XSegPolygon(kind=kind, points=pts)))
    found.sort(key=lambda t: (t[0], t[1]))  # shallow first: a hole is drawn after the region around it
    return [p for _, _, p in found]


def seed_from_mask(mask: Mask, target_iou: float = SEED_TARGET_IOU) -> Seed:
    """Include/exclude polygons tracing ``mask`` (>= 0.5), simplified as far as the filled polygons keep an
    IoU >= ``target_iou`` with the mask: ``cv2.findContours`` (the whole tree: holes become excludes) and
    ``cv2.approxPolyDP``, trying the coarsest tolerance first (fewest points for the artist to correct) and
    dropping specks (< 0.1% of the face) only while that still holds. Falls back to the finest tracing."""
    m = np.asarray(mask, dtype=np.float32)
    size = m.shape[0]
    binary = (m >= 0.5).astype(np.uint8)
    if not binary.any():
        return Seed([], 1.0, 0.0, 0.0)
    scale = size / 256.0
    best: Seed | None = None
    for min_area in (size * size * 0.001, 0.0):
        for eps in (3.0, 2.0, 1.5, 1.0, 0.75, 0.5):
            epsilon = max(0.35, eps * scale)
            polys = _contours(binary, epsilon, min_area)
            if len(polys) > MAX_POLYGONS:
                continue
            iou = mask_iou(filled(polys, size), m)
            seed = Seed(polys, iou, epsilon, min_area)
            if iou >= target_iou:
                return seed
            if best is None or iou > best.iou:
                best = seed
    raw = _contours(binary, 0.0, 0.0)[:MAX_POLYGONS]
    seed = Seed(raw, mask_iou(filled(raw, size), m), 0.0, 0.0)
    return seed if best is None or seed.iou >= best.iou else best


def map_polygons(polygons: Sequence[XSegPolygon], source: FaceRecord, target: FaceRecord) -> list[XSegPolygon]:
    """``source``'s polygons carried into ``target``'s aligned face: source aligned -> source frame
    (its inverse transform) -> target aligned (its transform)."""
    to_frame, to_target = source.inverse_affine(), target.affine()
    out: list[XSegPolygon] = []
    for poly in polygons:
        pts = np.asarray(poly.points, dtype=np.float64)
        mapped = transform_points(transform_points(pts, to_frame), to_target)
        out.append(XSegPolygon(kind=poly.kind, points=[(float(x), float(y)) for x, y in mapped]))
    return out


def parse_polygons(raw: Any, size: int) -> list[XSegPolygon]:
    """Polygons sent by the page (``[{"kind", "points": [[x, y], ...]}]``), checked; InputError naming the
    bad entry otherwise. Points must lie within one face size around the face (as label files)."""
    if not isinstance(raw, list):
        raise InputError("polygons must be a list of {kind, points}")
    if len(raw) > MAX_POLYGONS:
        raise InputError(f"too many polygons ({len(raw)}; at most {MAX_POLYGONS})")
    out: list[XSegPolygon] = []
    total = 0
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - {"kind", "points"}:
            raise InputError(f"polygons[{i}]: must be an object with kind and points")
        kind, points = item.get("kind"), item.get("points")
        if kind not in ("include", "exclude"):
            raise InputError(f'polygons[{i}].kind: must be "include" or "exclude"')
        if not isinstance(points, list) or len(points) < 3:
            raise InputError(f"polygons[{i}].points: a polygon needs at least 3 points")
        pts: list[tuple[float, float]] = []
        for k, p in enumerate(points):
            ok = (isinstance(p, list) and len(p) == 2
                  and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p))
            if not ok or not all(math.isfinite(float(v)) for v in p):
                raise InputError(f"polygons[{i}].points[{k}]: not an [x, y] pair of finite numbers")
            x, y = float(p[0]), float(p[1])
            if not (-size <= x <= 2 * size and -size <= y <= 2 * size):
                raise InputError(f"polygons[{i}].points[{k}]: ({x:g}, {y:g}) lies far outside the "
                                 f"{size}x{size} face (points are aligned-face pixels)")
            pts.append((x, y))
        total += len(pts)
        out.append(XSegPolygon(kind=kind, points=pts))
    if total > MAX_POINTS:
        raise InputError(f"too many points ({total}; at most {MAX_POINTS})")
    return out


def polygons_json(polygons: Sequence[XSegPolygon]) -> list[dict[str, Any]]:
    return [{"kind": p.kind, "points": [[round(x, 3), round(y, 3)] for x, y in p.points]} for p in polygons]

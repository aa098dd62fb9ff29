"""XSeg labels and masks in FaceRecords, and the label file that ``xseg import-labels`` reads.

Label file (JSON, UTF-8), keyed by face file name (the file's name in the folder, not a path)::

    {
      "schema": "facelab.xseg_labels",
      "version": 1,
      "faces": {
        "000012_0.jpg": [
          {"kind": "include", "points": [[10, 20], [118, 20], [118, 120], [10, 120]]},
          {"kind": "exclude", "points": [40, 60, 80, 60, 80, 90]}
        ]
      }
    }

Points are aligned-face pixels (x right, y down), as ``[[x, y], ...]`` or COCO-style flat
``[x1, y1, x2, y2, ...]``; each polygon needs at least 3 points. Polygons are drawn in order, an
``include`` filling with 1 and an ``exclude`` with 0, so an exclude drawn after an include cuts a hole.
Importing replaces the face's polygons (an empty list removes them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facelab.core.errors import InputError
from facelab.core.types import Mask
from facelab.core.versioned import read_versioned_json
from facelab.face.masks import face_mask
from facelab.faceset.record import FaceRecord, XSegPolygon

LABELS_SCHEMA = "facelab.xseg_labels"
LABELS_VERSION = 1


# ---- masks in records -----------------------------------------------------------------------------

def label_mask(record: FaceRecord, path: Path | str) -> Mask:
    """The polygons of a labelled face rasterised at the stored size (the ground truth for training)."""
    if not record.xseg_polygons:
        raise ValueError(f"{path}: face has no XSeg polygons")
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return face_mask(record, identity, record.size, path=path)


def exclude_mask(record: FaceRecord) -> Mask | None:
    """The union of a face's exclude polygons at the stored size (1 inside), or None when it has none."""
    excludes = [p for p in record.xseg_polygons if p.kind == "exclude"]
    if not excludes:
        return None
    mask = np.zeros((record.size, record.size), dtype=np.float32)
    for poly in excludes:
        pts = np.round(np.asarray(poly.points, dtype=np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(mask, [pts], 1.0, lineType=cv2.LINE_AA, shift=4)
    return mask


# ---- label files ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelFile:
    """A parsed label file: face file name -> polygons (validated, not yet matched to faces)."""

    path: Path
    faces: dict[str, list[XSegPolygon]]


def _fail(path: Path, where: str, message: str) -> InputError:
    return InputError(f"{where}: {message}", path)


def _points(raw: Any, path: Path, where: str) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        raise _fail(path, where, "points must be a list of [x, y] pairs or a flat [x1, y1, x2, y2, ...] list")
    if raw and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        if len(raw) % 2:
            raise _fail(path, where, f"a flat point list needs an even number of values, got {len(raw)}")
        pairs: list[Any] = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    else:
        pairs = raw
    out: list[tuple[float, float]] = []
    for k, pair in enumerate(pairs):
        ok = (isinstance(pair, list) and len(pair) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair))
        if not ok:
            raise _fail(path, f"{where}[{k}]", f"not an [x, y] pair of numbers: {json.dumps(pair)[:60]}")
        x, y = float(pair[0]), float(pair[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise _fail(path, f"{where}[{k}]", "coordinates must be finite numbers")
        out.append((x, y))
    if len(out) < 3:
        raise _fail(path, where, f"a polygon needs at least 3 points, got {len(out)}")
    return out


def _polygon(raw: Any, path: Path, where: str) -> XSegPolygon:
    if not isinstance(raw, dict):
        raise _fail(path, where, 'each polygon must be an object {"kind": ..., "points": [...]}')
    unknown = set(raw) - {"kind", "points"}
    if unknown:
        raise _fail(path, where, f"unknown key {sorted(unknown)[0]!r} (a polygon has kind and points)")
    kind = raw.get("kind")
    if kind not in ("include", "exclude"):
        raise _fail(path, f"{where}.kind", f'must be "include" or "exclude", got {json.dumps(kind)[:40]}')
    return XSegPolygon(kind=kind, points=_points(raw.get("points"), path, f"{where}.points"))


def read_label_file(path: Path) -> LabelFile:
    """Parse and validate a label file. Raises InputError naming the file and the bad entry."""
    path = Path(path)
    data = read_versioned_json(path, LABELS_SCHEMA, LABELS_VERSION, "label file") if path.is_file() else None
    if data is None:
        raise InputError("label file not found", path)
    faces = data.get("faces")
    if not isinstance(faces, dict):
        raise InputError('"faces" must be an object mapping face file names to polygon lists', path)
    out: dict[str, list[XSegPolygon]] = {}
    for name, polys in faces.items():
        if "/" in name or "\\" in name or not name:
            raise _fail(path, f"faces[{name!r}]", "keys are face file names, not paths")
        if not isinstance(polys, list):
            raise _fail(path, f"faces[{name!r}]", "must be a list of polygons")
        out[name] = [_polygon(p, path, f"faces[{name!r}][{i}]") for i, p in enumerate(polys)]
    return LabelFile(path, out)


def check_fits(labels: list[XSegPolygon], size: int, path: Path, face: str) -> None:
    """Polygons must lie near the face image (within one image size around it): catches wrong units."""
    for i, poly in enumerate(labels):
        pts = np.asarray(poly.points)
        if pts.min() < -size or pts.max() > 2 * size:
            raise _fail(path, f"faces[{face!r}][{i}]", f"points lie far outside the {size}x{size} face "
                        "(points are aligned-face pixels)")

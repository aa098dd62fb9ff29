"""`faceset info`: what a faceset (folder or pack) holds, and a yaw/pitch histogram image."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facelab.core.atomic import write_bytes_atomic
from facelab.core.errors import InputError
from facelab.core.types import F64, U8
from facelab.faceset.store import open_store

HIST_RANGE = 90.0  # degrees either side of frontal; poses beyond go into the end bins
HIST_BIN = 5.0


@dataclass(frozen=True)
class FacesetInfo:
    location: Path
    kind: str  # "folder" or "pack"
    count: int
    face_types: dict[str, int]
    sizes: dict[int, int]
    formats: dict[str, int]  # by file extension
    bytes: int
    with_pose: int
    yaw_range: tuple[float, float] | None
    pitch_range: tuple[float, float] | None
    foreign: list[Path] = field(default_factory=list)
    invalid: list[tuple[Path, str]] = field(default_factory=list)
    yaws: F64 = field(default_factory=lambda: np.zeros(0), repr=False)
    pitches: F64 = field(default_factory=lambda: np.zeros(0), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-face arrays)."""
        return {
            "location": str(self.location),
            "kind": self.kind,
            "count": self.count,
            "face_types": self.face_types,
            "sizes": {str(k): v for k, v in self.sizes.items()},
            "formats": self.formats,
            "bytes": self.bytes,
            "with_pose": self.with_pose,
            "yaw_range": list(self.yaw_range) if self.yaw_range else None,
            "pitch_range": list(self.pitch_range) if self.pitch_range else None,
            "foreign": [str(p) for p in self.foreign],
            "invalid": [{"file": str(p), "reason": r} for p, r in self.invalid],
        }


def _range(values: F64) -> tuple[float, float] | None:
    finite = values[np.isfinite(values)]
    return (round(float(finite.min()), 2), round(float(finite.max()), 2)) if finite.size else None


def faceset_info(path: Path) -> FacesetInfo:
    """Counts of a faceset folder or pack, from the metadata only (no pixel is decoded)."""
    store = open_store(path)
    try:
        codes = Counter(store.face_type(i) for i in range(len(store)))
        sizes = Counter(int(s) for s in store.sizes)
        formats = Counter(Path(n).suffix.lower().lstrip(".") for n in store.names)
        yaws, pitches = np.array(store.yaws), np.array(store.pitches)
        return FacesetInfo(
            location=Path(path), kind=store.kind, count=len(store), face_types=dict(codes.most_common()),
            sizes=dict(sorted(sizes.items())), formats=dict(formats.most_common()), bytes=store.nbytes(),
            with_pose=int(np.isfinite(yaws).sum()), yaw_range=_range(yaws), pitch_range=_range(pitches),
            foreign=list(store.foreign), invalid=list(store.invalid), yaws=yaws, pitches=pitches,
        )
    finally:
        store.close()


def pose_histogram(yaws: F64, pitches: F64) -> dict[str, list[int]]:
    """Counts per HIST_BIN-degree bin from -HIST_RANGE to +HIST_RANGE (outliers in the end bins)."""
    edges = np.arange(-HIST_RANGE, HIST_RANGE + HIST_BIN / 2, HIST_BIN)
    out = {}
    for name, values in (("yaw", yaws), ("pitch", pitches)):
        v = np.clip(values[np.isfinite(values)], -HIST_RANGE, HIST_RANGE)
        out[name] = [int(c) for c in np.histogram(v, bins=edges)[0]]
    return out


_W, _PANEL_H, _MARGIN = 760, 240, 40
_BG, _FG, _BAR, _GRID = (255, 255, 255), (30, 30, 30), (200, 120, 40), (225, 225, 225)


def _panel(counts: list[int], title: str) -> U8:
    img = np.full((_PANEL_H, _W, 3), _BG, dtype=np.uint8)
    left, right, top, bottom = _MARGIN + 10, _W - 15, 30, _PANEL_H - 30
    peak = max(max(counts), 1)
    n = len(counts)
    width = (right - left) / n
    for deg in range(-int(HIST_RANGE), int(HIST_RANGE) + 1, 30):
        x = round(left + (deg + HIST_RANGE) / (2 * HIST_RANGE) * (right - left))
        cv2.line(img, (x, top), (x, bottom), _GRID, 1)
        cv2.putText(img, str(deg), (x - 12, bottom + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _FG, 1, cv2.LINE_AA)
    for i, c in enumerate(counts):
        if c:
            h = max(1, round(c / peak * (bottom - top)))
            x0 = round(left + i * width) + 1
            cv2.rectangle(img, (x0, bottom - h), (round(left + (i + 1) * width) - 1, bottom), _BAR, -1)
    cv2.line(img, (left, bottom), (right, bottom), _FG, 1)
    cv2.putText(img, f"{title} (degrees, {HIST_BIN:g} per bar); tallest bar {peak}", (left, 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, _FG, 1, cv2.LINE_AA)
    return img


def write_pose_histogram(info: FacesetInfo, out: Path) -> None:
    """A PNG with the yaw and the pitch histogram of the faces that have a pose."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise InputError("the histogram is written as PNG: give a .png path", out)
    hist = pose_histogram(info.yaws, info.pitches)
    missing = info.count - info.with_pose
    footer = np.full((30, _W, 3), _BG, dtype=np.uint8)
    note = f"{info.location.name}: {info.count} faces" + (f", {missing} without a pose" if missing else "")
    cv2.putText(footer, note, (_MARGIN + 10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _FG, 1, cv2.LINE_AA)
    image = np.vstack([_panel(hist["yaw"], "yaw"), _panel(hist["pitch"], "pitch"), footer])
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise InputError("cannot encode the histogram", out)
    try:
        write_bytes_atomic(out, encoded.tobytes())
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", out) from None

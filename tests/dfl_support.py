"""A tiny DeepFaceLab writer for tests and benchmarks: DFL-style aligned JPEG/PNG faces and faceset.pak.

The layout is DFL's (learnt from DFLIMG/DFLJPG.py, utils/DFLPNG.py and samplelib/PackedFaceset.py):
``pickle.dumps`` of a plain dict with numpy arrays in one JPEG APP15 segment or a PNG ``fcWp`` chunk; a
pak of a version, a pickled list of per-face configs (with DFL's IntEnums), an offset table and the files.
"""

from __future__ import annotations

import pickle
import struct
import sys
import types
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from facelab.faceset.record import FaceRecord
from facelab.media.metadata import jpeg_segments


def dfl_jpeg(jpeg: bytes, meta: dict[str, Any]) -> bytes:
    """``jpeg`` with one APP15 segment of ``pickle.dumps(meta)`` after its last APPn segment, as DFL writes."""
    payload = pickle.dumps(meta)
    assert len(payload) < 0xFFFD
    app = [end for _, _, end in _app_segments(jpeg)]
    at = max(app) if app else 2
    return jpeg[:at] + b"\xff\xef" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[at:]


def _app_segments(jpeg: bytes) -> list[tuple[int, int, int]]:
    return [seg for marker in range(0xE0, 0xF0) for seg in jpeg_segments(jpeg, marker)]


def dfl_png(png: bytes, meta: dict[str, Any]) -> bytes:
    """``png`` with a ``fcWp`` chunk of ``pickle.dumps(meta)`` just before IEND."""
    payload = pickle.dumps(meta)
    chunk = len(payload).to_bytes(4, "big") + b"fcWp" + payload + zlib.crc32(b"fcWp" + payload).to_bytes(4, "big")
    assert png.endswith(b"IEND\xaeB`\x82")
    return png[:-12] + chunk + png[-12:]


class SampleType(IntEnum):  # DFL's samplelib/Sample.py SampleType (FACE = 1)
    IMAGE = 0
    FACE = 1


class DflFaceType(IntEnum):  # DFL's facelib/FaceType.py FaceType
    HALF = 0
    FULL = 2
    WHOLE_FACE = 4


@contextmanager
def dfl_modules() -> Iterator[None]:
    """Register the two IntEnums under DFL's module names so that pickle writes the globals DFL's paks hold."""
    SampleType.__module__, SampleType.__qualname__ = "samplelib.Sample", "SampleType"
    DflFaceType.__module__, DflFaceType.__qualname__ = "facelib.FaceType", "FaceType"
    mods = {"samplelib": types.ModuleType("samplelib"), "samplelib.Sample": types.ModuleType("samplelib.Sample"),
            "facelib": types.ModuleType("facelib"), "facelib.FaceType": types.ModuleType("facelib.FaceType")}
    mods["samplelib.Sample"].SampleType = SampleType  # type: ignore[attr-defined]
    mods["facelib.FaceType"].FaceType = DflFaceType  # type: ignore[attr-defined]
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def dfl_pak(path: Path, files: list[tuple[str, bytes, str | None]]) -> None:
    """A faceset.pak of (file name, DFL face file, person name), with DFL's absolute last offset."""
    configs = [{"sample_type": SampleType.FACE, "filename": name, "face_type": DflFaceType.WHOLE_FACE,
                "shape": (128, 128, 3), "landmarks": [[1.0, 2.0]] * 68, "seg_ie_polys": {"polys": []},
                "xseg_mask": None, "xseg_mask_compressed": None, "eyebrows_expand_mod": 1.0,
                "source_filename": name, "person_name": person} for name, _, person in files]
    with dfl_modules():
        blob = pickle.dumps(configs, 4)
    assert b"samplelib.Sample" in blob and b"facelib.FaceType" in blob
    head = struct.pack("<QQ", 1, len(blob)) + blob
    data_start = len(head) + 8 * (len(files) + 1)
    offsets, pos = [], 0
    for _, data, _ in files:
        offsets.append(pos)
        pos += len(data)
    offsets.append(data_start + pos)  # DFL writes the end as an absolute offset
    path.write_bytes(head + b"".join(struct.pack("<Q", o) for o in offsets) + b"".join(d for _, d, _ in files))


def dfl_meta(rec: FaceRecord, *, face_type: str = "whole_face", arrays: bool = True,
             polys: bool = False, mask: bytes | None = None) -> dict[str, Any]:
    """DFL's metadata dict of a face (what DFL's extractor stores), from a facelab record."""
    lm = rec.landmarks_array()
    meta: dict[str, Any] = {
        "face_type": face_type,
        "landmarks": lm.astype(np.float32) if arrays else lm.tolist(),
        "eyebrows_expand_mod": 1.0,
        "source_filename": f"{rec.source.frame}.png",
        "source_rect": tuple(np.int64(round(v)) for v in rec.rect),  # numpy scalars, as DFL's detectors give
        "source_landmarks": rec.source_landmarks_array().tolist(),
        "image_to_face_mat": rec.affine(),
    }
    if polys:
        meta["seg_ie_polys"] = {"polys": [
            {"type": 0, "pts": np.float32([[40, 40], [60, 40], [50, 60]])},
            {"type": 1, "pts": np.float32([[10, 10], [118, 10], [118, 118], [10, 118]])},
            {"type": 1, "pts": np.float32([[1, 1], [2, 2]])},  # too few points: dropped
        ]}
    if mask is not None:
        meta["xseg_mask"] = np.frombuffer(mask, np.uint8).reshape(-1, 1)  # cv2.imencode's shape
    return meta

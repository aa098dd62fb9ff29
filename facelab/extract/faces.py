"""From a detected face in a frame to an aligned face file with its FaceRecord."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facelab import __version__
from facelab.core.geometry import transform_points
from facelab.core.types import Image, Points
from facelab.extract.analyze import DetectedFace
from facelab.extract.options import ExtractOptions
from facelab.face.align import face_transform, warp_face
from facelab.face.masks import face_hull_mask
from facelab.face.pose import estimate_pose
from facelab.face.quality import sharpness
from facelab.faceset.record import FaceRecord, Pose, SourceInfo, write_face


def face_file_name(frame: str, face_index: int, ext: str) -> str:
    return f"{frame}_{face_index}.{ext}"


def build_face(image: Image, face: DetectedFace, frame: str, index: int, face_index: int,
               opts: ExtractOptions) -> tuple[Image, FaceRecord]:
    """The aligned RGB crop and its record."""
    h, w = image.shape[:2]
    mat = face_transform(face.landmarks, opts.face_type, opts.size)
    aligned = warp_face(image, mat, opts.size)
    lm_aligned = transform_points(face.landmarks, mat)
    pose = estimate_pose(face.landmarks, (w, h))
    hull = face_hull_mask(lm_aligned, (opts.size, opts.size), "full")
    record = FaceRecord(
        face_type=opts.face_type,
        size=opts.size,
        face_index=face_index,
        landmarks=[(float(x), float(y)) for x, y in lm_aligned],
        source=SourceInfo(frame=frame, index=index, width=w, height=h),
        rect=face.box.as_tuple(),
        source_landmarks=[(float(x), float(y)) for x, y in face.landmarks],
        image_to_face=[[float(v) for v in row] for row in mat],
        pose=Pose(yaw=pose.yaw, pitch=pose.pitch, roll=pose.roll),
        identity=None if face.identity is None else [float(v) for v in face.identity],
        sharpness=sharpness(aligned, hull),
        detector=face.box.detector,
        landmarker=face.landmarker,
        tool_version=__version__,
    )
    return aligned, record


def write_face_file(image: Image, face: DetectedFace, frame: str, index: int, face_index: int, out_dir: Path,
                    opts: ExtractOptions, edit: Callable[[FaceRecord], FaceRecord] | None = None) -> str:
    """Build one face (``build_face``) and write its file (atomically) into ``out_dir``; returns the file name.

    The one way an aligned face file is made from a frame and a face's box and landmarks: `facelab extract`
    writes every face through it, and the studio's face fixing writes a face placed or corrected by hand.
    ``edit`` may change the record before it is written (e.g. carry over XSeg polygons)."""
    aligned, record = build_face(image, face, frame, index, face_index, opts)
    if edit is not None:
        record = edit(record)
    name = face_file_name(frame, face_index, opts.image_format)
    bgr = np.ascontiguousarray(aligned[:, :, ::-1])
    write_face(out_dir / name, bgr, record, opts.jpeg_quality)
    return name


def write_faces(image: Image, faces: list[DetectedFace], frame: str, index: int, out_dir: Path,
                opts: ExtractOptions) -> list[str]:
    """Write every face of one frame; returns the file names written."""
    return [write_face_file(image, face, frame, index, i, out_dir, opts) for i, face in enumerate(faces)]


def landmarks_to_json(pts: Points) -> list[list[float]]:
    return [[round(float(x), 4), round(float(y), 4)] for x, y in pts]


def face_json(f: DetectedFace) -> dict[str, Any]:
    """A face as the extraction journal stores it (box, score, models, landmarks in the frame)."""
    b = f.box
    out: dict[str, Any] = {"rect": [b.left, b.top, b.right, b.bottom], "score": b.score, "detector": b.detector,
                           "landmarker": f.landmarker, "landmarks": landmarks_to_json(f.landmarks)}
    if f.identity is not None:
        out["identity"] = [float(v) for v in f.identity]
    return out

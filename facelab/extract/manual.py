"""Fixing an extracted folder by hand: one face of a frame written from a box or landmarks, or removed.

The studio's face fixing page uses this. A face is written by ``faces.write_face_file``, the function
`facelab extract` writes every face with, so the file and its record are those extraction would have made
from the same box and landmarks, and training and merging use it at once. After each change the frame's
faces (as the folder now holds them) are appended to the extraction journal as the frame's entry (marked
``"manual": true``), and the summary's frames-without-faces list is updated: a later `facelab extract`
into the folder keeps the fix (the frame is done), and every count agrees with the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from facelab.core.atomic import write_json_atomic, write_text_atomic
from facelab.core.errors import InputError
from facelab.core.geometry import transform_points
from facelab.core.journal import Journal
from facelab.core.types import Image
from facelab.core.versioned import json_loads
from facelab.extract.analyze import DetectedFace
from facelab.extract.faces import landmarks_to_json, write_face_file
from facelab.extract.journal import JOURNAL_NAME
from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import STATE_DIR
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import FaceRecord, XSegPolygon

MANUAL = "manual"  # the detector name of a box placed by hand


def journal_path(out_dir: Path) -> Path:
    return Path(out_dir) / STATE_DIR / "journal.jsonl"


def folder_options(out_dir: Path) -> ExtractOptions:
    """The extraction options a folder was made with: from its journal's settings, else from its faces
    (face type, size and image format; the rest default). InputError when neither tells."""
    out_dir = Path(out_dir)
    header = _journal_header(journal_path(out_dir))
    settings = header.get("settings") if header is not None else None
    if isinstance(settings, dict):
        known = {k: v for k, v in settings.items()
                 if k in ExtractOptions.model_fields and k not in ("workers", "debug")}
        try:
            return ExtractOptions.model_validate(known | {"workers": 1})
        except ValueError:
            pass
    faces = scan_faces(out_dir).faces
    if not faces:
        raise InputError("no extraction journal and no faces: the face type and size are unknown", out_dir)
    path, rec = faces[0]
    fmt = "png" if path.suffix.lower() == ".png" else "jpg"
    return ExtractOptions(face_type=rec.face_type, size=rec.size, image_format=fmt, workers=1)


def _journal_header(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except OSError:
        return None
    try:
        obj = json_loads(first)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and obj.get("journal") == JOURNAL_NAME else None


def read_journal(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The journal's latest entry of each frame (empty without a journal)."""
    path = journal_path(out_dir)
    if not path.is_file():
        return {}
    return Journal(path, JOURNAL_NAME).latest


def frame_faces(out_dir: Path, frame: str) -> list[tuple[Path, FaceRecord]]:
    """The face files of one frame (by the records' source frame), by face index."""
    faces = [(p, r) for p, r in scan_faces(Path(out_dir)).faces if r.source.frame == frame]
    return sorted(faces, key=lambda pr: pr[1].face_index)


def _moved_polygons(old: FaceRecord, new: FaceRecord) -> list[XSegPolygon]:
    """``old``'s XSeg polygons mapped through the frame into ``new``'s aligned face."""
    out = []
    for poly in old.xseg_polygons:
        pts = transform_points(np.array(poly.points, dtype=np.float64), old.inverse_affine())
        moved = transform_points(pts, new.affine())
        out.append(XSegPolygon(kind=poly.kind, points=[(float(x), float(y)) for x, y in moved]))
    return out


def save_face(out_dir: Path, image: Image, frame: str, index: int, face: DetectedFace, opts: ExtractOptions,
              face_index: int | None = None) -> Path:
    """Write ``face`` of frame ``frame`` (number ``index``; ``image`` its RGB pixels) as face ``face_index``
    (None: a new face after the frame's others), replacing that face's file if it has one (its XSeg
    polygons are carried over through the frame). Returns the file written."""
    out_dir = Path(out_dir)
    existing = {r.face_index: (p, r) for p, r in frame_faces(out_dir, frame)}
    if face_index is None:
        face_index = max(existing, default=-1) + 1
    old = existing.get(face_index)

    def keep_polygons(rec: FaceRecord) -> FaceRecord:
        if old is None or not old[1].xseg_polygons:
            return rec
        return rec.model_copy(update={"xseg_polygons": _moved_polygons(old[1], rec)})

    name = write_face_file(image, face, frame, index, face_index, out_dir, opts, edit=keep_polygons)
    if old is not None and old[0].name != name:
        old[0].unlink(missing_ok=True)
    _record_frame(out_dir, frame, index, {name: face.box.score})
    return out_dir / name


def delete_face(out_dir: Path, frame: str, face_index: int) -> Path:
    """Remove face ``face_index`` of ``frame`` (a false detection); merging then passes a frame left without
    faces through. Returns the file removed; InputError when the frame has no such face."""
    out_dir = Path(out_dir)
    faces = {r.face_index: (p, r) for p, r in frame_faces(out_dir, frame)}
    if face_index not in faces:
        raise InputError(f"frame {frame} has no face {face_index}")
    path, rec = faces[face_index]
    path.unlink()
    _record_frame(out_dir, frame, rec.source.index, {})
    return path


def _record_frame(out_dir: Path, frame: str, index: int, scores: dict[str, float]) -> None:
    """Append the frame's faces as the folder now holds them to the journal; update the summary."""
    path = journal_path(out_dir)
    if not path.is_file():
        return
    journal = Journal(path, JOURNAL_NAME)
    before = journal.latest.get(frame, {})
    old = {str(f.get("file")): f for f in before.get("faces", []) if isinstance(f, dict)}
    faces = []
    for p, rec in frame_faces(out_dir, frame):
        prev = old.get(p.name, {})
        score = scores[p.name] if p.name in scores else prev.get("score", 1.0)
        score = float(score) if isinstance(score, int | float) else 1.0
        faces.append({"rect": list(rec.rect), "score": score, "detector": rec.detector,
                      "landmarker": rec.landmarker, "landmarks": landmarks_to_json(rec.source_landmarks_array()),
                      "file": p.name})
    try:
        journal.append({"frame": frame, "index": index, "stage": "write", "manual": True, "faces": faces})
    finally:
        journal.close()
    _update_summary(out_dir, journal)


def _update_summary(out_dir: Path, journal: Journal) -> None:
    state = Path(out_dir) / STATE_DIR
    summary_path = state / "summary.json"
    if not summary_path.is_file():
        return
    try:
        summary = json_loads(summary_path.read_bytes())
    except (OSError, json.JSONDecodeError):
        return
    if not isinstance(summary, dict):
        return
    names = sorted(journal.latest, key=lambda n: int(journal.latest[n].get("index", 0)))
    without = [n for n in names if not journal.latest[n].get("faces")]
    summary.update(frames=len(names), frames_with_faces=len(names) - len(without),
                   faces=sum(len(journal.latest[n].get("faces", [])) for n in names), frames_without_faces=without)
    write_json_atomic(summary_path, summary)
    write_text_atomic(state / "frames_without_faces.txt", "".join(f"{n}\n" for n in without))


"""Folder operations on XSeg labels and masks. Each rewrites only the metadata of the face files it
changes (``update_record``: the encoded pixels are kept byte for byte) and reports progress through an
optional ``progress(done, total)`` callback."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from facelab.core.errors import InputError
from facelab.faceset.folder import list_face_files, scan_faces
from facelab.faceset.record import FaceRecord, read_face, update_record
from facelab.faceset.xseg_mask import encode_mask
from facelab.xseg.infer import XSegModel
from facelab.xseg.labels import check_fits, read_label_file

Progress = Callable[[int, int], None]


@dataclass
class FolderResult:
    changed: int = 0  # face files rewritten (or copied, for fetch)
    faces: int = 0  # face files in the folder
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # invalid files, with reasons


def _faces(folder: Path) -> tuple[list[tuple[Path, FaceRecord]], FolderResult]:
    scan = scan_faces(folder)
    return scan.faces, FolderResult(faces=len(scan.faces), skipped=list(scan.invalid))


def _tick(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def remove_masks(folder: Path, progress: Progress | None = None) -> FolderResult:
    """Drop ``xseg_mask`` from every face of the folder that has one."""
    faces, result = _faces(folder)
    for i, (path, rec) in enumerate(faces):
        if rec.xseg_mask is not None:
            update_record(path, rec.model_copy(update={"xseg_mask": None}))
            result.changed += 1
        _tick(progress, i + 1, len(faces))
    return result


def remove_labels(folder: Path, progress: Progress | None = None) -> FolderResult:
    """Drop the hand-drawn ``xseg_polygons`` from every face of the folder that has them."""
    faces, result = _faces(folder)
    for i, (path, rec) in enumerate(faces):
        if rec.xseg_polygons:
            update_record(path, rec.model_copy(update={"xseg_polygons": []}))
            result.changed += 1
        _tick(progress, i + 1, len(faces))
    return result


def fetch_labelled(folder: Path, out: Path, progress: Progress | None = None) -> FolderResult:
    """Copy the faces that have XSeg polygons into ``out`` (created), files unchanged."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("output exists and is not a folder", out)
    if out.exists() and out.resolve() == Path(folder).resolve():
        raise InputError("output folder is the input folder", out)
    faces, result = _faces(folder)
    labelled = [p for p, rec in faces if rec.xseg_polygons]
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(labelled):
        shutil.copy2(path, out / path.name)
        result.changed += 1
        _tick(progress, i + 1, len(labelled))
    return result


@dataclass
class LabelImport:
    """The checked plan of an import: each face file with its record carrying the new polygons."""

    faces: int
    updates: list[tuple[Path, FaceRecord]]


def plan_import(folder: Path, labels_file: Path) -> LabelImport:
    """Read and check a label file against the folder; writes nothing. A name without a face file in the
    folder, a file that is not an aligned face or polygons far outside the face raise InputError."""
    labels = read_label_file(labels_file)
    files = {p.name: p for p in list_face_files(folder)}
    scan = {p.name: rec for p, rec in scan_faces(folder).faces}
    plan: list[tuple[Path, FaceRecord]] = []
    for name, polys in labels.faces.items():
        if name not in files:
            raise InputError(f"faces[{name!r}]: no face file of that name in {folder}", labels.path)
        if name not in scan:
            raise InputError(f"faces[{name!r}]: {files[name]} is not a valid aligned face", labels.path)
        rec = scan[name]
        check_fits(polys, rec.size, labels.path, name)
        plan.append((files[name], rec.model_copy(update={"xseg_polygons": polys})))
    return LabelImport(len(scan), plan)


def import_labels(folder: Path, labels_file: Path, progress: Progress | None = None,
                  plan: LabelImport | None = None) -> FolderResult:
    """Set the polygons of the faces named in a label file (see ``facelab.xseg.labels``). Everything is
    checked (``plan_import``) before any face is written, so a bad file changes nothing."""
    plan = plan or plan_import(folder, labels_file)
    result = FolderResult(faces=plan.faces)
    for i, (path, rec) in enumerate(plan.updates):
        update_record(path, rec)
        result.changed += 1
        _tick(progress, i + 1, len(plan.updates))
    return result


def apply_model(model: XSegModel, folder: Path, batch_size: int = 16,
                progress: Progress | None = None) -> FolderResult:
    """Predict every face's mask and store it as its ``xseg_mask`` (at the face's size); pixels untouched."""
    faces, result = _faces(folder)
    for start in range(0, len(faces), batch_size):
        chunk = faces[start:start + batch_size]
        images = [read_face(path)[0] for path, _ in chunk]
        masks = model.predict(images, batch_size=batch_size, face_types=[rec.face_type for _, rec in chunk])
        for (path, rec), mask in zip(chunk, masks, strict=True):
            update_record(path, rec.model_copy(update={"xseg_mask": encode_mask(mask)}))
            result.changed += 1
        _tick(progress, start + len(chunk), len(faces))
    return result

"""`faceset metadata export/import`: every face's record in one JSON file, and back into edited images.

Image editors drop metadata they do not know. Export the records first, edit the faces, then import:
each record goes back into the file of the same name (or, when the editor changed the format, the only
file with the same stem), after checking that the edited image still has the record's size. Nothing is
written unless every matched file passes that check. The export file::

    {"schema": "facelab.faceset.metadata", "version": 1, "faces": {"<file name>": <FaceRecord JSON>, ...}}
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facelab.core.atomic import write_json_atomic
from facelab.core.errors import InputError, MetadataError
from facelab.core.lock import locked
from facelab.core.versioned import json_loads
from facelab.faceset.folder import list_face_files
from facelab.faceset.pack import check_name
from facelab.faceset.record import FaceRecord, parse_record, update_record
from facelab.faceset.store import open_store
from facelab.media.metadata import check_complete, detect_format, image_size

SCHEMA = "facelab.faceset.metadata"
VERSION = 1
_SHOWN = 3  # mismatches named in the error line


@locked("faceset metadata export", read=("source",))
def export_metadata(source: Path, out: Path, progress: Callable[[int, int], None] | None = None) -> int:
    """Write the records of every face of ``source`` (folder or pack) to ``out``; returns the count."""
    out = Path(out)
    if out.suffix.lower() != ".json":
        raise InputError("the metadata export is JSON: give a .json path", out)
    store = open_store(source)
    try:
        faces: dict[str, Any] = {}
        total = len(store)
        for i in range(total):
            faces[store.names[i]] = store.records[i].to_payload()
            if progress is not None:
                progress(i + 1, total)
    finally:
        store.close()
    if not faces:
        raise InputError(f"no aligned faces in {source}")
    try:
        write_json_atomic(out, {"schema": SCHEMA, "version": VERSION, "faces": faces})
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", out) from None
    return len(faces)


def read_export(path: Path) -> dict[str, FaceRecord]:
    """The validated records of an export file, by file name. Raises InputError / MetadataError."""
    path = Path(path)
    try:
        obj = json_loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read as JSON: {exc}", path) from None
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        raise MetadataError(f"not a facelab metadata export (schema is not {SCHEMA!r})", path)
    if obj.get("version") != VERSION:
        raise MetadataError(f"unsupported export version {obj.get('version')!r} (this facelab reads {VERSION})",
                            path)
    faces = obj.get("faces")
    if not isinstance(faces, dict):
        raise MetadataError("'faces' must be an object of file name -> record", path)
    records: dict[str, FaceRecord] = {}
    for name, payload in faces.items():
        try:
            check_name(name)
        except ValueError as exc:
            raise MetadataError(str(exc), path) from None
        if not isinstance(payload, dict):
            raise MetadataError(f"the record of {name} is not an object", path)
        records[name] = parse_record(payload, f"{path}[{name}]")
    return records


@dataclass
class ImportResult:
    updated: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # exported names with no file in the folder
    unmatched: list[Path] = field(default_factory=list)  # files in the folder with no exported record


def _match(records: dict[str, FaceRecord], files: list[Path]) -> tuple[list[tuple[Path, FaceRecord]], ImportResult]:
    by_name = {p.name: p for p in files}
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for p in files:
        by_stem[p.stem].append(p)
    result = ImportResult()
    pairs: list[tuple[Path, FaceRecord]] = []
    used: set[Path] = set()
    for name, record in records.items():
        path = by_name.get(name)
        if path is None:
            same_stem = [p for p in by_stem.get(Path(name).stem, []) if p.name not in records]
            path = same_stem[0] if len(same_stem) == 1 else None
        if path is None or path in used:
            result.missing.append(name)
            continue
        used.add(path)
        pairs.append((path, record))
    result.unmatched = [p for p in files if p not in used]
    return pairs, result


def _size_problem(path: Path, record: FaceRecord) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"{path.name}: cannot read ({exc.strerror or exc})"
    if detect_format(data) is None:
        return f"{path.name}: not a JPEG or PNG image"
    try:
        check_complete(data)
        dims = image_size(data)
    except MetadataError as exc:
        return f"{path.name}: {exc}"
    if dims is None:
        return f"{path.name}: image size unknown"
    if dims != (record.size, record.size):
        return f"{path.name} is {dims[0]}x{dims[1]}, its record says {record.size}x{record.size}"
    return None


@locked("faceset metadata import", modify=("folder",))
def import_metadata(export: Path, folder: Path, progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Embed the exported records into the files of ``folder`` (pixels kept byte for byte).

    Raises InputError, and writes nothing, when any matched file is not a complete JPEG/PNG of its
    record's size (e.g. the face was cropped or scaled in the editor), or when nothing matches.
    """
    records = read_export(export)
    pairs, result = _match(records, list_face_files(folder))
    if not pairs:
        raise InputError(f"no file in {folder} matches a name in {export}")
    problems = [msg for path, rec in pairs if (msg := _size_problem(path, rec)) is not None]
    if problems:
        more = len(problems) - _SHOWN
        shown = "; ".join(problems[:_SHOWN]) + (f"; and {more} more" if more > 0 else "")
        raise InputError(f"{len(problems)} of {len(pairs)} files cannot take their metadata back, nothing written: "
                         f"{shown} (faces must keep their size: scale them back or re-extract)")
    for done, (path, record) in enumerate(pairs, 1):
        update_record(path, record)
        result.updated.append(path)
        if progress is not None:
            progress(done, len(pairs))
    return result

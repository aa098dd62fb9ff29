"""Enhance every face of a faceset with Real-ESRGAN (x4, then back to the face's size).

Each face file is rewritten with ``write_face``: new pixels, the same size, the same FaceRecord. Either into
another folder (same file names; a file there is done) or in place. Resuming:

- into a folder: a face whose output file exists is skipped (files are written atomically, so one that
  exists is whole);
- in place: ``DIR/_enhance/journal.jsonl`` holds, per file, the SHA-256 of its bytes before and after
  enhancement. A file is done when its bytes are the "after" of its last entry, or when it has a "before"
  entry and its bytes differ from it (written, killed before the "after" line).

``_enhance/settings.json`` records the model and strength; a later run with other settings refuses, so a
folder is never half one strength and half another, and an in-place folder is never enhanced twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facelab.core.atomic import remove_stale_temps, write_json_atomic
from facelab.core.digest import file_sha256
from facelab.core.errors import InputError
from facelab.core.journal import Journal
from facelab.core.lock import Want, locked
from facelab.core.versioned import json_loads
from facelab.face.superres import MODEL_NAME, SuperResolver, SuperResOptions
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import read_face, write_face

WORK_DIR = "_enhance"
SCHEMA = "facelab.enhance"
VERSION = 1


@dataclass(slots=True)
class EnhanceSummary:
    faces: int = 0  # face files found in the input folder
    enhanced: int = 0  # enhanced by this run
    resumed: int = 0  # already done by an earlier run
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason): not faces, or invalid
    seconds_per_face: float = 0.0


JOURNAL_NAME = "facelab.enhance"


def open_journal(path: Path) -> Journal:
    """In-place progress (facelab.core.journal): entries {"file", "before"} then {"file", "after"} per face."""
    return Journal(path, JOURNAL_NAME, key="file")


def face_done(journal: Journal, path: Path) -> bool:
    """Whether the face file was enhanced in place: its bytes are the "after" of its last entry, or it has a
    "before" entry and its bytes differ from every "before" (written, killed before the "after" line)."""
    entries = journal.history.get(path.name)
    if not entries:
        return False
    before = {e["before"] for e in entries if isinstance(e.get("before"), str)}
    afters = [e["after"] for e in entries if isinstance(e.get("after"), str)]
    digest = file_sha256(path)
    return (bool(afters) and digest == afters[-1]) or (bool(before) and digest not in before)


def _check_settings(work: Path, settings: dict[str, Any]) -> None:
    path = work / "settings.json"
    if path.is_file():
        try:
            old = json_loads(path.read_bytes())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"unreadable enhance settings ({exc}); delete the file to start over", path) from None
        if not isinstance(old, dict) or old.get("schema") != SCHEMA:
            raise InputError("not a facelab enhance settings file; delete it to start over", path)
        if {k: old.get(k) for k in settings} != settings:
            raise InputError(f"this folder was enhanced with {old.get('model')} at strength {old.get('strength')}; "
                             "enhancing again with other settings would mix them: use another output folder", path)
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"schema": SCHEMA, "version": VERSION, **settings})



def _enhance_wants(arguments: Mapping[str, Any]) -> list[Want]:
    """The faces written (in place: the source itself) exclusively, the source shared."""
    source, output = Path(arguments["source"]), arguments["output"]
    if arguments["in_place"]:
        return [Want(source, create=False)]
    return [Want(source, shared=True)] + ([] if output is None else [Want(Path(output))])


@locked("faceset enhance", wants=_enhance_wants)
def enhance_faceset(
    source: Path,
    output: Path | None,
    opts: SuperResOptions | None = None,
    *,
    in_place: bool = False,
    jpeg_quality: int = 95,
    resolver: SuperResolver | None = None,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> EnhanceSummary:
    """Enhance the faces of ``source`` into ``output`` (same names), or in place when ``in_place``."""
    opts = opts or SuperResOptions()
    source = Path(source)
    if in_place == (output is not None):
        raise InputError("give an output folder (-o OUT) or enhance in place (--in-place), not both" if in_place
                         else "give an output folder (-o OUT), or --in-place to overwrite the faces")
    dest = source if output is None else Path(output)
    if not in_place and dest.resolve() == source.resolve():
        raise InputError("the output folder is the input folder: enhance in place explicitly instead", dest)
    scan = scan_faces(source)
    summary = EnhanceSummary(faces=len(scan.faces))
    summary.skipped = [(p, "not a facelab face") for p in scan.foreign] + list(scan.invalid)
    if total is not None:
        total(len(scan.faces))
    if not scan.faces:
        return summary
    dest.mkdir(parents=True, exist_ok=True)
    work = dest / WORK_DIR
    for folder in (dest, work):  # what a killed run was writing
        remove_stale_temps(folder)
    _check_settings(work, {"model": MODEL_NAME, "strength": opts.strength, "in_place": in_place})
    journal = open_journal(work / "journal.jsonl") if in_place else None
    resolver = resolver or SuperResolver(threads=opts.threads, tile=opts.tile, overlap=opts.overlap)
    spent = 0.0
    try:
        for path, _ in scan.faces:
            target = dest / path.name
            done = face_done(journal, path) if journal is not None else target.is_file()
            if done:
                summary.resumed += 1
            else:
                t0 = time.perf_counter()
                image, record = read_face(path)
                enhanced = resolver.enhance(image, opts.strength)
                if journal is not None:
                    journal.append({"file": path.name, "before": file_sha256(path)})
                write_face(target, enhanced, record, jpeg_quality=jpeg_quality)
                if journal is not None:
                    journal.append({"file": path.name, "after": file_sha256(target)})
                spent += time.perf_counter() - t0
                summary.enhanced += 1
            if progress is not None:
                progress(1)
    finally:
        if journal is not None:
            journal.close()
    summary.seconds_per_face = round(spent / summary.enhanced, 3) if summary.enhanced else 0.0
    return summary

"""`faceset import-dfl`: a DeepFaceLab faceset (aligned JPEG/PNG faces, or ``faceset.pak``) as facelab faces.

Each face keeps its encoded pixels byte for byte: DFL's metadata segment (JPEG APP15) or chunk (PNG
``fcWp``) is removed and facelab's record embedded (JPEG APP11, PNG iTXt); nothing else in the file
changes. The output file has the DFL file's name.

Files are handled one at a time and each output file is written atomically, so an interrupted import
leaves only complete faces, and a re-run skips the faces already in OUT (an output file that exists and
holds a facelab record is a finished face). An image without DFL metadata is skipped and counted (a DFL
folder often holds other images: previews, debug frames); a face whose metadata is malformed or asks
for code to run is skipped and listed with the reason, or stops the import with ``strict``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from facelab.core.atomic import sync_all, write_bytes_atomic, write_json_atomic
from facelab.core.errors import InputError, MetadataError
from facelab.faceset.dfl import pickle_data
from facelab.faceset.dfl.container import dfl_payload, strip_dfl
from facelab.faceset.dfl.convert import convert
from facelab.faceset.dfl.pak import PAK_NAME, read_entry, read_pak_index
from facelab.faceset.dfl.rewarp import rewarp_face
from facelab.faceset.folder import list_face_files
from facelab.faceset.pack import check_name
from facelab.faceset.record import NotAFaceError, read_record
from facelab.media.metadata import check_complete, detect_format, embed_json, image_size

Progress = Callable[[int, int], None]
SETTINGS_NAME = ".import-dfl.json"  # in OUT: the settings of the import, so a re-run cannot mix geometries
SETTINGS_SCHEMA = "facelab.import-dfl"


@dataclass
class DflImportResult:
    source: Path  # the folder or the faceset.pak read
    imported: int = 0
    resumed: int = 0  # already in OUT from an earlier, interrupted run
    foreign: list[str] = field(default_factory=list)  # images without DFL metadata
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    unsafe: int = 0  # of the invalid: pickles that asked for more than plain data (refused, never run)
    face_types: Counter[str] = field(default_factory=Counter)  # DFL face type -> faces imported
    approximate: int = 0  # imported from DFL's *_no_align face types
    notes: Counter[str] = field(default_factory=Counter)  # parts of the metadata dropped, and why
    ignored: int = 0  # loose images next to a faceset.pak (DFL reads only the pak then)


@dataclass(frozen=True)
class _Item:
    name: str
    read: Callable[[], bytes]


def _source_items(source: Path, result: DflImportResult) -> tuple[list[_Item], Callable[[], None]]:
    """The face files to import and a closer; a folder with a faceset.pak is read as DFL reads it: the pak."""
    pak = source if source.is_file() else source / PAK_NAME
    if pak.is_file():
        if source.is_dir():
            result.ignored = len(list_face_files(source))
        result.source = pak
        entries = read_pak_index(pak)
        try:
            fh = pak.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", pak) from None
        items = []
        for i, entry in enumerate(entries):
            name = entry.filename or ""
            if entry.person:
                name = f"{entry.person}_{name}"
            items.append(_Item(_pak_name(name, i), lambda e=entry: read_entry(fh, e)))  # type: ignore[misc]
        return items, fh.close
    if not source.exists():
        raise InputError("not found", source)
    items = [_Item(p.name, p.read_bytes) for p in list_face_files(source)]
    return items, lambda: None


def _pak_name(name: str, index: int) -> str:
    try:
        return check_name(name)
    except ValueError:
        return f"{index:06d}.jpg"  # renamed below to the real format's extension when it is a PNG


def _reason(exc: InputError) -> str:
    text = str(exc)
    return text.removeprefix(f"{exc.path}: ") if exc.path is not None else text


def _already_done(path: Path) -> bool:
    """Whether ``path`` holds a face of an earlier run; InputError when it holds something else."""
    if not path.exists():
        return False
    try:
        read_record(path)
    except NotAFaceError:
        raise InputError("exists and is not a facelab face: import into a new or empty folder, or one an "
                         "earlier import-dfl wrote", path) from None
    except InputError:
        return False  # a facelab face file that does not parse: written again
    return True


def _convert_one(data: bytes, name: str, position: int, result: DflImportResult,
                 rewarp: int | None) -> bytes | None:
    """The facelab face file for one DFL face file; None (and counted) when skipped. Raises InputError."""
    try:
        payload = dfl_payload(data)
    except MetadataError as exc:
        raise InputError(_reason(exc)) from None
    if payload is None:
        result.foreign.append(name)
        return None
    meta = pickle_data.loads(payload, "DFL metadata")
    if not isinstance(meta, dict):
        raise InputError(f"DFL metadata is a {type(meta).__name__}, not a dict")
    try:
        check_complete(data)
        dims = image_size(data)
    except MetadataError as exc:
        raise InputError(_reason(exc)) from None
    if dims is None:
        raise InputError("the image size is not in the file header")
    converted = convert(meta, name, dims, position)
    result.face_types[converted.dfl_face_type] += 1
    result.approximate += converted.approximate
    result.notes.update(converted.notes)
    if rewarp is not None:
        return rewarp_face(data, converted.record, name, rewarp)
    return embed_json(strip_dfl(data), converted.record.to_payload())


def import_dfl(source: Path, out: Path, *, strict: bool = False, rewarp: bool = False, jpeg_quality: int = 95,
               progress: Progress | None = None) -> DflImportResult:
    """Import the DFL faceset at ``source`` (a folder of aligned faces, a folder holding ``faceset.pak``, or
    the pak itself) into the folder ``out`` (created; resumed when an earlier run was interrupted).

    ``rewarp``: re-warp each face to facelab's crop of its face type (re-encoded; JPEG at ``jpeg_quality``)
    instead of keeping DFL's pixels and crop.

    Raises InputError for an unusable source or output, for the first bad face with ``strict``, and when
    no face could be imported.
    """
    source, out = Path(source), Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("is a file: give a folder for the imported faces", out)
    if source.exists() and out.exists() and os.path.samefile(source if source.is_dir() else source.parent, out):
        raise InputError("write the imported faces to another folder than the DFL faceset", out)
    if not 1 <= jpeg_quality <= 100:
        raise InputError(f"jpeg quality must be 1..100, got {jpeg_quality}")
    result = DflImportResult(source)
    items, close = _source_items(source, result)
    try:
        _check_settings(out, {"rewarp": rewarp})
        _run(items, out, result, strict, jpeg_quality if rewarp else None, progress)
    finally:
        close()
    sync_all()
    if result.imported + result.resumed == 0:
        what = f"{len(result.foreign)} without DFL metadata, {len(result.invalid)} invalid"
        first = f"; first: {result.invalid[0][0]}: {result.invalid[0][1]}" if result.invalid else ""
        raise InputError(f"no DFL face could be imported from {result.source} ({len(items)} files: {what}{first})")
    return result


def _names(items: list[_Item]) -> Iterator[tuple[int, _Item, str]]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        name = item.name
        if name.casefold() in seen:
            stem, dot, ext = name.rpartition(".")
            name = f"{stem}_{i}{dot}{ext}"
        seen.add(name.casefold())
        yield i, item, name


def _check_settings(out: Path, settings: dict[str, object]) -> None:
    """Record the import's settings in OUT; refuse a re-run with other ones (it would mix crops)."""
    path = out / SETTINGS_NAME
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            old = None
        if not isinstance(old, dict) or old.get("schema") != SETTINGS_SCHEMA:
            raise InputError("is not an import-dfl settings file: import into a new or empty folder", path)
        if old.get("settings") != settings:
            raise InputError(f"{out} was imported with {old.get('settings')}, this run asks for {settings}: "
                             "use the same options, or another folder")
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"schema": SETTINGS_SCHEMA, "version": 1, "settings": settings})
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", out) from None


def _run(items: list[_Item], out: Path, result: DflImportResult, strict: bool, rewarp: int | None,
         progress: Progress | None) -> None:
    total = len(items)
    for i, item, name in _names(items):
        try:
            data = item.read()
            kind = detect_format(data)
            if kind == "png" and name.lower().endswith((".jpg", ".jpeg")):
                name = name.rpartition(".")[0] + ".png"
            target = out / name
            if _already_done(target):
                result.resumed += 1
            else:
                converted = _convert_one(data, name, i, result, rewarp)
                if converted is not None:
                    write_bytes_atomic(target, converted, durable=False)
                    result.imported += 1
        except OSError as exc:
            raise InputError(f"cannot read or write {name}: {exc.strerror or exc}") from None
        except InputError as exc:
            if exc.path is not None and exc.path.parent == out:
                raise  # OUT holds a foreign file
            if strict:
                where = result.source / name if result.source.is_dir() else f"{result.source}[{name}]"
                raise InputError(_reason(exc), where) from None
            result.unsafe += isinstance(exc, pickle_data.UnsafePickleError)
            result.invalid.append((name, _reason(exc)))
        if progress is not None:
            progress(i + 1, total)

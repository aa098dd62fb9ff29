"""A faceset folder: the face files at its top level, in natural order, sorted into good/foreign/invalid."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from facelab.core.choices import IMAGE_EXTENSIONS
from facelab.core.errors import InputError
from facelab.faceset.record import FaceRecord, NotAFaceError, read_record

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key where digit runs compare as numbers: "2_0.jpg" < "10_0.jpg"."""
    parts = _DIGITS.split(name.casefold())
    # split() alternates text (even positions) and digit runs (odd), so types line up across keys
    key = tuple(int(part) if i % 2 else part for i, part in enumerate(parts))
    return key, name


def list_face_files(directory: Path) -> list[Path]:
    """The .jpg/.jpeg/.png files directly in ``directory`` (not in subfolders, not hidden), naturally sorted.

    Raises InputError when ``directory`` is missing or not a folder.
    """
    directory = Path(directory)
    if not directory.exists():
        raise InputError("folder not found", directory)
    if not directory.is_dir():
        raise InputError("not a folder", directory)
    try:
        entries = list(directory.iterdir())
    except OSError as exc:
        raise InputError(f"cannot list folder: {exc.strerror or exc}", directory) from None
    files = [
        p
        for p in entries
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


@dataclass(slots=True)
class FaceScan:
    """The result of scanning a faceset folder."""

    faces: list[tuple[Path, FaceRecord]] = field(default_factory=list)
    foreign: list[Path] = field(default_factory=list)  # images without facelab metadata
    invalid: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason) for malformed files


def _reason(exc: InputError) -> str:
    text = str(exc)
    return text.removeprefix(f"{exc.path}: ") if exc.path is not None else text


def scan_faces(directory: Path) -> FaceScan:
    """Read the metadata of every face file in ``directory`` (no pixel decoding).

    Never raises for a bad file (it is listed as foreign or invalid); raises InputError only when the
    folder itself is missing or unreadable.
    """
    scan = FaceScan()
    for path in list_face_files(directory):
        try:
            record = read_record(path)
        except NotAFaceError:
            scan.foreign.append(path)
        except InputError as exc:  # MetadataError included; also files that vanish or cannot be read
            scan.invalid.append((path, _reason(exc)))
        else:
            scan.faces.append((path, record))
    return scan

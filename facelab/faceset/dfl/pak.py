"""DeepFaceLab's packed faceset, ``faceset.pak``: read its index and its face files without unpickling.

Layout (from DeepFaceLab's samplelib/PackedFaceset.py, read, not copied; integers are unsigned 64-bit,
little-endian as written on the x86 machines DFL runs on):

    version (= 1) | n_bytes | pickle of a list of per-face config dicts (n_bytes) |
    offset table: n + 1 entries | the face files back to back

Entry i of the table is where face i starts, relative to the end of the table. DFL writes the last entry
as the absolute file size (not relative), so the last face ends at the end of the file; both readings are
accepted. Each config dict holds ``filename`` and ``person_name`` (and a copy of the face's metadata);
each face file is a DFL face image with its own APP15 metadata, which is what the import reads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from facelab.core.errors import InputError
from facelab.faceset.dfl import pickle_data

PAK_NAME = "faceset.pak"
VERSION = 1
MAX_CONFIG_BYTES = 2 * 1024**3  # the config pickle is read into memory (DFL holds it there too)
MAX_FACES = 10_000_000
_Q = struct.Struct("<Q")


@dataclass(frozen=True)
class PakEntry:
    filename: str | None  # as the config names it (checked by the importer)
    person: str | None
    offset: int  # absolute offset of the face file
    size: int


def _read_exact(fh: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise InputError(f"truncated DFL faceset.pak: the file ends inside the {what}", path)
    return data


def read_pak_index(path: Path) -> list[PakEntry]:
    """The faces of a ``faceset.pak``: names and byte ranges. Raises InputError for a malformed pak."""
    path = Path(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
    with fh:
        file_size = path.stat().st_size
        version = _Q.unpack(_read_exact(fh, 8, path, "header"))[0]
        if version != VERSION:
            raise InputError(f"not a DFL faceset.pak of version {VERSION} (header says {version})", path)
        n_bytes = _Q.unpack(_read_exact(fh, 8, path, "header"))[0]
        if n_bytes > min(MAX_CONFIG_BYTES, file_size - 16):
            raise InputError(f"DFL faceset.pak header claims {n_bytes} bytes of face configs, more than "
                             f"{'the file holds' if n_bytes > file_size - 16 else 'facelab reads'}", path)
        configs = pickle_data.loads(_read_exact(fh, n_bytes, path, "face configs"), f"{path} (face configs)")
        if not isinstance(configs, list):
            raise InputError(f"DFL faceset.pak face configs are a {type(configs).__name__}, not a list", path)
        count = len(configs)
        table_bytes = 8 * (count + 1)
        if count > MAX_FACES or 16 + n_bytes + table_bytes > file_size:
            raise InputError(f"DFL faceset.pak lists {count} faces but the file is too short for them", path)
        table = _read_exact(fh, table_bytes, path, "offset table")
    data_start = 16 + n_bytes + table_bytes
    offsets = [_Q.unpack_from(table, 8 * i)[0] for i in range(count + 1)]
    if offsets[count] == file_size:  # DFL's writer: the last entry is absolute
        offsets[count] = file_size - data_start
    entries: list[PakEntry] = []
    for i, config in enumerate(configs):
        start, end = offsets[i], offsets[i + 1]
        if not start <= end or data_start + end > file_size:
            raise InputError(f"DFL faceset.pak face {i} has a bad byte range {start}..{end} "
                             f"(the faces take {file_size - data_start} bytes)", path)
        filename, person = _names(config)
        entries.append(PakEntry(filename, person, data_start + start, end - start))
    return entries


def _names(config: Any) -> tuple[str | None, str | None]:
    if not isinstance(config, dict):
        return None, None
    filename, person = config.get("filename"), config.get("person_name")
    return (filename if isinstance(filename, str) else None, person if isinstance(person, str) else None)


def read_entry(fh: BinaryIO, entry: PakEntry) -> bytes:
    """The face file bytes of ``entry`` from an open pak."""
    fh.seek(entry.offset)
    return fh.read(entry.size)

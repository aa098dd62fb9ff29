"""The packed faceset (``.fpack``): one file holding the face files of a faceset byte for byte, plus an index.

Layout (integers little-endian)::

    header  16 B   MAGIC (8) | format version u32 | reserved u32 (0)
    data           the face files, concatenated unchanged (JPEG/PNG with the FaceRecord embedded)
    index          JSON length u64 | JSON (UTF-8) | zero padding to 8 | arrays, each at an 8-aligned start
    footer  32 B   index offset u64 | index length u64 | index crc32 u32 | format version u32 | END_MAGIC (8)

The JSON gives the schema and version, the face count, the file names (in pack order), the face-type
names the codes refer to, and where each array lies (dtype, shape, start within the index). The arrays
are what training needs at open without parsing a record per face: ``offset``, ``length``, ``crc32``
(of each face file), ``face_type`` (code), ``size``, ``landmarks`` (N x 68 x 2 float64, aligned image),
``yaw`` and ``pitch`` (degrees; NaN without a pose).

Reading validates everything before use (magic, versions, index CRC, JSON schema, array dtypes and
shapes, entries inside the data area and not overlapping, names that are plain unique file names) and
raises InputError with one clear line otherwise. A face's bytes are read with ``os.pread`` (each process
opens its own descriptor, so forked DataLoader workers never share a file position) and checked against
their CRC; the arrays are memory-mapped, so a 100,000-face pack opens without reading any image.
Writing streams into a temporary file renamed over the target at the end (atomic).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from facelab.core.atomic import atomic_file, count_write, remove_stale_temps, sync_all, write_bytes_atomic
from facelab.core.choices import IMAGE_EXTENSIONS
from facelab.core.errors import InputError
from facelab.core.lock import locked
from facelab.core.types import F64, U8
from facelab.core.versioned import json_loads
from facelab.face.align import FACE_TYPE_ORDER, MAX_SIZE, MIN_SIZE
from facelab.faceset.folder import list_face_files
from facelab.faceset.record import LANDMARK_COUNT, FaceRecord, NotAFaceError, record_from_bytes

PACK_SUFFIX = ".fpack"  # the one extension of packed facesets
MAGIC = b"FLFPACK\x00"
END_MAGIC = b"FLFPEND\x00"
FORMAT_VERSION = 1
INDEX_SCHEMA = "facelab.fpack.index"

_HEADER = struct.Struct("<8sII")
_FOOTER = struct.Struct("<QQII8s")
_JSON_LEN = struct.Struct("<Q")
_ALIGN = 8
_CRC_CHUNK = 1 << 20
_MAX_JSON = 1 << 30

# name -> (dtype, trailing shape); every array has the face count as its first dimension
ARRAYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "offset": ("<u8", ()),
    "length": ("<u8", ()),
    "crc32": ("<u4", ()),
    "face_type": ("u1", ()),
    "size": ("<u2", ()),
    "landmarks": ("<f8", (LANDMARK_COUNT, 2)),
    "yaw": ("<f8", ()),
    "pitch": ("<f8", ()),
}


def is_pack_path(path: Path | str) -> bool:
    """Whether ``path`` names a packed faceset (by its extension)."""
    return Path(path).suffix.lower() == PACK_SUFFIX


def check_name(name: object) -> str:
    """A face file name safe to create in a folder: no path parts, not hidden, an image extension."""
    if not isinstance(name, str) or not name or len(name) > 255:
        raise ValueError(f"bad face file name {name!r}")
    if any(c in name for c in "/\\\x00") or name.startswith(".") or not name.isprintable():
        raise ValueError(f"face file name {name!r} is not a plain file name")
    if "." + name.rpartition(".")[2].lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"face file name {name!r} has no image extension")
    return name


def _pad(n: int) -> int:
    return -n % _ALIGN


# ----------------------------------------------------------------------------------------------------
# writing


class PackWriter:
    """Streams face files into an open binary file; ``finish`` writes the index and footer."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._pos = 0
        self._write(_HEADER.pack(MAGIC, FORMAT_VERSION, 0))
        self._names: list[str] = []
        self._seen: set[str] = set()
        self._cols: dict[str, list[Any]] = {key: [] for key in ARRAYS}

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._pos += len(data)

    def __len__(self) -> int:
        return len(self._names)

    def add(self, name: str, data: bytes, record: FaceRecord) -> None:
        """Append one face file (``data``: its bytes, unchanged) whose embedded record is ``record``."""
        check_name(name)
        if name in self._seen:
            raise ValueError(f"duplicate face file name {name!r}")
        self._seen.add(name)
        self._names.append(name)
        c = self._cols
        c["offset"].append(self._pos)
        c["length"].append(len(data))
        c["crc32"].append(zlib.crc32(data))
        c["face_type"].append(FACE_TYPE_ORDER.index(record.face_type))
        c["size"].append(record.size)
        c["landmarks"].append(record.landmarks)
        c["yaw"].append(record.pose.yaw if record.pose is not None else np.nan)
        c["pitch"].append(record.pose.pitch if record.pose is not None else np.nan)
        self._write(data)
        count_write()

    def finish(self) -> int:
        """Write the index and the footer; returns the pack's size in bytes."""
        n = len(self._names)
        arrays = {}
        for key, (dtype, shape) in ARRAYS.items():
            values = self._cols[key]
            arrays[key] = np.asarray(values, dtype=dtype).reshape((n, *shape))
        layout: dict[str, Any] = {}
        start = 0
        for key, arr in arrays.items():
            layout[key] = {"dtype": ARRAYS[key][0], "shape": list(arr.shape), "start": start}
            start += arr.nbytes + _pad(arr.nbytes)
        meta = {
            "schema": INDEX_SCHEMA,
            "version": FORMAT_VERSION,
            "count": n,
            "face_types": list(FACE_TYPE_ORDER),
            "names": self._names,
            "arrays": layout,
        }
        text = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        head = _JSON_LEN.pack(len(text)) + text
        head += b"\x00" * _pad(len(head))
        # array starts are relative to the end of the (padded) JSON head
        index_offset = self._pos
        self._write(b"\x00" * _pad(index_offset))  # the index starts 8-aligned too
        index_offset = self._pos
        crc = zlib.crc32(head)
        self._write(head)
        for arr in arrays.values():
            blob = arr.tobytes() + b"\x00" * _pad(arr.nbytes)
            crc = zlib.crc32(blob, crc)
            self._write(blob)
        index_length = self._pos - index_offset
        self._write(_FOOTER.pack(index_offset, index_length, crc, FORMAT_VERSION, END_MAGIC))
        return self._pos


@contextmanager
def write_pack(path: Path) -> Iterator[PackWriter]:
    """A PackWriter whose file replaces ``path`` atomically when the block ends without error."""
    path = Path(path)
    if not is_pack_path(path):
        raise InputError(f"a packed faceset must end in {PACK_SUFFIX}", path)
    try:
        with atomic_file(path) as fh:
            writer = PackWriter(fh)
            yield writer
            writer.finish()
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path) from None


# ----------------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class PackIndex:
    """A validated index: the names and the arrays (read-only views of the memory-mapped file)."""

    names: list[str]
    face_types: tuple[str, ...]
    offset: NDArray[np.uint64]
    length: NDArray[np.uint64]
    crc32: NDArray[np.uint32]
    face_type: U8
    size: NDArray[np.uint16]
    landmarks: F64
    yaw: F64
    pitch: F64


class PackFile:
    """An open ``.fpack``: the validated index, and each face file's bytes on demand.

    Picklable (the file is reopened on the other side), and safe across fork: a process that did not
    open the descriptor opens its own before reading.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fd = -1
        self._pid = -1
        self._map: mmap.mmap | None = None
        self.file_size = 0
        self.index = self._open()

    # -- pickling: a path, reopened -----------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    # -- opening ------------------------------------------------------------------------------------

    def _error(self, message: str) -> InputError:
        return InputError(message, self.path)

    def _descriptor(self) -> int:
        if self._fd < 0 or self._pid != os.getpid():
            try:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise self._error("pack file not found") from None
            except IsADirectoryError:
                raise self._error("is a folder, not a pack file") from None
            except OSError as exc:
                raise self._error(f"cannot open: {exc.strerror or exc}") from None
            self._pid = os.getpid()
        return self._fd

    def _pread(self, size: int, offset: int) -> bytes:
        try:
            data = os.pread(self._descriptor(), size, offset)
        except OSError as exc:
            raise self._error(f"cannot read: {exc.strerror or exc}") from None
        if len(data) != size:
            raise self._error("truncated pack file (it ends early)")
        return data

    def _open(self) -> PackIndex:
        fd = self._descriptor()
        self.file_size = size = os.fstat(fd).st_size
        if size < _HEADER.size:
            raise self._error("not a facelab pack (too short for a header)" if size else "empty pack file")
        magic, version, _ = _HEADER.unpack(self._pread(_HEADER.size, 0))
        if magic != MAGIC:
            raise self._error(f"not a facelab pack (wrong magic {magic[:8]!r})")
        if version != FORMAT_VERSION:
            raise self._error(
                f"unsupported pack format version {version} (this facelab reads version {FORMAT_VERSION})")
        if size < _HEADER.size + _FOOTER.size:
            raise self._error("truncated pack file (no footer)")
        index_offset, index_length, crc, end_version, end_magic = _FOOTER.unpack(
            self._pread(_FOOTER.size, size - _FOOTER.size))
        if end_magic != END_MAGIC:
            raise self._error("truncated or damaged pack file (no end marker: was it copied completely?)")
        if end_version != version:
            raise self._error(f"damaged pack file (header version {version}, footer version {end_version})")
        if index_offset < _HEADER.size or index_offset % _ALIGN or index_offset + index_length != size - _FOOTER.size:
            raise self._error("damaged pack file (the footer points outside the file)")
        if self._crc(index_offset, index_length) != crc:
            raise self._error("damaged pack file (index checksum mismatch)")
        (json_len,) = _JSON_LEN.unpack(self._pread(_JSON_LEN.size, index_offset))
        if json_len > min(index_length - _JSON_LEN.size, _MAX_JSON):
            raise self._error("damaged pack file (bad index length)")
        try:
            meta = json_loads(self._pread(json_len, index_offset + _JSON_LEN.size).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise self._error("damaged pack file (the index is not valid JSON)") from None
        head = _JSON_LEN.size + json_len
        head += _pad(head)
        try:
            self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise self._error(f"cannot map: {exc}") from None
        try:
            return self._validate(meta, index_offset, index_offset + head, index_length - head)
        except ValueError as exc:
            raise self._error(f"damaged pack file ({exc})") from None

    def _crc(self, offset: int, length: int) -> int:
        crc = 0
        end = offset + length
        while offset < end:
            chunk = self._pread(min(_CRC_CHUNK, end - offset), offset)
            crc = zlib.crc32(chunk, crc)
            offset += len(chunk)
        return crc

    def _validate(self, meta: Any, index_offset: int, base: int, room: int) -> PackIndex:
        if not isinstance(meta, dict) or meta.get("schema") != INDEX_SCHEMA:
            raise ValueError(f"the index is not a {INDEX_SCHEMA} object")
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"index version {meta.get('version')!r}, expected {FORMAT_VERSION}")
        n = meta.get("count")
        names = meta.get("names")
        face_types = meta.get("face_types")
        layout = meta.get("arrays")
        if type(n) is not int or n < 0 or not isinstance(names, list) or len(names) != n:
            raise ValueError("face count and names disagree")
        if (not isinstance(face_types, list) or not face_types
                or not all(isinstance(t, str) and t in FACE_TYPE_ORDER for t in face_types)):
            raise ValueError("unknown face types in the index")
        if not isinstance(layout, dict) or set(layout) != set(ARRAYS):
            raise ValueError("the index lacks arrays or has unknown ones")
        for name in names:
            check_name(name)
        if len(set(names)) != n:
            raise ValueError("duplicate face file names")
        assert self._map is not None or n == 0
        arrays: dict[str, NDArray[Any]] = {}
        for key, (dtype, shape) in ARRAYS.items():
            spec = layout[key]
            if not isinstance(spec, dict) or spec.get("dtype") != dtype or spec.get("shape") != [n, *shape]:
                raise ValueError(f"array {key!r} has the wrong type or shape")
            start = spec.get("start")
            count = int(np.prod([n, *shape]))
            nbytes = count * np.dtype(dtype).itemsize
            if type(start) is not int or start < 0 or start % _ALIGN or start + nbytes > room:
                raise ValueError(f"array {key!r} lies outside the index")
            if self._map is None:
                arr = np.zeros((n, *shape), dtype=dtype)
            else:
                arr = np.frombuffer(self._map, dtype=dtype, count=count, offset=base + start).reshape((n, *shape))
            arrays[key] = arr
        if n and (int(arrays["offset"].max()) > index_offset or int(arrays["length"].max()) > index_offset):
            raise ValueError("a face lies outside the data area")  # checked before the sums below could wrap
        offset, length = arrays["offset"].astype(np.int64), arrays["length"].astype(np.int64)
        if n:
            ends = offset + length
            if offset.min() < _HEADER.size or ends.max() > index_offset or (length <= 0).any():
                raise ValueError("a face lies outside the data area")
            order = np.argsort(offset, kind="stable")
            if (offset[order][1:] < ends[order][:-1]).any():
                raise ValueError("faces overlap")
            if int(arrays["face_type"].max()) >= len(face_types):
                raise ValueError("unknown face type code")
            sizes = arrays["size"]
            if int(sizes.min()) < MIN_SIZE or int(sizes.max()) > MAX_SIZE:
                raise ValueError("face size out of range")
            if not np.isfinite(arrays["landmarks"]).all():
                raise ValueError("landmarks are not finite")
        return PackIndex(names=names, face_types=tuple(face_types), **arrays)

    # -- reading ------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.index.names)

    def read_bytes(self, i: int) -> bytes:
        """Face i's file, exactly as it was packed; InputError when its checksum does not match."""
        idx = self.index
        data = self._pread(int(idx.length[i]), int(idx.offset[i]))
        if zlib.crc32(data) != int(idx.crc32[i]):
            raise self._error(f"damaged pack file (face {idx.names[i]} fails its checksum)")
        return data

    def close(self) -> None:
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = -1
        # the arrays view the map; it is released with them (closing it under live views would fail)
        self._map = None

    def __enter__(self) -> PackFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with suppress(Exception):  # interpreter shutdown
            self.close()


# ----------------------------------------------------------------------------------------------------
# pack and unpack a faceset folder

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class PackResult:
    count: int  # faces packed
    bytes: int  # size of the pack file
    foreign: list[Path]  # skipped: images without facelab metadata
    invalid: list[tuple[Path, str]]  # skipped: malformed face files, with reasons


@locked("faceset pack", read=("folder",))
def pack_faceset(folder: Path, out: Path, overwrite: bool = False, progress: Progress | None = None) -> PackResult:
    """Pack the face files of ``folder`` into ``out`` (``.fpack``), each byte for byte, in natural order.

    Images without facelab metadata and malformed face files are skipped and listed in the result.
    Raises InputError when the folder holds no face, or ``out`` exists and ``overwrite`` is False.
    """
    folder, out = Path(folder), Path(out)
    if not is_pack_path(out):
        raise InputError(f"a packed faceset must end in {PACK_SUFFIX}", out)
    if out.exists() and not overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", out)
    remove_stale_temps(out.parent)  # the partial pack of a killed run
    files = list_face_files(folder)
    foreign: list[Path] = []
    invalid: list[tuple[Path, str]] = []
    with write_pack(out) as writer:
        for done, path in enumerate(files, 1):
            try:
                data = path.read_bytes()
                record = record_from_bytes(data, path)
            except NotAFaceError:
                foreign.append(path)
            except InputError as exc:
                invalid.append((path, str(exc).removeprefix(f"{path}: ")))
            except OSError as exc:
                invalid.append((path, f"cannot read: {exc.strerror or exc}"))
            else:
                writer.add(path.name, data, record)
            if progress is not None:
                progress(done, len(files))
        if not len(writer):
            note = f" ({len(foreign)} images without facelab metadata)" if foreign else ""
            raise InputError(f"no aligned faces in {folder}{note}")
    return PackResult(len(writer), out.stat().st_size, foreign, invalid)


@locked("faceset unpack", write=("out",))
def unpack_faceset(pack: Path, out: Path, progress: Progress | None = None) -> int:
    """Write every face of ``pack`` into the folder ``out`` under its own name, byte for byte.

    Each file is written atomically after its checksum is verified. Raises InputError when ``out``
    already holds face files (unpack into a new or empty folder) or the pack is damaged.
    Returns the number of faces written.
    """
    pack, out = Path(pack), Path(out)
    if out.exists():
        if not out.is_dir():
            raise InputError("exists and is not a folder", out)
        if list_face_files(out):
            raise InputError("already holds face files: unpack into a new or empty folder", out)
    with PackFile(pack) as pf:
        total = len(pf)
        for i, name in enumerate(pf.index.names):
            data = pf.read_bytes(i)
            try:
                write_bytes_atomic(out / name, data, durable=False)  # one sync at the end, not one per face
            except OSError as exc:
                raise InputError(f"cannot write: {exc.strerror or exc}", out / name) from None
            if progress is not None:
                progress(i + 1, total)
    sync_all()
    return total

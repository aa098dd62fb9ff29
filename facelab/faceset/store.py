"""Faceset stores: one interface over a folder of face files and a packed ``.fpack`` file.

A store lists its faces (``names``, ``paths`` for messages), gives every face's record (``records``),
the per-face arrays training needs at open (``landmarks``, ``yaws``, ``pitches``, ``type_codes``,
``sizes``) and each face file's bytes (``read_bytes(i)``). A FolderStore reads every record when it opens
(as ``scan_faces`` does); a PackStore reads only the pack's index and parses a record when it is asked
for, so opening a pack parses no record and holds no image in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from facelab.core.choices import FaceType
from facelab.core.errors import InputError
from facelab.core.types import F64, U8
from facelab.face.align import FACE_TYPE_ORDER
from facelab.faceset.folder import scan_faces
from facelab.faceset.pack import PackFile, is_pack_path
from facelab.faceset.record import FaceRecord, record_from_bytes

T = TypeVar("T")


class LazyList(Sequence[T]):
    """A read-only sequence whose items are made on access (slices give lists)."""

    def __init__(self, length: int, get: Callable[[int], T]) -> None:
        self._len = length
        self._get = get

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(self._len))]
        j = int(i)
        if j < 0:
            j += self._len
        if not 0 <= j < self._len:
            raise IndexError(f"face {i} out of range 0..{self._len - 1}")
        return self._get(j)

    def __iter__(self) -> Iterator[T]:
        return (self._get(j) for j in range(self._len))


class FaceStore:
    """What every store offers. ``location`` is the folder or the pack file."""

    location: Path
    names: Sequence[str]
    paths: Sequence[Path]  # location / name: the file, or (for a pack) a name for messages
    records: Sequence[FaceRecord]
    landmarks: F64  # (N, 68, 2), aligned-image pixels
    yaws: F64  # degrees, NaN without a pose
    pitches: F64
    type_codes: U8  # index into FACE_TYPE_ORDER
    sizes: NDArray[np.int64]
    foreign: list[Path]  # skipped: images without facelab metadata
    invalid: list[tuple[Path, str]]  # skipped: malformed face files, with reasons
    kind: str

    def __len__(self) -> int:
        return len(self.names)

    def face_type(self, i: int) -> FaceType:
        ft: FaceType = FACE_TYPE_ORDER[int(self.type_codes[i])]  # type: ignore[assignment]
        return ft

    def read_bytes(self, i: int) -> bytes:
        """Face i's file bytes (JPEG/PNG with the record embedded)."""
        raise NotImplementedError

    def nbytes(self) -> int:
        """The total size of the face files."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files (a store stays usable: it reopens on the next read)."""


def _codes(records: Sequence[FaceRecord]) -> U8:
    return np.array([FACE_TYPE_ORDER.index(r.face_type) for r in records], dtype=np.uint8)


class FolderStore(FaceStore):
    """A faceset folder: every face file's record read at open; foreign and invalid files listed, skipped."""

    kind = "folder"

    def __init__(self, folder: Path | str) -> None:
        self.location = Path(folder)
        scan = scan_faces(self.location)
        self.foreign = scan.foreign
        self.invalid = scan.invalid
        self.paths = [p for p, _ in scan.faces]
        self.names = [p.name for p in self.paths]
        self.records = [r for _, r in scan.faces]
        n = len(self.records)
        self.landmarks = (np.stack([r.landmarks_array() for r in self.records]) if n
                          else np.zeros((0, 68, 2), dtype=np.float64))
        self.yaws = np.array([r.pose.yaw if r.pose is not None else np.nan for r in self.records], dtype=np.float64)
        self.pitches = np.array([r.pose.pitch if r.pose is not None else np.nan for r in self.records],
                                dtype=np.float64)
        self.type_codes = _codes(self.records)
        self.sizes = np.array([r.size for r in self.records], dtype=np.int64)

    def read_bytes(self, i: int) -> bytes:
        path = self.paths[i]
        try:
            return path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", path) from None

    def nbytes(self) -> int:
        total = 0
        for path in self.paths:
            with suppress(OSError):  # a file that vanished since the scan counts nothing
                total += path.stat().st_size
        return total


class PackStore(FaceStore):
    """A ``.fpack`` file: the index read at open, records parsed from a face's bytes on access."""

    kind = "pack"

    def __init__(self, path: Path | str) -> None:
        self.location = Path(path)
        self.pack = PackFile(self.location)
        idx = self.pack.index
        n = len(idx.names)
        self.names = idx.names
        self.foreign = []
        self.invalid = []
        self.paths = LazyList(n, self._path)
        self.records = LazyList(n, self.record)
        self.landmarks = idx.landmarks
        self.yaws = idx.yaw
        self.pitches = idx.pitch
        # the pack's own face-type table, mapped onto FACE_TYPE_ORDER
        table = np.array([FACE_TYPE_ORDER.index(t) for t in idx.face_types], dtype=np.uint8)
        self.type_codes = table[idx.face_type]
        self.sizes = idx.size.astype(np.int64)

    def __getstate__(self) -> dict[str, Path]:
        return {"location": self.location}  # the receiver reopens the pack (spawned DataLoader workers)

    def __setstate__(self, state: dict[str, Path]) -> None:
        self.__init__(state["location"])  # type: ignore[misc]

    def _path(self, i: int) -> Path:
        return self.location / self.names[i]

    def read_bytes(self, i: int) -> bytes:
        return self.pack.read_bytes(i)

    def nbytes(self) -> int:
        return int(self.pack.index.length.sum())

    def record(self, i: int) -> FaceRecord:
        """Face i's record, parsed from its embedded metadata (and checked against the index)."""
        path = self._path(i)
        rec = record_from_bytes(self.read_bytes(i), path)
        if rec.size != int(self.sizes[i]) or rec.face_type != self.face_type(i):
            raise InputError("damaged pack file (a face's metadata disagrees with the index)", path)
        return rec

    def close(self) -> None:
        self.pack.close()


def open_store(path: Path | str) -> FaceStore:
    """The store for ``path``: a PackStore for a ``.fpack`` file (or any file), else a FolderStore.

    Raises InputError when the path is missing or the pack is damaged.
    """
    path = Path(path)
    if is_pack_path(path) or path.is_file():
        return PackStore(path)
    return FolderStore(path)

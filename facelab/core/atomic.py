"""Atomic writes: write to a temporary file in the same folder, fsync, then rename over the target.

A reader never sees a half-written file, and an interrupted write leaves the previous version intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from facelab.core.errors import storage_error


def _file_mode() -> int:
    """The mode a plainly created file gets under the current umask (mkstemp would give 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()


def write_bytes_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    ``durable=False`` skips the fsync: the write is still all-or-nothing for readers and for a killed
    process, but survives a power cut only after the caller syncs (bulk writers such as merge call
    ``sync_all`` once at the end instead of paying one disk flush per file).
    """
    with atomic_file(path, durable=durable, sync_folder=False) as fh:
        fh.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def append_line(path: Path, line: str) -> None:
    """Append one line to a log (metrics, runs), not atomic but whole: a line torn by an earlier failed write
    is ended first, so readers lose that one line only. A storage error becomes a StorageError naming path."""
    path = Path(path)
    try:
        with open(path, "a+b") as fh:
            torn = False
            if fh.seek(0, os.SEEK_END) > 0:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
            fh.write((("\n" if torn else "") + line.rstrip("\n") + "\n").encode("utf-8"))
    except OSError as exc:
        err = storage_error(exc, path)
        if err is None:
            raise
        raise err from exc


def fsync_dir(path: Path) -> None:
    """Make a rename durable by syncing the folder that holds it (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Path, durable: bool = True, sync_folder: bool = True,
                readable: bool = False) -> Iterator[BinaryIO]:
    """A binary file to stream into; it replaces ``path`` (renamed over it) only when the block succeeds.

    ``durable``: fsync the file before the rename; ``sync_folder``: fsync the folder after it (the rename
    itself survives a power cut); ``readable``: opened for reading too (a writer that seeks back and reads
    what it wrote). For outputs too large to build in memory.

    A storage error (disk full, I/O error: ``STORAGE_ERRNOS``) becomes a one-line StorageError naming
    ``path``; the previous file stays as it was and the temporary file is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        err = storage_error(exc, path)
        if err is None:
            raise
        raise err from exc
    try:
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "w+b" if readable else "wb") as fh:
            yield fh
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        err = storage_error(exc, path)
        if err is None or err is exc:
            raise
        raise err from exc
    if sync_folder:
        fsync_dir(path.parent)


def sync_all() -> None:
    """Flush every written file to disk (after a run of ``write_bytes_atomic(..., durable=False)``)."""
    os.sync()

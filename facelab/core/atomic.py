"""Atomic writes: write to a temporary file in the same folder, fsync, then rename over the target.

A reader never sees a half-written file, and an interrupted write leaves the previous version intact.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import sys
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
TEMP_SUFFIX = ".tmp"
# atomic_file's temporary names, and those of writers that need the target's suffix (video encoding):
# ".NAME.PID-RANDOM.tmp", ".NAME.PID-RANDOM.partial.EXT"
_TEMP_NAME = re.compile(r"^\..+\.(\d+)-[A-Za-z0-9_]+\.(tmp|partial\.[A-Za-z0-9]+)$")


def temp_name(path: Path, token: str) -> Path:
    """A temporary name beside ``path`` that ``remove_stale_temps`` recognises, keeping the suffix (FFmpeg
    picks the container by it)."""
    return path.with_name(f".{path.stem}.{os.getpid()}-{token}.partial{path.suffix}")


# Test hook (tests/killpoints.py, docs/reliability.md "Kill -9"): with FACELAB_KILL_AFTER_WRITES=k in the
# environment, the k-th write step of a process (counted by ``count_write`` at each write choke point: here
# a temporary file complete but not yet renamed, and its rename; journal appends; video encodes; sort
# renames; faces streamed into a pack) kills the process group with SIGKILL, as a crash right after that
# step would; a process that ends first prints its count
# ("facelab-writes: N") to stderr at exit, so the tests can spread k over a run. Unset (always, outside the
# kill tests), it costs one comparison per write. Not an option: no user should ever set it.
_KILL_AFTER = int(os.environ.get("FACELAB_KILL_AFTER_WRITES", "0") or 0)
_writes = 0
if _KILL_AFTER > 0:
    atexit.register(lambda: sys.stderr.write(f"facelab-writes: {_writes}\n"))


def count_write() -> None:
    """Count one completed write for the kill test hook (no-op unless FACELAB_KILL_AFTER_WRITES is set)."""
    if _KILL_AFTER > 0:
        _count_and_maybe_kill()


def _count_and_maybe_kill() -> None:
    global _writes
    _writes += 1
    if _writes >= _KILL_AFTER:
        os.killpg(os.getpgrp(), signal.SIGKILL)


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
    count_write()


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
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=TEMP_SUFFIX, dir=path.parent)
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
        count_write()  # a kill here leaves the temporary file (see remove_stale_temps) and the old target
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        err = storage_error(exc, path)
        if err is None or err is exc:
            raise
        raise err from exc
    if sync_folder:
        fsync_dir(path.parent)
    count_write()


def remove_stale_temps(folder: Path) -> int:
    """Delete the temporary files that killed processes left in ``folder`` (``atomic_file``'s
    ``.NAME.PID-XXXX.tmp`` whose PID no longer runs); returns how many. A job calls it once, when it
    starts on its output folder: SIGKILL or a power cut skip the clean-up of a write in progress, and
    without this such files (a whole partial pack, say) would stay forever. The PID is this machine's:
    a folder written from two machines at once (not supported: one writer per folder) could lose a
    temporary file of the other one."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if m is None or not entry.is_file(follow_symlinks=False) or pid_alive(int(m.group(1))):
            continue
        try:
            os.unlink(entry.path)
            removed += 1
        except OSError:
            pass
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def sync_all() -> None:
    """Flush every written file to disk (after a run of ``write_bytes_atomic(..., durable=False)``)."""
    os.sync()

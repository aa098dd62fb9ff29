"""A faulty disk for tests: ENOSPC or EIO injected into writes and fsyncs at the file layer.

Every file opened for writing (``open``/``io.open``, ``os.fdopen``: the atomic writer, the journals, the
metrics logs), every ``os.fsync`` and every packet a video container muxes (PyAV's ``av.open(..., "w")``)
is one operation. From operation ``at`` on, each fails: a full disk (ENOSPC, ``once=False``) stays full;
an I/O error (EIO, ``once=True``) fails that one operation. A failing write first writes half its data,
as a disk that fills mid-write does.

    with FaultyDisk(at=5) as disk:
        with pytest.raises(StorageError):
            run_extract(...)
    disk.ops, disk.failed
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from types import TracebackType
from typing import Any

import av
import pytest


class _File:
    """A writable file whose writes count (and may fail)."""

    def __init__(self, fh: Any, disk: FaultyDisk) -> None:
        self._fh = fh
        self._disk = disk

    def write(self, data: Any) -> int:
        if self._disk.tick():
            self._fh.write(data[: len(data) // 2])
            self._disk.fail()
        return int(self._fh.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __iter__(self) -> Any:
        return iter(self._fh)

    def __enter__(self) -> _File:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.__exit__(*exc)


class _Container:
    """A PyAV output container whose muxed packets count (and may fail)."""

    def __init__(self, container: Any, disk: FaultyDisk) -> None:
        self._c = container
        self._disk = disk

    def mux(self, packets: Any) -> Any:
        if self._disk.tick():
            self._disk.fail()
        return self._c.mux(packets)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)


def _writes(mode: str) -> bool:
    return any(c in mode for c in "wax+")


class FaultyDisk:
    def __init__(self, *, at: int | None = None, code: int = errno.ENOSPC, once: bool | None = None) -> None:
        self.mp = pytest.MonkeyPatch()
        self.at = at  # None: count only
        self.code = code
        self.once = code != errno.ENOSPC if once is None else once
        self.ops = 0
        self.failed = 0

    def tick(self) -> bool:
        """Count one operation; True when it must fail."""
        self.ops += 1
        if self.at is None:
            return False
        return self.ops == self.at if self.once else self.ops >= self.at

    def fail(self) -> None:
        self.failed += 1
        raise OSError(self.code, os.strerror(self.code))

    def __enter__(self) -> FaultyDisk:
        real_open, real_fdopen, real_fsync, real_av_open = builtins.open, os.fdopen, os.fsync, av.open

        def fopen(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            fh = real_open(file, mode, *args, **kwargs)
            return _File(fh, self) if _writes(mode) else fh

        def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            fh = real_fdopen(fd, mode, *args, **kwargs)
            return _File(fh, self) if _writes(mode) else fh

        def fsync(fd: Any) -> None:
            if self.tick():
                self.fail()
            real_fsync(fd)

        def av_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            c = real_av_open(file, mode, *args, **kwargs)
            return _Container(c, self) if mode == "w" else c

        self.mp.setattr(builtins, "open", fopen)
        self.mp.setattr(io, "open", fopen)
        self.mp.setattr(os, "fdopen", fdopen)
        self.mp.setattr(os, "fsync", fsync)
        self.mp.setattr(av, "open", av_open)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.mp.undo()

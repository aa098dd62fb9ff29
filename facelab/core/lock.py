"""Folder locks: one writer per workspace, model folder and faceset; any number of readers.

A lock is an advisory ``fcntl.flock`` on a lock file inside the folder (``FOLDER/.facelab.lock``, a
dotfile: every reader of faces, frames and model files skips it). A writer takes it exclusively, a
reader shares it; a second writer, or a writer while someone reads (a sort while a pack reads the
faceset), is refused at once with a one-line ``FolderBusy`` naming the holder. The kernel drops the
lock when its process ends, however it ends (kill -9 included): there are no stale locks to clean up.
The file's content (holder pid, command line, start time), written after the lock is taken, only
helps that message; it is never trusted for exclusion. The last holder removes the file, and a folder
made only to hold a lock is removed again, so a refused job leaves nothing behind.

Locks nest within one thread (a workflow holding a folder may call a phase that takes it again); two
threads of one process exclude each other like two processes. A folder that cannot hold a lock file
(read-only media) is read without one.

    with folder_lock(model_dir, "train"):                # exclusive
        ...
    with folder_locks([Want(out), Want(faces, shared=True)], "merge"):
        ...

    @locked("faceset sort", write=("directory",))      # the phase entry points
    def sort_faceset(directory: Path, ...) -> ...:
"""

from __future__ import annotations

import errno
import fcntl
import functools
import inspect
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from facelab.core.atomic import pid_alive
from facelab.core.errors import FacelabError, InputError, printable

LOCK_NAME = ".facelab.lock"

P = ParamSpec("P")
R = TypeVar("R")


class FolderBusy(FacelabError):
    """Another process (or thread) holds a folder this job must write, or writes one it must read."""

    def __init__(self, folder: Path, purpose: str, holder: str) -> None:
        self.folder = folder
        self.holder = holder
        super().__init__(f"{folder}: in use by {holder}; {purpose} cannot run on it at the same time "
                         "(wait for that job to end, or stop it)")


@dataclass(frozen=True)
class Want:
    """A lock to take: ``folder`` shared (a reader) or exclusive (a writer); ``name`` the lock file's.
    ``create``: a writer's output folder is made for its lock; False for a folder rewritten in place (a
    missing one is not locked: the job itself says it is missing)."""

    folder: Path
    shared: bool = False
    name: str = LOCK_NAME
    create: bool = True


@dataclass
class _Held:
    fd: int
    key: tuple[int, int]
    path: Path
    shared: bool
    thread: int
    created: bool  # the folder did not exist before this lock
    count: int = 1


_GUARD = threading.Lock()
_HELD: dict[tuple[int, int], _Held] = {}


def _command_line() -> str:
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
        args = [a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")]
    except OSError:
        args = list(sys.argv)
    if args and Path(args[0]).name.startswith("python") and len(args) > 2 and args[1] == "-m":
        args = args[2:]  # "python -m facelab train ..." -> "facelab train ..."
    elif len(args) > 1 and Path(args[0]).name.startswith("python"):
        args = args[1:]
    if args:
        args[0] = Path(args[0]).name
    return " ".join(args)


def _describe(fd: int) -> str:
    """The holder as the lock file tells it (informational only): a writer's line, or the readers' lines
    (each reader appends one; those of ended processes are passed over)."""
    try:
        lines = os.pread(fd, 64 * 1024, 0).decode("utf-8", "replace").splitlines()
    except OSError:
        lines = []
    holders: list[tuple[int, str, str, float]] = []
    for line in lines:
        try:
            info = json.loads(line)
            holders.append((int(info["pid"]), str(info["command"]), str(info["purpose"]), float(info["since"])))
        except (ValueError, KeyError, TypeError):
            continue
    live = [h for h in holders if pid_alive(h[0])]
    live.sort(key=lambda h: h[0] == os.getpid())  # another process first: this one only when it is the holder
    if not live:
        return "another process"
    pid, command, purpose, since = live[0]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    more = f" and {len(live) - 1} more" if len(live) > 1 else ""
    return f"pid {pid} ({printable(command, 100)}, {printable(purpose, 40)} since {when}){more}"


def _record(fd: int, purpose: str, shared: bool) -> None:
    """Say who holds the lock: a writer replaces the file's content, each reader adds its line."""
    info = {"pid": os.getpid(), "command": _command_line(), "purpose": purpose, "since": time.time()}
    try:
        if not shared:
            os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode("utf-8"))  # O_APPEND: readers' lines never overlap
    except OSError:
        pass  # a full disk: the lock holds all the same, only the message loses its details


def _open_locked(path: Path, shared: bool, purpose: str) -> int | None:
    """A descriptor of ``path`` holding the flock, or None where the file system cannot lock.

    The last holder removes the lock file when it releases (so a folder is left as it was found); a
    process that locked the file just as it was removed finds another inode at ``path`` and tries again.
    """
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if shared or exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                return None  # read-only media: nobody can write there either
            raise InputError(f"cannot create the lock file: {exc.strerror or exc}", path) from None
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                holder = _describe(fd)
                os.close(fd)
                raise FolderBusy(path.parent, purpose, holder) from None
            os.close(fd)
            return None  # a file system without flock (ENOLCK): run unlocked rather than not at all
        if _same_file(fd, path):
            return fd
        os.close(fd)  # locked a file its last holder had just removed
    raise InputError("cannot take the lock: its file keeps changing", path)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _acquire(want: Want, purpose: str) -> _Held | None:
    folder = Path(want.folder)
    if (want.shared or not want.create) and not folder.is_dir():
        return None  # nothing to read or change yet, or a file (a video, a pack): no folder to hold
    created = not want.shared and not folder.exists()
    if created:
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / want.name
    me = threading.get_ident()
    with _GUARD:
        for held in _HELD.values():  # nested in this thread: the same lock again (or a read inside a write)
            if held.path == path and held.thread == me and (want.shared or not held.shared):
                held.count += 1
                return held
    fd = _open_locked(path, want.shared, purpose)
    if fd is None:
        return None
    _record(fd, purpose, want.shared)
    st = os.fstat(fd)
    held = _Held(fd, (st.st_dev, st.st_ino), path, want.shared, me, created)
    with _GUARD:
        _HELD[held.key] = held
    return held


def _release(held: _Held) -> None:
    with _GUARD:
        held.count -= 1
        if held.count > 0:
            return
        if _HELD.get(held.key) is held:
            del _HELD[held.key]
    try:
        # the last holder (an exclusive lock is granted only then) removes the file, and a folder it made
        # that stayed empty (a run refused before writing anything leaves nothing behind)
        fcntl.flock(held.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(held.fd, held.path):
            held.path.unlink()
            if held.created:
                held.path.parent.rmdir()
    except OSError:
        pass
    finally:
        os.close(held.fd)  # closing the last descriptor drops the flock


@dataclass
class HeldLocks:
    """Locks taken together; ``release()`` drops them (idempotent)."""

    held: list[_Held] = field(default_factory=list)

    def release(self) -> None:
        while self.held:
            _release(self.held.pop())


def take(wants: Iterable[Want], purpose: str) -> HeldLocks:
    """Take every lock (writers' first) or none: raises FolderBusy naming the first holder found."""
    locks = HeldLocks()
    try:
        for want in sorted(wants, key=lambda w: w.shared):
            held = _acquire(want, purpose)
            if held is not None:
                locks.held.append(held)
    except BaseException:
        locks.release()
        raise
    return locks


def hold(owner: object, wants: Iterable[Want], purpose: str) -> HeldLocks:
    """``take`` for an object that holds the locks while it lives: released by ``release()`` (its
    ``close``) or, at the latest, when ``owner`` is garbage collected."""
    locks = take(wants, purpose)
    weakref.finalize(owner, locks.release)
    return locks


@contextmanager
def folder_locks(wants: Iterable[Want], purpose: str) -> Iterator[None]:
    locks = take(wants, purpose)
    try:
        yield
    finally:
        locks.release()


@contextmanager
def folder_lock(folder: Path, purpose: str, *, shared: bool = False) -> Iterator[None]:
    """Hold ``folder`` exclusively (or ``shared``, as a reader) for the block."""
    with folder_locks([Want(Path(folder), shared)], purpose):
        yield


def _paths(value: Any) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    if isinstance(value, Sequence):
        return [Path(v) for v in value if isinstance(v, (str, os.PathLike))]
    return []


def locked(purpose: str, write: Sequence[str] = (), read: Sequence[str] = (), modify: Sequence[str] = (),
           wants: Callable[[Mapping[str, Any]], Iterable[Want]] | None = None
           ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a phase entry point: the folders its arguments ``write`` (outputs, made if missing) and
    ``modify`` (existing folders rewritten in place) name are held exclusively, those ``read`` names
    shared, plus what ``wants(arguments)`` returns, for the whole call."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            todo = [Want(p) for name in write for p in _paths(arguments.get(name))]
            todo += [Want(p, create=False) for name in modify for p in _paths(arguments.get(name))]
            todo += [Want(p, shared=True) for name in read for p in _paths(arguments.get(name))]
            if wants is not None:
                todo += list(wants(arguments))
            with folder_locks(todo, purpose):
                return fn(*args, **kwargs)

        return run

    return decorate

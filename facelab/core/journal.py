"""The resumable journal of a long job: one JSON line per finished item, appended and flushed as items finish.

Extraction (per frame), merging (per frame) and faceset enhancement (per face file) keep one. A re-run
reads it and skips what is done, so an interrupted job resumes; a line torn by a kill is ignored (and
the next append starts on a new line). The first line is a header, ``{"journal": NAME, "version": 1,
"settings": {...}}``: the settings that make an entry valid. When a re-run's settings differ, the
job decides through ``on_change`` (called with the old settings): raise an InputError to refuse (a
folder must not mix face types), return "restart" to drop every entry and start the file anew (merge:
another model or options means every frame is merged again), or "keep" (the entries stay valid).
A file without a header (written before journals had one) is read as entries with no settings.

Entries are dicts with a ``key`` field (``"frame"``, ``"file"``); ``latest`` holds the last entry of
each key, ``history`` every entry of a key in order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import IO, Any, Literal

from facelab.core.atomic import count_write
from facelab.core.errors import InputError, storage_error
from facelab.core.versioned import json_loads

VERSION = 1
Decision = Literal["keep", "restart"]


class Journal:
    def __init__(self, path: Path, name: str, settings: dict[str, Any] | None = None, *, key: str = "frame",
                 on_change: Callable[[dict[str, Any] | None], Decision] | None = None) -> None:
        """Open (read) the journal at ``path``; nothing is written before the first ``append``.

        ``on_change`` runs when the file exists and its settings differ from ``settings`` (its argument is
        the old settings, None for a file without a header); without it a change restarts the journal.
        """
        self.path = Path(path)
        self.name = name
        self.settings = settings
        self.key = key
        self.latest: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self._fh: IO[str] | None = None
        self._restart = False
        if self.path.is_file():
            self._load(on_change)

    def _load(self, on_change: Callable[[dict[str, Any] | None], Decision] | None) -> None:
        header: dict[str, Any] | None = None
        try:
            lines = self.path.read_bytes().splitlines()
        except OSError as exc:
            raise InputError(f"cannot read the {self.name} journal: {exc.strerror or exc}", self.path) from None
        for line in lines:
            try:
                obj = json_loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill (or not UTF-8)
            if not isinstance(obj, dict):
                continue
            if "journal" in obj:
                if obj.get("journal") != self.name:
                    raise InputError(f"not a {self.name} journal (it says {obj.get('journal')!r}); use another "
                                     "output folder", self.path)
                header = obj
            elif self.key in obj:
                self._remember(obj)
        if header is not None and header.get("version") != VERSION:
            raise InputError(f"{self.name} journal version {header.get('version')} is not supported (start a new "
                             "output folder)", self.path)
        old = None if header is None else header.get("settings")
        if self.settings is None or old == self.settings:
            return
        decision = "restart" if on_change is None else on_change(old if isinstance(old, dict) else None)
        if decision == "restart":
            self.latest.clear()
            self.history.clear()
            self._restart = True

    def _remember(self, entry: dict[str, Any]) -> None:
        k = str(entry[self.key])
        self.latest[k] = entry
        self.history.setdefault(k, []).append(entry)

    def __contains__(self, key: object) -> bool:
        return key in self.latest

    def append(self, entry: dict[str, Any]) -> None:
        """Write one entry (a dict with the key field) and flush it to the OS (fsync: ``sync``)."""
        try:
            if self._fh is None:
                self._open()
            assert self._fh is not None
            self._fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self._fh.flush()
        except OSError as exc:
            self._fail(exc)
        count_write()
        self._remember(entry)

    def _fail(self, exc: OSError) -> None:
        """A failed write (disk full, I/O error): the file is closed (a torn last line is ignored when it
        is read again) and the error raised, as a one-line StorageError where it is one."""
        fh, self._fh = self._fh, None
        if fh is not None:
            with suppress(OSError):  # the buffered rest could not be written either
                fh.close()
        err = storage_error(exc, self.path)
        if err is None:
            raise exc
        raise err from exc

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = self._restart or not self.path.is_file() or self.path.stat().st_size == 0
        if fresh:
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - kept open while the job runs
            header = {"journal": self.name, "version": VERSION, "settings": self.settings}
            self._fh.write(json.dumps(header) + "\n")
        else:
            torn = not self.path.read_bytes().endswith(b"\n")
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            if torn:
                self._fh.write("\n")
        self._restart = False

    def sync(self) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except OSError as exc:
                self._fail(exc)

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            if self._fh is not None:
                self._fh.close()
                self._fh = None

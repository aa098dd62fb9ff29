"""The extraction journal: one JSON line per finished frame, appended and flushed as frames finish.

A re-run reads it and skips finished frames, so an interrupted extraction resumes. A torn last line
(the process was killed mid-write) is ignored. The first line records the settings that shape the
faces; resuming with different ones is refused, so a folder never mixes face types or sizes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from facelab.core.errors import InputError

JOURNAL_VERSION = 1
SHAPING_KEYS = ("face_type", "size", "image_format")


class Journal:
    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path = path
        self.settings = settings
        self.entries: dict[str, dict[str, Any]] = {}
        self._fh: IO[str] | None = None
        if path.exists():
            self._load()

    def _load(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        header: dict[str, Any] | None = None
        for line in lines:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            if not isinstance(obj, dict):
                continue
            if obj.get("journal") == "facelab.extract":
                header = obj
            elif "frame" in obj and header is not None:
                self.entries[str(obj["frame"])] = obj
        if header is None:
            return
        if header.get("version") != JOURNAL_VERSION:
            raise InputError(f"extraction journal version {header.get('version')} is not supported "
                             "(start a new output folder)", self.path)
        old = header.get("settings", {})
        for key in SHAPING_KEYS:
            if key in old and old[key] != self.settings.get(key):
                raise InputError(
                    f"this folder was extracted with {key}={old[key]}, not {self.settings.get(key)}; "
                    "use another output folder or the same settings", self.path.parent.parent)

    def done(self, frame: str, stage: str = "write") -> dict[str, Any] | None:
        e = self.entries.get(frame)
        if e is None:
            return None
        if stage == "detect" or e.get("stage") == "write":
            return e
        return None

    def append(self, entry: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            torn = not new and not self.path.read_bytes().endswith(b"\n")
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open while running
            if torn:
                self._fh.write("\n")
            if new:
                header = {"journal": "facelab.extract", "version": JOURNAL_VERSION, "settings": self.settings}
                self._fh.write(json.dumps(header) + "\n")
        self._fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._fh.flush()
        self.entries[str(entry["frame"])] = entry

    def sync(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None

"""Extraction's use of the core journal (facelab.core.journal): one entry per frame, at stage "detect"
(landmarks only, the first pass of --smooth) or "write" (faces written).

The settings that shape the faces (face type, size, image format) must match on resume: a folder never
mixes face types or sizes. Other settings may change between runs; the frames already done stay done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facelab.core.errors import InputError
from facelab.core.journal import Decision, Journal

JOURNAL_NAME = "facelab.extract"
SHAPING_KEYS = ("face_type", "size", "image_format")


def open_journal(path: Path, settings: dict[str, Any]) -> Journal:
    def on_change(old: dict[str, Any] | None) -> Decision:
        for key in SHAPING_KEYS:
            if old is not None and key in old and old[key] != settings.get(key):
                raise InputError(f"this folder was extracted with {key}={old[key]}, not {settings.get(key)}; "
                                 "use another output folder or the same settings", path.parent.parent)
        return "keep"

    return Journal(path, JOURNAL_NAME, settings, on_change=on_change)


def frame_done(journal: Journal, frame: str, stage: str = "write") -> dict[str, Any] | None:
    """The frame's entry when it has reached ``stage`` ("detect" or "write"), else None."""
    e = journal.latest.get(frame)
    if e is None:
        return None
    if stage == "detect" or e.get("stage") == "write":
        return e
    return None

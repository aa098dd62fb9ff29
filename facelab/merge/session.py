"""Merge sessions: the options of a merge plus per-frame overrides, stored as one JSON file.

    {"schema": "facelab.merge_session", "version": 1,
     "options": {"mode": "overlay", ...},
     "frames": {"000123": {"erode": 10, ...}, ...}}

``options`` holds any MergeOptions fields (missing ones take the defaults); each entry of ``frames``
overrides some of the per-frame ones (FrameOptions) for one frame, keyed by the frame file's stem; a
per-run option (RunOptions) in a frame entry is refused. Everything is validated when the
file is read: an unknown key or an out-of-range value is an InputError naming the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from facelab.core.atomic import write_json_atomic
from facelab.core.errors import InputError, validation_message
from facelab.merge.options import RUN_KEYS, MergeOptions

SCHEMA = "facelab.merge_session"
VERSION = 1
_TOP_KEYS = frozenset({"schema", "version", "options", "frames"})


def _validate(values: dict[str, Any], where: str, path: Path | None) -> MergeOptions:
    try:
        return MergeOptions.model_validate(values)
    except ValidationError as exc:
        raise InputError(f"invalid merge session: {where}.{validation_message(exc)}", path) from None


@dataclass(frozen=True)
class MergeSession:
    """Base options and per-frame overrides (only the overridden keys are stored)."""

    options: MergeOptions = field(default_factory=MergeOptions)
    frames: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stem, over in self.frames.items():
            self._check_override(stem, over, None)

    def _check_override(self, stem: str, over: dict[str, Any], path: Path | None) -> MergeOptions:
        bad = sorted(set(over) & RUN_KEYS)
        if bad:
            raise InputError(f"invalid merge session: frames.{stem}.{bad[0]}: cannot change per frame", path)
        return _validate(self.options.model_dump() | over, f"frames.{stem}", path)

    def options_for(self, frame_stem: str) -> MergeOptions:
        """The options for one frame: the base options with that frame's overrides applied."""
        over = self.frames.get(frame_stem)
        if not over:
            return self.options
        return self.options.model_copy(update=over)

    def with_frame(self, frame_stem: str, **overrides: Any) -> MergeSession:
        """A copy with more overrides for one frame (validated)."""
        merged = dict(self.frames.get(frame_stem, {})) | overrides
        self._check_override(frame_stem, merged, None)
        return MergeSession(self.options, self.frames | {frame_stem: merged})

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "version": VERSION, "options": self.options.model_dump(mode="json"),
                "frames": {k: dict(v) for k, v in sorted(self.frames.items())}}


def parse_session(data: Any, path: Path | None = None) -> MergeSession:
    """Validate a session object (as read from JSON)."""
    if not isinstance(data, dict):
        raise InputError("invalid merge session: expected a JSON object", path)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise InputError(f"invalid merge session: unknown key {unknown[0]!r}", path)
    if data.get("schema") != SCHEMA:
        raise InputError(f"not a merge session (schema {data.get('schema')!r}, expected {SCHEMA!r})", path)
    if data.get("version") != VERSION:
        raise InputError(f"unsupported merge session version {data.get('version')!r} (this facelab reads "
                         f"version {VERSION})", path)
    raw_opts = data.get("options", {})
    if not isinstance(raw_opts, dict):
        raise InputError("invalid merge session: 'options' must be an object", path)
    base = _validate({k.replace("-", "_"): v for k, v in raw_opts.items()}, "options", path)
    raw_frames = data.get("frames", {})
    if not isinstance(raw_frames, dict):
        raise InputError("invalid merge session: 'frames' must be an object of frame name -> overrides", path)
    session = MergeSession(base, {})
    frames: dict[str, dict[str, Any]] = {}
    for stem, over in raw_frames.items():
        if not isinstance(over, dict):
            raise InputError(f"invalid merge session: frames.{stem} must be an object", path)
        over = {k.replace("-", "_"): v for k, v in over.items()}
        validated = session._check_override(str(stem), over, path)
        # store the coerced values of the overridden keys only
        frames[str(stem)] = {k: getattr(validated, k) for k in over}
    return MergeSession(base, frames)


def load_session(path: Path) -> MergeSession:
    path = Path(path)
    if not path.is_file():
        raise InputError("merge session file not found", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable merge session: {' '.join(str(exc).split())}", path) from None
    return parse_session(data, path)


def save_session(path: Path, session: MergeSession) -> None:
    """Write the session atomically (a reader never sees half a file)."""
    write_json_atomic(Path(path), session.to_json())

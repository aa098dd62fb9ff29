"""Merge sessions: the options of a merge plus per-range and per-frame overrides, stored as one JSON file.

    {"schema": "facelab.merge_session", "version": 2,
     "options": {"mode": "overlay", ...},
     "ranges": [{"first": "000100", "last": "000180", "options": {"erode": 10}}, ...],
     "frames": {"000123": {"erode": 10, ...}, ...}}

``options`` holds any MergeOptions fields (missing ones take the defaults). ``ranges`` (version 2) override
some of the per-frame options (FrameOptions) for the frames from ``first`` to ``last`` (both included, in
frame order: numbered frames by number, others by name); they apply in list order, a later range winning
over an earlier one. Each entry of ``frames`` overrides per-frame options for one frame, keyed by the frame
file's stem, and wins over every range. A per-run option (RunOptions) in a range or frame entry is
refused. Everything is validated when the file is read: an unknown key or an out-of-range value is an
InputError naming the key. Version 1 files (no ``ranges``) are still read; files are written as version 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from facelab.core.atomic import write_json_atomic
from facelab.core.errors import InputError, validation_message
from facelab.core.versioned import json_loads
from facelab.media.frames import frame_number
from facelab.merge.options import RUN_KEYS, MergeOptions

SCHEMA = "facelab.merge_session"
VERSION = 2
READS = (1, 2)  # the versions this facelab reads
_TOP_KEYS = {1: frozenset({"schema", "version", "options", "frames"}),
             2: frozenset({"schema", "version", "options", "ranges", "frames"})}
_RANGE_KEYS = frozenset({"first", "last", "options"})


def frame_key(stem: str) -> tuple[int, int, str]:
    """Frame order of a frame file's stem: numbered frames by number (as `list_frames` sorts them), then
    other names by name."""
    number = frame_number(stem)
    return (0, number, stem) if number is not None else (1, 0, stem)


def _validate(values: dict[str, Any], where: str, path: Path | None) -> MergeOptions:
    try:
        return MergeOptions.model_validate(values)
    except ValidationError as exc:
        raise InputError(f"invalid merge session: {where}.{validation_message(exc)}", path) from None


def _keys(over: dict[str, Any]) -> dict[str, Any]:
    return {str(k).replace("-", "_"): v for k, v in over.items()}


@dataclass(frozen=True)
class FrameRange:
    """Overrides for the frames from ``first`` to ``last`` (stems, both included, in frame order)."""

    first: str
    last: str
    options: dict[str, Any]

    def covers(self, stem: str) -> bool:
        return frame_key(self.first) <= frame_key(stem) <= frame_key(self.last)

    def to_json(self) -> dict[str, Any]:
        return {"first": self.first, "last": self.last, "options": dict(self.options)}


@dataclass(frozen=True)
class MergeSession:
    """Base options, range overrides and per-frame overrides (only the overridden keys are stored)."""

    options: MergeOptions = field(default_factory=MergeOptions)
    frames: dict[str, dict[str, Any]] = field(default_factory=dict)
    ranges: tuple[FrameRange, ...] = ()

    def __post_init__(self) -> None:
        for stem, over in self.frames.items():
            self._check_override(f"frames.{stem}", over, None)
        for i, rng in enumerate(self.ranges):
            self._check_range(i, rng, None)

    def _check_override(self, where: str, over: dict[str, Any], path: Path | None) -> MergeOptions:
        bad = sorted(set(over) & RUN_KEYS)
        if bad:
            raise InputError(f"invalid merge session: {where}.{bad[0]}: cannot change per frame", path)
        return _validate(self.options.model_dump() | over, where, path)

    def _check_range(self, i: int, rng: FrameRange, path: Path | None) -> MergeOptions:
        if frame_key(rng.first) > frame_key(rng.last):
            raise InputError(f"invalid merge session: ranges.{i}: first frame {rng.first} comes after last frame "
                             f"{rng.last}", path)
        return self._check_override(f"ranges.{i}.options", rng.options, path)

    def options_for(self, frame_stem: str) -> MergeOptions:
        """The options for one frame: the base options, then every range covering it in order, then the
        frame's own overrides."""
        update: dict[str, Any] = {}
        for rng in self.ranges:
            if rng.covers(frame_stem):
                update |= rng.options
        update |= self.frames.get(frame_stem, {})
        return self.options.model_copy(update=update) if update else self.options

    def overrides(self) -> list[dict[str, Any]]:
        """Every override (ranges, then frames)."""
        return [r.options for r in self.ranges] + list(self.frames.values())

    def variants(self) -> list[MergeOptions]:
        """The base options and the base with each override applied alone: every value a frame's options
        can take for any one key appears in one of them (what the run's checks need, e.g. every mask mode)."""
        return [self.options, *(self.options.model_copy(update=o) for o in self.overrides())]

    def with_frame(self, frame_stem: str, **overrides: Any) -> MergeSession:
        """A copy with more overrides for one frame (validated)."""
        merged = dict(self.frames.get(frame_stem, {})) | _keys(overrides)
        validated = self._check_override(f"frames.{frame_stem}", merged, None)
        return MergeSession(self.options, self.frames | {frame_stem: _coerced(validated, merged)}, self.ranges)

    def with_range(self, first: str, last: str, **overrides: Any) -> MergeSession:
        """A copy with a range override appended (it wins over the earlier ranges); the same keys are
        removed from the frame overrides inside the range, so the range shows on every frame of it."""
        over = _keys(overrides)
        validated = self._check_range(len(self.ranges), FrameRange(first, last, over), None)
        rng = FrameRange(first, last, _coerced(validated, over))
        frames = {s: ({k: v for k, v in o.items() if k not in over} if rng.covers(s) else o)
                  for s, o in self.frames.items()}
        return MergeSession(self.options, {s: o for s, o in frames.items() if o}, (*self.ranges, rng))

    def with_all(self, **options: Any) -> MergeSession:
        """A copy with new base options (per-run ones too); the same keys are removed from every range
        and frame override, so every frame shows them (ranges and frames left empty are dropped)."""
        opts = _keys(options)
        base = _validate(self.options.model_dump() | opts, "options", None)
        ranges = tuple(FrameRange(r.first, r.last, {k: v for k, v in r.options.items() if k not in opts})
                       for r in self.ranges)
        frames = {s: {k: v for k, v in o.items() if k not in opts} for s, o in self.frames.items()}
        return MergeSession(base, {s: o for s, o in frames.items() if o}, tuple(r for r in ranges if r.options))

    def without_frame(self, frame_stem: str) -> MergeSession:
        """A copy without the frame's own overrides."""
        return MergeSession(self.options, {s: o for s, o in self.frames.items() if s != frame_stem}, self.ranges)

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "version": VERSION, "options": self.options.model_dump(mode="json"),
                "ranges": [r.to_json() for r in self.ranges],
                "frames": {k: dict(v) for k, v in sorted(self.frames.items(), key=lambda kv: frame_key(kv[0]))}}


def _coerced(validated: MergeOptions, over: dict[str, Any]) -> dict[str, Any]:
    """The coerced values of the overridden keys only."""
    return {k: getattr(validated, k) for k in over}


def _parse_ranges(raw: Any, session: MergeSession, path: Path | None) -> tuple[FrameRange, ...]:
    if not isinstance(raw, list):
        raise InputError("invalid merge session: 'ranges' must be a list of {first, last, options}", path)
    out: list[FrameRange] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InputError(f"invalid merge session: ranges.{i} must be an object", path)
        unknown = sorted(set(item) - _RANGE_KEYS)
        if unknown:
            raise InputError(f"invalid merge session: ranges.{i}: unknown key {unknown[0]!r}", path)
        first, last, opts = item.get("first"), item.get("last"), item.get("options", {})
        if not isinstance(first, str) or not first or not isinstance(last, str) or not last:
            raise InputError(f"invalid merge session: ranges.{i}: 'first' and 'last' must be frame names", path)
        if not isinstance(opts, dict):
            raise InputError(f"invalid merge session: ranges.{i}.options must be an object", path)
        over = _keys(opts)
        validated = session._check_range(i, FrameRange(first, last, over), path)
        out.append(FrameRange(first, last, _coerced(validated, over)))
    return tuple(out)


def parse_session(data: Any, path: Path | None = None) -> MergeSession:
    """Validate a session object (as read from JSON; version 1 or 2)."""
    if not isinstance(data, dict):
        raise InputError("invalid merge session: expected a JSON object", path)
    if data.get("schema") != SCHEMA:
        raise InputError(f"not a merge session (schema {data.get('schema')!r}, expected {SCHEMA!r})", path)
    version = data.get("version")
    if version not in READS or isinstance(version, bool):
        raise InputError(f"unsupported merge session version {version!r} (this facelab reads versions "
                         f"{', '.join(map(str, READS))})", path)
    unknown = sorted(set(data) - _TOP_KEYS[version])
    if unknown:
        raise InputError(f"invalid merge session: unknown key {unknown[0]!r}", path)
    raw_opts = data.get("options", {})
    if not isinstance(raw_opts, dict):
        raise InputError("invalid merge session: 'options' must be an object", path)
    base = _validate(_keys(raw_opts), "options", path)
    raw_frames = data.get("frames", {})
    if not isinstance(raw_frames, dict):
        raise InputError("invalid merge session: 'frames' must be an object of frame name -> overrides", path)
    session = MergeSession(base, {})
    ranges = _parse_ranges(data.get("ranges", []), session, path)
    frames: dict[str, dict[str, Any]] = {}
    for stem, over in raw_frames.items():
        if not isinstance(over, dict):
            raise InputError(f"invalid merge session: frames.{stem} must be an object", path)
        over = _keys(over)
        validated = session._check_override(f"frames.{stem}", over, path)
        frames[str(stem)] = _coerced(validated, over)
    return MergeSession(base, frames, ranges)


def read_session_text(text: str, path: Path | None = None) -> MergeSession:
    """Parse and validate a session file's text (InputError, one line, when it is not JSON or not valid)."""
    try:
        data = json_loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"unreadable merge session: {' '.join(str(exc).split())}", path) from None
    return parse_session(data, path)


def load_session(path: Path) -> MergeSession:
    path = Path(path)
    if not path.is_file():
        raise InputError("merge session file not found", path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"unreadable merge session: {' '.join(str(exc).split())}", path) from None
    return read_session_text(text, path)


def save_session(path: Path, session: MergeSession) -> None:
    """Write the session atomically (a reader never sees half a file)."""
    write_json_atomic(Path(path), session.to_json())

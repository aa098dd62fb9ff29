"""The workspace's merge session file (WORKSPACE/merge_session.json), as the tuner reads and writes it.

The page edits a draft: ``apply`` puts options on one frame, a range of frames or all frames of a draft
and returns the new draft (validated, nothing written); ``save`` writes a draft atomically. A session file
on disk that cannot be read (not JSON, not a valid session) is never overwritten unless the save says so
(``overwrite``): the page shows the file's error and asks first.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from facelab.core.errors import FacelabError, InputError
from facelab.merge.options import FRAME_KEYS, RUN_KEYS
from facelab.merge.session import MergeSession, load_session, parse_session, save_session

Scope = Literal["frame", "range", "all"]


class SessionFileInvalid(FacelabError):
    """The session file on disk cannot be read; saving over it needs ``overwrite``."""


class SessionStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> MergeSession | None:
        """The saved session (None: no file yet); InputError (one line) when the file is not valid."""
        if not self.path.is_file():
            return None
        return load_session(self.path)

    def read_or_none(self) -> MergeSession | None:
        """The saved session, or None when there is none or it cannot be read."""
        try:
            return self.read()
        except InputError:
            return None

    def save(self, data: Any, overwrite: bool = False) -> MergeSession:
        """Validate ``data`` (a session object) and write it atomically; nothing is written when it is not
        valid, nor over an unreadable session file without ``overwrite``."""
        session = parse_session(data)
        with self._lock:
            if self.path.is_file() and not overwrite:
                try:
                    load_session(self.path)
                except InputError as exc:
                    raise SessionFileInvalid(f"the session file on disk is not valid ({exc}); it was left as it "
                                             "is: save with overwrite to replace it") from None
            save_session(self.path, session)
        return session


def apply(draft: MergeSession, scope: Scope, options: dict[str, Any], stems: list[str], *, frame: str | None = None,
          first: str | None = None, last: str | None = None) -> MergeSession:
    """``options`` applied to the draft: the per-frame ones to the frame, the range (``first``..``last``) or
    all frames; per-run ones (super-resolution, direction, ...) always to the whole run."""
    unknown = sorted(set(options) - FRAME_KEYS - RUN_KEYS)
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r}")
    known = set(stems)
    for name, stem in (("frame", frame), ("first", first), ("last", last)):
        if stem is not None and stem not in known:
            raise InputError(f"{name}: {stem!r} is not a frame of this workspace")
    per_run = {k: v for k, v in options.items() if k in RUN_KEYS}
    per_frame = {k: v for k, v in options.items() if k in FRAME_KEYS}
    out = draft.with_all(**per_run) if per_run else draft
    if not per_frame:
        return out
    if scope == "all":
        return out.with_all(**per_frame)
    if scope == "frame":
        if frame is None:
            raise InputError("apply to a frame: which frame? (frame missing)")
        return out.with_frame(frame, **per_frame)
    if first is None or last is None:
        raise InputError("apply to a range: give its first and last frame")
    return out.with_range(first, last, **per_frame)

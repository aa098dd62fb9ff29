"""User-facing errors. The CLI turns a FacelabError into a one-line message and exit code 2."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from pydantic import ValidationError


class FacelabError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""


class InputError(FacelabError):
    """A path, file or option the user gave cannot be used."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


# what the disk or the file system says, not the program: no space, quota, I/O error, read-only, too large
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG})


class StorageError(FacelabError):
    """Writing a file failed for a reason of the storage (disk full, I/O error, ...). Whatever was written
    before is intact (every write that matters is atomic), and the next run resumes."""


def storage_error(exc: BaseException, path: Path | str | None = None) -> StorageError | None:
    """``exc`` as a one-line StorageError ("No space left on device while writing X") when it is an
    OSError of the storage (STORAGE_ERRNOS), else None. ``path`` names the file (default: the error's)."""
    if isinstance(exc, StorageError):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in STORAGE_ERRNOS:
        return None
    target = path if path is not None else exc.filename
    reason = os.strerror(exc.errno) if exc.errno is not None else str(exc)
    return StorageError(f"{reason} while writing {target}" if target is not None else reason)


class MetadataError(InputError):
    """A face file's embedded metadata is missing, malformed or from an unknown schema."""


def printable(text: str, limit: int | None = 160) -> str:
    """``text`` with non-printable characters shown as ``?``, cut to ``limit`` characters (None: uncut)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def validation_message(exc: ValidationError, whole: str = "options", *, count_more: bool = False,
                       limit: int | None = None) -> str:
    """A validation error as one line, ``location: message``, for the one-line user errors.

    The first problem is named by its dotted location (``whole`` when it concerns the object as a whole);
    non-printable characters show as ``?``. ``count_more`` adds how many other problems there are, and
    ``limit`` caps the message (the location at half of it), for errors about untrusted files.
    """
    try:
        errors = exc.errors(include_url=False)
    except UnicodeEncodeError:  # the input held text that is not valid Unicode (a lone surrogate)
        return f"{whole}: text that is not valid Unicode"
    if not errors:
        return "invalid"
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"]) or whole
    line = f"{printable(loc, None if limit is None else limit // 2)}: {printable(first['msg'], limit)}"
    if count_more and len(errors) > 1:
        line += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return line

"""User-facing errors. The CLI turns a FacelabError into a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class FacelabError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""


class InputError(FacelabError):
    """A path, file or option the user gave cannot be used."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


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

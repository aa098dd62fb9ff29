"""User-facing errors. The CLI turns a FacelabError into a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class FacelabError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""


class InputError(FacelabError):
    """A path, file or option the user gave cannot be used."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class MetadataError(InputError):
    """A face file's embedded metadata is missing, malformed or from an unknown schema."""

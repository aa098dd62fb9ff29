"""Reading facelab's versioned JSON files (model configs, training state, label files): one check of
existence, JSON syntax, schema name and format version, with one-line user errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from facelab import __version__
from facelab.core.errors import InputError


def json_loads(text: str | bytes) -> Any:
    """``json.loads`` for text from outside: every way it can fail is a ``json.JSONDecodeError``.

    ``json.loads`` alone also raises RecursionError (arrays nested a thousand deep), ValueError (an
    integer of more than 4300 digits) and UnicodeDecodeError (bytes that are not UTF-8); callers that
    catch JSONDecodeError would let those through as tracebacks.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise json.JSONDecodeError(" ".join(str(exc).split())[:120], "", 0) from None


def read_json_file(path: Path, what: str) -> Any:
    """The JSON value in ``path``; a one-line InputError naming ``what`` when it cannot be read or parsed."""
    try:
        return json_loads(Path(path).read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a valid JSON {what} ({' '.join(str(exc).split())})", path) from None


def read_versioned_json(path: Path, schema: str, version: int, what: str) -> dict[str, Any] | None:
    """The JSON object in ``path``, checked for ``"schema": schema`` and ``"version": version``; None when
    the file does not exist. ``what`` names the file in errors (e.g. "model config")."""
    path = Path(path)
    if not path.exists():
        return None
    data = read_json_file(path, what)
    if not isinstance(data, dict) or data.get("schema") != schema:
        raise InputError(f'not a facelab {what} (expected "schema": "{schema}")', path)
    if data.get("version") != version:
        raise InputError(f"{what} version {json.dumps(data.get('version'))[:20]} is not supported by facelab "
                         f"{__version__} (it reads version {version})", path)
    return data

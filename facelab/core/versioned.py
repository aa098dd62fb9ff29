"""Reading facelab's versioned JSON files (model configs, training state, label files): one check of
existence, JSON syntax, schema name and format version, with one-line user errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from facelab import __version__
from facelab.core.errors import InputError

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_loads(text: str | bytes) -> Any:
    """``json.loads`` for text from outside: every way it can fail is a ``json.JSONDecodeError``.

    ``json.loads`` alone also raises RecursionError (arrays nested a thousand deep), ValueError (an
    integer of more than 4300 digits) and UnicodeDecodeError (bytes that are not UTF-8); callers that
    catch JSONDecodeError would let those through as tracebacks. A string holding half a surrogate pair
    (``"\\ud800"``: valid JSON, not valid Unicode) is refused too: it cannot be written back as UTF-8, and
    pydantic fails on it while reporting an error.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise json.JSONDecodeError(" ".join(str(exc).split())[:120], "", 0) from None
    maybe = (_SURROGATE_ESCAPE_BYTES.search(text) if isinstance(text, bytes)
             else _SURROGATE_ESCAPE.search(text) or _SURROGATE.search(text))
    if maybe and not is_unicode(value):
        raise json.JSONDecodeError("a string is not valid Unicode (half a surrogate pair)", "", 0)
    return value


def is_unicode(value: Any) -> bool:
    """Whether every string in a JSON value (keys too) can be encoded as UTF-8 (no lone surrogates)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


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

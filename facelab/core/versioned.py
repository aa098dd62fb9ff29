"""Reading facelab's versioned JSON files (model configs, training state, label files): one check of
existence, JSON syntax, schema name and format version, with one-line user errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from facelab import __version__
from facelab.core.errors import InputError


def read_json_file(path: Path, what: str) -> Any:
    """The JSON value in ``path``; a one-line InputError naming ``what`` when it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
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

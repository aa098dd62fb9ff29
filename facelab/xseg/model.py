"""The XSeg model folder: ``config.json`` (schema ``facelab.xseg``: the options), and the checkpoint
files of ``facelab.train.checkpoint`` (``state.json`` naming ``weights-N.safetensors`` and
``optimizer-N.safetensors`` with their SHA-256), so saving is crash-safe in the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from facelab import __version__
from facelab.core.atomic import write_json_atomic
from facelab.core.config import option_error
from facelab.core.errors import InputError
from facelab.core.versioned import read_versioned_json
from facelab.face.align import FACE_TYPE_ORDER
from facelab.xseg.options import IMMUTABLE, XSegOptions

CONFIG_SCHEMA = "facelab.xseg"
VERSION = 1
MODULE = "xseg"  # the prefix of the network's tensors in the weights file


def write_config(model_dir: Path, opts: XSegOptions, face_type: str | None) -> None:
    """``face_type``: the face type of the labelled faces it is trained on (None: unknown)."""
    write_json_atomic(model_dir / "config.json", {
        "schema": CONFIG_SCHEMA, "version": VERSION, "tool_version": __version__,
        "immutable": list(IMMUTABLE), "options": opts.model_dump(mode="json"), "face_type": face_type,
    })


def read_face_type(model_dir: Path) -> str | None:
    """The face type the model was trained on; None for models made before facelab recorded it."""
    path = Path(model_dir) / "config.json"
    data = read_versioned_json(path, CONFIG_SCHEMA, VERSION, "XSeg model config")
    value = None if data is None else data.get("face_type")
    if value is not None and value not in FACE_TYPE_ORDER:
        raise InputError(f"invalid XSeg model config: unknown face_type {value!r}", path)
    return None if value is None else str(value)


def read_config(model_dir: Path) -> XSegOptions | None:
    """The stored options, or None when the folder holds no XSeg model yet."""
    path = Path(model_dir) / "config.json"
    data = read_versioned_json(path, CONFIG_SCHEMA, VERSION, "XSeg model config")
    if data is None:
        return None
    try:
        return XSegOptions.model_validate(data.get("options"))
    except ValidationError as exc:
        raise InputError(f"invalid XSeg model config: {option_error(exc)}", path) from None


def resolve_options(stored: XSegOptions | None, flags: dict[str, Any]) -> XSegOptions:
    """This run's options: a new model takes the flags given (not None) over the defaults; a stored
    model keeps its network-shaping options (asking for other values is an error) and takes the rest."""
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        if stored is None:
            return XSegOptions.model_validate(given)
        for key in IMMUTABLE:
            if key in given and given[key] != getattr(stored, key):
                raise InputError(f"option {key} is fixed when an XSeg model is created: this model has "
                                 f"{key}={getattr(stored, key)}, the command asks for {given[key]}")
        return XSegOptions.model_validate({**stored.model_dump(), **given})
    except ValidationError as exc:
        raise option_error(exc) from None

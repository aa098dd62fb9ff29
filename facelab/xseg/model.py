"""The XSeg model folder: a ``facelab.core.model_folder`` folder whose ``config.json`` (schema ``facelab.xseg``)
holds XSegOptions and the face type the model was trained on, and whose weights are the network's
``xseg.*`` tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facelab.core.errors import InputError
from facelab.core.model_folder import ModelFolder
from facelab.face.align import FACE_TYPE_ORDER
from facelab.xseg.options import XSegOptions

CONFIG_SCHEMA = "facelab.xseg"
MODULE = "xseg"  # the prefix of the network's tensors in the weights file
XSEG_FOLDER: ModelFolder[XSegOptions] = ModelFolder(CONFIG_SCHEMA, XSegOptions, "XSeg model", "an XSeg model")

read_config = XSEG_FOLDER.read_config


def write_config(model_dir: Path, opts: XSegOptions, face_type: str | None) -> None:
    """``face_type``: the face type of the labelled faces it is trained on (None: unknown)."""
    XSEG_FOLDER.write_config(model_dir, opts, face_type=face_type)


def read_face_type(model_dir: Path) -> str | None:
    """The face type the model was trained on; None for models made before facelab recorded it."""
    data = XSEG_FOLDER.read_raw(model_dir)
    value = None if data is None else data.get("face_type")
    if value is not None and value not in FACE_TYPE_ORDER:
        raise InputError(f"invalid XSeg model config: unknown face_type {value!r}", Path(model_dir) / "config.json")
    return None if value is None else str(value)


def resolve_options(stored: XSegOptions | None, flags: dict[str, Any]) -> XSegOptions:
    """This run's options: a new model takes the flags given (not None) over the defaults; a stored
    model keeps its network-shaping options (asking for other values is an error) and takes the rest."""
    given = {k: v for k, v in flags.items() if v is not None}
    return XSEG_FOLDER.resolve(stored, given, set(given))

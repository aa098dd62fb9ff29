"""XSeg model folders for the editor: where they are, how far they trained, the cached model for
predictions, and the exact `facelab xseg train` / `facelab xseg apply` commands the page's jobs run.

The default model folder is ``WORKSPACE/xseg`` (``facelab xseg train --model-dir``: created on the first
run, resumed afterwards; previews in ``xseg/previews/latest.png``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from facelab.core.config import marked_fields
from facelab.core.errors import InputError, validation_message
from facelab.core.model_folder import read_state
from facelab.core.versioned import json_loads
from facelab.xseg.infer import XSegModel, load_xseg
from facelab.xseg.model import read_config, read_face_type, resolve_options
from facelab.xseg.options import XSegOptions

DEFAULT_MODEL = "xseg"
SKIP_DIRS = frozenset({"studio", "frames", "merged", "previews", "backups", "aligned", "__pycache__"})


def is_xseg_folder(folder: Path) -> bool:
    try:
        data = json_loads((folder / "config.json").read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("schema") == "facelab.xseg"


def find_models(root: Path) -> list[str]:
    """Relative paths of the XSeg model folders in the workspace (``xseg`` first, up to two levels down)."""
    found: list[str] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.name in SKIP_DIRS:
                continue
            if is_xseg_folder(entry):
                found.append(entry.relative_to(root).as_posix())
            elif depth < 2:
                walk(entry, depth + 1)

    walk(root, 1)
    found.sort(key=lambda r: (r != DEFAULT_MODEL, r))
    return found


def model_status(folder: Path) -> dict[str, Any]:
    """What the page shows of a model folder: exists, trained iteration, last loss, options, preview."""
    out: dict[str, Any] = {"exists": folder.is_dir() and is_xseg_folder(folder), "iteration": 0, "loss": None,
                           "options": None, "face_type": None, "preview": None, "preview_mtime": None,
                           "trained": False, "error": ""}
    if not out["exists"]:
        return out
    try:
        opts = read_config(folder)
        out["options"] = None if opts is None else opts.model_dump()
        out["face_type"] = read_face_type(folder)
        state = read_state(folder)
    except InputError as exc:
        out["error"] = str(exc)
        return out
    if state is not None:
        out["trained"] = True
        out["iteration"] = int(state.get("iteration", 0))
        losses = state.get("last_losses") or {}
        out["loss"] = losses.get("loss") if isinstance(losses, dict) else None
    preview = folder / "previews" / "latest.png"
    if preview.is_file():
        out["preview_mtime"] = preview.stat().st_mtime
    return out


def schema() -> dict[str, Any]:
    """XSegOptions' JSON schema and its fields fixed when a model is created."""
    return {"schema": XSegOptions.model_json_schema(), "fixed": list(marked_fields(XSegOptions, "fixed"))}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def train_args(faces: list[Path], model: Path, iterations: int | None, minutes: float | None,
               options: dict[str, Any]) -> list[str]:
    """``xseg train --faces F... --model-dir M [--iterations N] [--minutes M] [--option value...]``,
    checked first as the CLI would (unknown or bad options, a fixed option changed: InputError)."""
    if iterations is None and minutes is None:
        raise InputError("give iterations or minutes for an XSeg training run")
    if iterations is not None and iterations < 1:
        raise InputError("iterations must be at least 1")
    if minutes is not None and minutes <= 0:
        raise InputError("minutes must be positive")
    unknown = set(options) - set(XSegOptions.model_fields)
    if unknown:
        raise InputError(f"unknown XSeg option {sorted(unknown)[0]!r}")
    given = {k: v for k, v in options.items() if v is not None and v != ""}
    try:
        XSegOptions.model_validate({**XSegOptions().model_dump(), **given})
    except ValidationError as exc:
        raise InputError(f"invalid option {validation_message(exc)}") from None
    stored = read_config(model) if model.is_dir() else None
    resolve_options(stored, given)  # a fixed option changed on an existing model: InputError
    args = ["xseg", "train"]
    for f in faces:
        args += ["--faces", str(f)]
    args += ["--model-dir", str(model)]
    if iterations is not None:
        args += ["--iterations", str(iterations)]
    if minutes is not None:
        args += ["--minutes", f"{minutes:g}"]
    for key, value in given.items():
        if isinstance(value, bool):
            args.append(_flag(key) if value else "--no-" + _flag(key)[2:])
        else:
            args += [_flag(key), str(value)]
    return args


def apply_args(faceset: Path, model: Path) -> list[str]:
    if not (model / "state.json").is_file():
        raise InputError("this XSeg model has no trained weights yet: train it first", model)
    return ["xseg", "apply", str(faceset), "--model-dir", str(model)]


class ModelCache:
    """One loaded XSeg model, reloaded when its state.json changes (training saved new weights)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Path, int] | None = None
        self._model: XSegModel | None = None

    def get(self, folder: Path) -> XSegModel:
        state = folder / "state.json"
        try:
            key = (folder, state.stat().st_mtime_ns)
        except OSError:
            raise InputError("this XSeg model has no trained weights yet: train it first", folder) from None
        with self._lock:
            if self._key != key or self._model is None:
                self._model = load_xseg(folder)
                self._key = key
            return self._model

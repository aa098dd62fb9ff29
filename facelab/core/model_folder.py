"""Model folders (the trainer's and XSeg's): one type for their config, weights, state, resume and backups.

A folder holds

* ``config.json``: ``{"schema": <kind>, "version": 1, "tool_version", "immutable": [...], "options": {...}}``
  plus any extra keys of its kind (XSeg: ``face_type``). The options are a pydantic model; the fields
  marked ``FIXED`` (``Field(..., json_schema_extra=FIXED)``) shape the networks and are fixed when the
  model is created, the rest may change each run (``ModelFolder.resolve``);
* ``state.json`` (schema ``facelab.model_state``): iteration, time, last losses and the names and SHA-256
  of the current ``weights-N.safetensors`` and ``optimizer-N.safetensors``;
* ``backups/it_N/``: rotating copies of the three.

Saving is crash-safe without a multi-file transaction: each save writes new, iteration-numbered
weight and optimiser files (each atomically), and only then replaces state.json, which names the
files of the current checkpoint and their SHA-256. A crash before that rename leaves state.json
pointing at the previous, complete files; files no state.json names are removed after a good save.
Nothing is pickled: tensors go to safetensors, everything else to JSON.

    MODEL_FOLDER = ModelFolder("facelab.model", TrainOptions, "model", "a model")
    opts = MODEL_FOLDER.resolve(MODEL_FOLDER.read_config(path), requested, explicit)
    MODEL_FOLDER.write_config(path, opts)
    save_checkpoint(path, state, {"ae": net}, {"opt": optimizer})
    ckpt = load_checkpoint(path)  # None before the first save
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
)
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn
from torch.optim import Optimizer

from facelab import __version__
from facelab.core.atomic import remove_stale_temps, write_bytes_atomic, write_json_atomic
from facelab.core.config import marked_fields, option_error
from facelab.core.errors import InputError, validation_message
from facelab.core.versioned import json_loads, read_versioned_json

STATE_SCHEMA = "facelab.model_state"
WEIGHTS_SCHEMA = "facelab.model"  # in every weights file's metadata (XSeg's too, as before)
VERSION = 1
# the mark of an option fixed when a model is created: Field(..., json_schema_extra=FIXED)
FIXED: dict[str, Any] = {"fixed": True}

Opts = TypeVar("Opts", bound=BaseModel)

PREVIEWS = "previews"  # the preview images of a model folder (trainer and XSeg)


def fixed_options(options: type[BaseModel]) -> tuple[str, ...]:
    """The names of the fields marked FIXED, in declaration order."""
    return marked_fields(options, "fixed")


# ---- config -----------------------------------------------------------------------------------

class ModelFolder(Generic[Opts]):
    """One kind of model folder: the schema of its config.json and the options model it stores.

    ``what`` names the folder in messages ("XSeg model"), ``a_what`` with its article ("an XSeg model");
    ``hint`` is added to the refusal to change a fixed option.
    """

    def __init__(self, schema: str, options: type[Opts], what: str, a_what: str, hint: str = "") -> None:
        self.schema = schema
        self.options = options
        self.what = what
        self.a_what = a_what
        self.hint = hint
        self.fixed: tuple[str, ...] = fixed_options(options)

    def write_config(self, folder: Path, opts: Opts, **extra: Any) -> None:
        """config.json with the options and the kind's ``extra`` keys."""
        write_json_atomic(Path(folder) / "config.json", {
            "schema": self.schema, "version": VERSION, "tool_version": __version__,
            "immutable": list(self.fixed), "options": opts.model_dump(mode="json"), **extra,
        })

    def read_raw(self, folder: Path) -> dict[str, Any] | None:
        """config.json as a checked JSON object (schema and version), or None when there is none."""
        return read_versioned_json(Path(folder) / "config.json", self.schema, VERSION, f"{self.what} config")

    def read_config(self, folder: Path) -> Opts | None:
        """The stored options, or None for a folder without a model yet."""
        data = self.read_raw(folder)
        if data is None:
            return None
        path = Path(folder) / "config.json"
        try:
            return self.options.model_validate(data.get("options"))
        except ValidationError as exc:
            raise InputError(f"invalid {self.what} config: {option_error(exc)}", path) from None
        except InputError as exc:
            raise InputError(f"invalid {self.what} config: {exc}", path) from None

    def resolve(self, stored: Opts | None, requested: dict[str, Any], explicit: set[str]) -> Opts:
        """Options for this run. A new model takes the request; a stored model keeps its fixed options
        (an explicit different value is an error) and takes the other options that were given explicitly."""
        try:
            if stored is None:
                return self.options.model_validate(requested)
            for key in self.fixed:
                if key in explicit and requested.get(key) != getattr(stored, key):
                    hint = f" ({self.hint})" if self.hint else ""
                    raise InputError(f"option {key} is fixed when {self.a_what} is created: this model has "
                                     f"{key}={getattr(stored, key)}, the command asks for {requested.get(key)}{hint}")
            values = stored.model_dump()
            values.update({k: v for k, v in requested.items() if k in explicit and k not in self.fixed})
            return self.options.model_validate(values)
        except ValidationError as exc:
            raise option_error(exc) from None


# ---- state ------------------------------------------------------------------------------------

@dataclass
class ModelState:
    """state.json: where training stands (``pretrained`` and ``prior`` are the trainer's; XSeg leaves them)."""

    iteration: int = 0
    elapsed_s: float = 0.0
    pretrained: bool = False  # the weights went through a pretrain phase
    prior: str = ""  # the face prior a new model started from: "name sha256", empty for random weights
    last_losses: dict[str, float] = field(default_factory=dict)
    saved_at: float = 0.0
    last_backup_at: float = 0.0


@dataclass
class Checkpoint:
    state: ModelState
    weights: dict[str, Tensor]
    opt_tensors: dict[str, Tensor]
    opt_meta: dict[str, str]


_FILE_NAME = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,200}\.safetensors$"  # a file of the folder, never a path


class _StateFiles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: Annotated[str, StringConstraints(pattern=_FILE_NAME)]
    optimizer: Annotated[str, StringConstraints(pattern=_FILE_NAME)]


class _StateFile(BaseModel):
    """What state.json must hold before anything in it is used (other keys are kept and ignored)."""

    model_config = ConfigDict(extra="allow")

    iteration: StrictInt = Field(ge=0, lt=2**62)
    elapsed_s: FiniteFloat = 0.0
    pretrained: StrictBool = False
    prior: StrictStr = ""
    last_losses: dict[str, float] = Field(default_factory=dict)  # NaN allowed: a diverged run's losses
    saved_at: FiniteFloat = 0.0
    last_backup_at: FiniteFloat = 0.0
    files: _StateFiles
    sha256: dict[str, Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]] = Field(default_factory=dict)


def read_state(folder: Path) -> dict[str, Any] | None:
    """state.json as a checked JSON object, or None before the first save. Raises InputError when it does
    not hold what a checkpoint needs (an iteration, the names of its files, plain names in this folder)."""
    path = Path(folder) / "state.json"
    data = read_versioned_json(path, STATE_SCHEMA, VERSION, "training state")
    if data is None:
        return None
    try:
        _StateFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"invalid training state: {validation_message(exc, 'state', limit=160)}", path) from None
    return data


# ---- tensors ----------------------------------------------------------------------------------

def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def modules_state(modules: dict[str, nn.Module]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for prefix, mod in modules.items():
        for k, v in mod.state_dict().items():
            out[f"{prefix}.{k}"] = v.detach().to("cpu").contiguous()
    return out


def optimizers_state(optimizers: dict[str, Optimizer]) -> tuple[dict[str, Tensor], dict[str, str]]:
    tensors: dict[str, Tensor] = {}
    meta: dict[str, str] = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, st in sd["state"].items():
            for key, val in st.items():
                if isinstance(val, Tensor):
                    tensors[f"{name}.{idx}.{key}"] = val.detach().to("cpu").contiguous()
                else:
                    scalars.setdefault(str(idx), {})[key] = val
        meta[f"{name}.param_groups"] = json.dumps(sd["param_groups"])
        meta[f"{name}.scalars"] = json.dumps(scalars)
    tensors["rng.torch"] = torch.get_rng_state()
    return tensors, meta


def load_optimizers(optimizers: dict[str, Optimizer], tensors: dict[str, Tensor], meta: dict[str, str],
                    path: Path | None = None) -> None:
    """Restore each optimiser's state from the optimizer file's tensors and metadata (and the RNG state).

    Raises InputError (naming ``path``, the optimizer file) when they do not fit the optimisers."""
    try:
        _load_optimizers(optimizers, tensors, meta)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError, AttributeError, RecursionError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"the optimizer state does not fit this model ({first})", path) from None


def _check_optimizer_state(opt: Optimizer) -> None:
    """Every state value of a parameter is a number, a one-element tensor (a step count) or a floating
    tensor of the parameter's shape (moments): what the optimisers keep. A file's other values would only
    fail at the first step, deep inside the optimiser."""
    for group in opt.param_groups:
        for param in group["params"]:
            for key, val in opt.state.get(param, {}).items():
                if isinstance(val, Tensor):
                    if val.numel() != 1 and (val.shape != param.shape or not val.is_floating_point()):
                        raise ValueError(f"state {key} has shape {tuple(val.shape)} {val.dtype}, the parameter "
                                         f"{tuple(param.shape)}")
                elif isinstance(val, bool) or not isinstance(val, int | float):
                    raise ValueError(f"state {key} is not a number")


def _load_optimizers(optimizers: dict[str, Optimizer], tensors: dict[str, Tensor], meta: dict[str, str]) -> None:
    for name, opt in optimizers.items():
        if f"{name}.param_groups" not in meta:
            continue  # e.g. a discriminator switched on after the last save: starts fresh
        groups = json_loads(meta[f"{name}.param_groups"])
        scalars = json_loads(meta.get(f"{name}.scalars", "{}"))
        state: dict[int, dict[str, Any]] = {}
        prefix = f"{name}."
        for key, val in tensors.items():
            if key.startswith(prefix):
                idx, sub = key[len(prefix):].split(".", 1)
                state.setdefault(int(idx), {})[sub] = val
        for idx, vals in scalars.items():
            state.setdefault(int(idx), {}).update(vals)
        # hyper-parameters come from this run's options, not from the file
        current = opt.state_dict()["param_groups"]
        for g, cur in zip(groups, current, strict=False):
            for k in cur:
                if k != "params":
                    g[k] = cur[k]
        opt.load_state_dict({"state": state, "param_groups": groups})
        _check_optimizer_state(opt)
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])


def read_tensors(path: Path, expected_hash: str | None, named_by: str = "state.json"
                 ) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file whose SHA-256 the JSON file `named_by` records."""
    if not path.exists():
        raise InputError(f"weights file named by {named_by} is missing", path)
    data = path.read_bytes()
    if expected_hash is not None and _hash(data) != expected_hash:
        raise InputError(f"weights file is corrupted (its checksum does not match {named_by})", path)
    try:
        tensors = st_load(data)
        with safe_open(str(path), framework="pt") as fh:  # metadata only
            meta = fh.metadata() or {}
    except (SafetensorError, ValueError, OSError) as exc:
        raise InputError(f"weights file is corrupted ({exc})", path) from None
    return tensors, dict(meta)


def load_modules(modules: dict[str, nn.Module], weights: dict[str, Tensor], path: Path) -> None:
    """Load each module from the weights under its prefix (strict); a module with none is left as it is."""
    for prefix, mod in modules.items():
        sub = {k[len(prefix) + 1:]: v for k, v in weights.items() if k.startswith(prefix + ".")}
        if not sub:
            continue  # e.g. a discriminator switched on after the last save
        try:
            mod.load_state_dict(sub, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise InputError(f"weights do not fit this model's architecture ({first})", path) from None


# ---- save / load ------------------------------------------------------------------------------

def save_checkpoint(folder: Path, state: ModelState, modules: dict[str, nn.Module],
                    optimizers: dict[str, Optimizer], training: dict[str, Tensor] | None = None) -> None:
    """Write the weights (``<module>.<tensor>``) and optimiser state of iteration ``state.iteration``, then
    state.json naming them. ``training``: more tensors that only a resumed run needs, kept in the optimizer
    file beside the optimisers' (their keys must not start with an optimiser's name and a dot)."""
    it = state.iteration
    # a second save of one iteration (Ctrl+C just after an autosave) must not replace the files the current
    # state.json names before its own state.json is written: a failure between the two would leave a
    # state.json whose checksums no longer match its files
    committed = _committed_files(folder)
    weights_name, optim_name = _fresh_name("weights", it, committed), _fresh_name("optimizer", it, committed)
    weights = st_save(modules_state(modules), metadata={"format": "pt", "schema": WEIGHTS_SCHEMA})
    opt_tensors, opt_meta = optimizers_state(optimizers)
    opt_tensors.update(training or {})
    optim = st_save(opt_tensors, metadata={"format": "pt", **opt_meta})
    write_bytes_atomic(folder / weights_name, weights)
    write_bytes_atomic(folder / optim_name, optim)
    state.saved_at = time.time()
    # the commit point: until this rename, state.json names the previous checkpoint
    write_json_atomic(folder / "state.json", {
        "schema": STATE_SCHEMA, "version": VERSION, "tool_version": __version__,
        "iteration": it, "elapsed_s": round(state.elapsed_s, 3), "pretrained": state.pretrained,
        "prior": state.prior,
        "last_losses": state.last_losses, "saved_at": state.saved_at, "last_backup_at": state.last_backup_at,
        "files": {"weights": weights_name, "optimizer": optim_name},
        "sha256": {weights_name: _hash(weights), optim_name: _hash(optim)},
    })
    for old in list(folder.glob("weights-*.safetensors")) + list(folder.glob("optimizer-*.safetensors")):
        if old.name not in (weights_name, optim_name):
            old.unlink(missing_ok=True)
    remove_model_temps(folder)


def remove_model_temps(folder: Path) -> None:
    """Delete what killed runs were writing into a model folder (see ``atomic.remove_stale_temps``): a
    trainer calls it when it starts, and each save."""
    for sub in (Path(folder), Path(folder) / PREVIEWS):
        remove_stale_temps(sub)


def _committed_files(folder: Path) -> set[str]:
    """The file names the current state.json names (none when there is none or it cannot be read)."""
    try:
        files = json.loads((folder / "state.json").read_text(encoding="utf-8")).get("files", {})
        return {str(v) for v in files.values()} if isinstance(files, dict) else set()
    except (OSError, ValueError, AttributeError):
        return set()


def _fresh_name(kind: str, iteration: int, taken: set[str]) -> str:
    name, n = f"{kind}-{iteration:08d}.safetensors", 1
    while name in taken:
        name, n = f"{kind}-{iteration:08d}-{n}.safetensors", n + 1
    return name


def load_checkpoint(folder: Path, optimizer: bool = True) -> Checkpoint | None:
    """The saved checkpoint (None before the first save); ``optimizer=False`` (inference) leaves the optimizer
    state unread (twice the size of the weights with Adam)."""
    data = read_state(folder)
    if data is None:
        return None
    files, sums = data.get("files", {}), data.get("sha256", {})
    weights, _ = read_tensors(folder / files["weights"], sums.get(files["weights"]))
    opt_tensors: dict[str, Tensor] = {}
    opt_meta: dict[str, str] = {}
    if optimizer:
        opt_tensors, opt_meta = read_tensors(folder / files["optimizer"], sums.get(files["optimizer"]))
    state = ModelState(iteration=int(data["iteration"]), elapsed_s=float(data.get("elapsed_s", 0.0)),
                       pretrained=bool(data.get("pretrained", False)), prior=str(data.get("prior", "")),
                       last_losses=dict(data.get("last_losses", {})), saved_at=float(data.get("saved_at", 0.0)),
                       last_backup_at=float(data.get("last_backup_at", 0.0)))
    return Checkpoint(state, weights, opt_tensors, opt_meta)


def backup(folder: Path, state: ModelState, keep: int) -> Path:
    """Copy the current checkpoint into backups/it_NNNNNNNN/, keeping the newest `keep` backups."""
    data = read_state(folder)
    assert data is not None
    dst = folder / "backups" / f"it_{state.iteration:08d}"
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "state.json", *data["files"].values()):
        shutil.copy2(folder / name, tmp / name)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    backups = sorted(p for p in (folder / "backups").iterdir() if p.is_dir() and not p.name.endswith(".tmp"))
    for old in backups[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return dst

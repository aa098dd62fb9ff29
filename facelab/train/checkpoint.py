"""The model folder: config.json, state.json, safetensors weights and optimiser state, backups.

Saving is crash-safe without a multi-file transaction: each save writes new, iteration-numbered
weight and optimiser files (each atomically), and only then replaces state.json, which names the
files of the current checkpoint and their SHA-256. A crash before that rename leaves state.json
pointing at the previous, complete files; files no state.json names are removed after a good save.
Nothing is pickled: tensors go to safetensors, everything else to JSON.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn
from torch.optim import Optimizer

from facelab import __version__
from facelab.core.atomic import write_bytes_atomic, write_json_atomic
from facelab.core.errors import InputError
from facelab.core.versioned import read_versioned_json
from facelab.train.options import IMMUTABLE, TrainOptions

MODEL_SCHEMA = "facelab.model"
STATE_SCHEMA = "facelab.model_state"
VERSION = 1


@dataclass
class TrainState:
    iteration: int = 0
    elapsed_s: float = 0.0
    pretrained: bool = False  # the weights went through a pretrain phase
    prior: str = ""  # the face prior a new model started from: "name sha256", empty for random weights
    last_losses: dict[str, float] = field(default_factory=dict)
    saved_at: float = 0.0
    last_backup_at: float = 0.0


# ---- config -----------------------------------------------------------------------------------

def write_config(model_dir: Path, opts: TrainOptions) -> None:
    write_json_atomic(model_dir / "config.json", {
        "schema": MODEL_SCHEMA, "version": VERSION, "tool_version": __version__,
        "immutable": list(IMMUTABLE), "options": opts.model_dump(mode="json"),
    })


def read_config(model_dir: Path) -> TrainOptions | None:
    """The stored options, or None for a new model folder."""
    path = model_dir / "config.json"
    data = read_versioned_json(path, MODEL_SCHEMA, VERSION, "model config")
    if data is None:
        return None
    try:
        return TrainOptions.model_validate(data["options"])
    except Exception as exc:
        raise InputError(f"invalid model config: {str(exc).splitlines()[0]}", path) from None


def merge_options(stored: TrainOptions | None, requested: dict[str, Any], explicit: set[str]) -> TrainOptions:
    """Options for this run. A new model takes the request; a stored model keeps its immutable options
    (an explicit different value is an error) and takes the mutable ones that were given explicitly."""
    if stored is None:
        return TrainOptions.model_validate(requested)
    for key in IMMUTABLE:
        if key in explicit and requested.get(key) != getattr(stored, key):
            raise InputError(f"option {key} is fixed when a model is created: this model has {key}="
                             f"{getattr(stored, key)}, the command asks for {requested.get(key)} "
                             "(use a new --model-dir for another architecture)")
    values = stored.model_dump()
    values.update({k: v for k, v in requested.items() if k in explicit and k not in IMMUTABLE})
    return TrainOptions.model_validate(values)


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


def load_optimizers(optimizers: dict[str, Optimizer], tensors: dict[str, Tensor], meta: dict[str, str]) -> None:
    for name, opt in optimizers.items():
        if f"{name}.param_groups" not in meta:
            continue  # e.g. a discriminator switched on after the last save: starts fresh
        groups = json.loads(meta[f"{name}.param_groups"])
        scalars = json.loads(meta.get(f"{name}.scalars", "{}"))
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
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])


# ---- save / load ------------------------------------------------------------------------------

def save_checkpoint(model_dir: Path, state: TrainState, modules: dict[str, nn.Module],
                    optimizers: dict[str, Optimizer]) -> None:
    it = state.iteration
    weights_name, optim_name = f"weights-{it:08d}.safetensors", f"optimizer-{it:08d}.safetensors"
    weights = st_save(modules_state(modules), metadata={"format": "pt", "schema": MODEL_SCHEMA})
    opt_tensors, opt_meta = optimizers_state(optimizers)
    optim = st_save(opt_tensors, metadata={"format": "pt", **opt_meta})
    write_bytes_atomic(model_dir / weights_name, weights)
    write_bytes_atomic(model_dir / optim_name, optim)
    state.saved_at = time.time()
    # the commit point: until this rename, state.json names the previous checkpoint
    write_json_atomic(model_dir / "state.json", {
        "schema": STATE_SCHEMA, "version": VERSION, "tool_version": __version__,
        "iteration": it, "elapsed_s": round(state.elapsed_s, 3), "pretrained": state.pretrained,
        "prior": state.prior,
        "last_losses": state.last_losses, "saved_at": state.saved_at, "last_backup_at": state.last_backup_at,
        "files": {"weights": weights_name, "optimizer": optim_name},
        "sha256": {weights_name: _hash(weights), optim_name: _hash(optim)},
    })
    for old in list(model_dir.glob("weights-*.safetensors")) + list(model_dir.glob("optimizer-*.safetensors")):
        if old.name not in (weights_name, optim_name):
            old.unlink(missing_ok=True)


@dataclass
class Checkpoint:
    state: TrainState
    weights: dict[str, Tensor]
    opt_tensors: dict[str, Tensor]
    opt_meta: dict[str, str]


def read_state(model_dir: Path) -> dict[str, Any] | None:
    return read_versioned_json(model_dir / "state.json", STATE_SCHEMA, VERSION, "training state")


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
        from safetensors import safe_open  # metadata only

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, ValueError, OSError) as exc:
        raise InputError(f"weights file is corrupted ({exc})", path) from None
    return tensors, dict(meta)


def load_checkpoint(model_dir: Path, optimizer: bool = True) -> Checkpoint | None:
    """The saved checkpoint (None before the first save); ``optimizer=False`` (inference) leaves the optimizer
    state unread (twice the size of the weights with Adam)."""
    data = read_state(model_dir)
    if data is None:
        return None
    files, sums = data.get("files", {}), data.get("sha256", {})
    weights, _ = read_tensors(model_dir / files["weights"], sums.get(files["weights"]))
    opt_tensors: dict[str, Tensor] = {}
    opt_meta: dict[str, str] = {}
    if optimizer:
        opt_tensors, opt_meta = read_tensors(model_dir / files["optimizer"], sums.get(files["optimizer"]))
    state = TrainState(iteration=int(data["iteration"]), elapsed_s=float(data.get("elapsed_s", 0.0)),
                       pretrained=bool(data.get("pretrained", False)), prior=str(data.get("prior", "")),
                       last_losses=dict(data.get("last_losses", {})), saved_at=float(data.get("saved_at", 0.0)),
                       last_backup_at=float(data.get("last_backup_at", 0.0)))
    return Checkpoint(state, weights, opt_tensors, opt_meta)


def load_modules(modules: dict[str, nn.Module], weights: dict[str, Tensor], path: Path) -> None:
    for prefix, mod in modules.items():
        sub = {k[len(prefix) + 1:]: v for k, v in weights.items() if k.startswith(prefix + ".")}
        if not sub:
            continue  # e.g. a discriminator switched on after the last save
        try:
            mod.load_state_dict(sub, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise InputError(f"weights do not fit this model's architecture ({first})", path) from None


def backup(model_dir: Path, state: TrainState, keep: int) -> Path:
    """Copy the current checkpoint into backups/it_NNNNNNNN/, keeping the newest `keep` backups."""
    data = read_state(model_dir)
    assert data is not None
    dst = model_dir / "backups" / f"it_{state.iteration:08d}"
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "state.json", *data["files"].values()):
        shutil.copy2(model_dir / name, tmp / name)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    backups = sorted(p for p in (model_dir / "backups").iterdir() if p.is_dir() and not p.name.endswith(".tmp"))
    for old in backups[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return dst

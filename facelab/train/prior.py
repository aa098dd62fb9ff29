"""Face priors: autoencoder weights pretrained on many people, from which a pair's model starts.

A new model whose shape (the fixed options) matches a shipped prior starts from the prior's
weights instead of random ones, unless ``from_scratch`` is set; a few hundred warm-up iterations
(``lr_warmup``) then keep the first Adam steps from wrecking what the prior knows. This is
DeepFaceLab's pretrain mode with the pretraining done once, by us, and shipped in the package.

A prior is a folder ``facelab/train/priors/<name>/`` with

- ``weights.safetensors``: the autoencoder's ``state_dict`` (the ``ae.`` tensors of a checkpoint),
  stored as float16 to halve the repository's size; loaded back as float32;
- ``card.json``: schema ``facelab.prior`` version 1: the immutable options it fits, iterations and
  hours of pretraining, the face sources it saw with their licences, the SHA-256 of the weights, and
  the lineage (which earlier prior a continued run started from);
- ``MODEL_CARD.md``: the same, for people.

Pretraining runs in an ordinary model folder (``facelab pretrain train``: pretrain mode, src = dst =
the faces of many people), which resumes from its own checkpoints; ``facelab pretrain export`` turns
it into a prior. A run that starts a new folder for a shape that already has a prior continues from
the prior (fresh optimiser, warm-up), so pretraining accumulates across machines and sessions.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save
from torch import Tensor, nn

from facelab import __version__
from facelab.core.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from facelab.core.errors import InputError
from facelab.core.model_folder import load_checkpoint, load_modules, read_tensors
from facelab.core.versioned import read_versioned_json
from facelab.train.checkpoint import MODEL_FOLDER, read_config
from facelab.train.options import TrainOptions

PRIOR_SCHEMA = "facelab.prior"
PRIOR_VERSION = 1
PRIORS_DIR = Path(__file__).parent / "priors"
# options that shape the weights; ``init`` does not matter once weights are loaded
SHAPE_KEYS: tuple[str, ...] = tuple(k for k in MODEL_FOLDER.fixed if k != "init")


@dataclass(frozen=True)
class Prior:
    folder: Path
    card: dict[str, Any]

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def weights_path(self) -> Path:
        return self.folder / "weights.safetensors"

    @property
    def iterations(self) -> int:
        return int(self.card.get("iterations", 0))

    @property
    def sha256(self) -> str:
        return str(self.card.get("sha256", ""))

    def fits(self, opts: TrainOptions) -> bool:
        return bool(self.card.get("shape") == shape_of(opts))


def shape_of(opts: TrainOptions) -> dict[str, Any]:
    return {k: getattr(opts, k) for k in SHAPE_KEYS}


def read_prior(folder: Path) -> Prior:
    folder = Path(folder)
    card = read_versioned_json(folder / "card.json", PRIOR_SCHEMA, PRIOR_VERSION, "face prior card")
    if card is None:
        raise InputError("not a face prior (no card.json)", folder)
    if not isinstance(card.get("shape"), dict):
        raise InputError("face prior card has no shape", folder / "card.json")
    return Prior(folder, card)


def shipped_priors(root: Path | None = None) -> list[Prior]:
    root = PRIORS_DIR if root is None else root
    if not root.is_dir():
        return []
    return [read_prior(p) for p in sorted(root.iterdir()) if (p / "card.json").is_file()]


def find_prior(opts: TrainOptions, root: Path | None = None) -> Prior | None:
    """The shipped prior whose shape fits these options, if any."""
    for prior in shipped_priors(root):
        if prior.fits(opts):
            return prior
    return None


def origin_prior(state_prior: str) -> Prior | None:
    """The shipped prior a model started from, from its state's ``prior`` ("NAME SHA256"); None for a model
    from random weights. A prior no longer shipped (its weights changed since) is an error: its
    iterations cannot be counted."""
    parts = state_prior.split()
    if len(parts) != 2:
        return None
    found = next((p for p in shipped_priors() if p.sha256 == parts[1]), None)
    if found is None:
        raise InputError(f"this model started from prior {parts[0]} ({parts[1][:12]}), which is no longer shipped")
    return found


def load_prior_weights(prior: Prior) -> dict[str, Tensor]:
    """The prior's autoencoder state_dict as float32, checked against the card's SHA-256."""
    tensors, _ = read_tensors(prior.weights_path, prior.sha256 or None, named_by="card.json")
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def apply_prior(ae: nn.Module, prior: Prior) -> None:
    """Load the prior into a freshly built autoencoder of the same shape (strict: every tensor matches)."""
    weights = {f"ae.{k}": v for k, v in load_prior_weights(prior).items()}
    load_modules({"ae": ae}, weights, prior.weights_path)


# ---- export -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceNote:
    """One source of pretraining faces, for the card."""
    name: str
    faces: int
    licence: str
    origin: str


def export_prior(model_dir: Path, out: Path, sources: list[SourceNote], notes: str = "",
                 started_from: Prior | None = None) -> Prior:
    """Write a prior folder from a pretraining model folder (its last checkpoint's autoencoder)."""
    model_dir, out = Path(model_dir), Path(out)
    opts = read_config(model_dir)
    ckpt = load_checkpoint(model_dir, optimizer=False)
    if opts is None or ckpt is None:
        raise InputError("no trained model to export (config.json or state.json missing)", model_dir)
    ae = {k[3:]: v.to(torch.float16) if v.is_floating_point() else v
          for k, v in ckpt.weights.items() if k.startswith("ae.")}
    if not ae:
        raise InputError("the checkpoint has no autoencoder weights", model_dir)
    data = st_save(ae, metadata={"format": "pt", "schema": PRIOR_SCHEMA})
    digest = hashlib.sha256(data).hexdigest()
    base_its = started_from.iterations if started_from is not None else 0
    base_hours = float(started_from.card.get("hours", 0.0)) if started_from is not None else 0.0
    card: dict[str, Any] = {
        "schema": PRIOR_SCHEMA, "version": PRIOR_VERSION, "tool_version": __version__,
        "name": out.name, "shape": shape_of(opts),
        "training": {k: getattr(opts, k) for k in ("batch_size", "lr", "precision", "random_warp",
                                                    "random_hsv_power", "masked_training", "skin_mask",
                                                    "eyes_mouth_prio")},
        "iterations": base_its + ckpt.state.iteration,
        "hours": round(base_hours + ckpt.state.elapsed_s / 3600, 3),
        "samples_seen": (base_its + ckpt.state.iteration) * opts.batch_size,
        "last_losses": ckpt.state.last_losses,
        "sources": [vars(s) for s in sources], "faces": sum(s.faces for s in sources),
        "lineage": ([*started_from.card.get("lineage", []), {"sha256": started_from.sha256,
                                                              "iterations": started_from.iterations}]
                    if started_from is not None else []),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "weights_dtype": "float16", "sha256": digest, "notes": notes,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "weights.safetensors", data)
    write_json_atomic(out / "card.json", card)
    write_text_atomic(out / "MODEL_CARD.md", model_card_text(card))
    return Prior(out, card)


def model_card_text(card: dict[str, Any]) -> str:
    shape = ", ".join(f"{k} {v}" for k, v in card["shape"].items())
    rows = "\n".join(f"| {s['name']} | {s['faces']} | {s['licence']} | {s['origin']} |" for s in card["sources"])
    losses = ", ".join(f"{k} {v:.4f}" for k, v in card.get("last_losses", {}).items())
    lineage = "; ".join(f"{x['iterations']} iterations, sha256 {x['sha256'][:12]}" for x in card.get("lineage", []))
    return f"""# Face prior `{card['name']}`

Autoencoder weights pretrained by facelab on the faces of many people, from which a new model of
the same shape starts (see facelab/train/prior.py). Generated by `facelab pretrain export`; the
machine-readable copy is card.json.

- Shape: {shape}
- Pretraining: {card['iterations']} iterations of batch {card['training']['batch_size']}
  ({card['samples_seen']} samples), {card['hours']} hours of training time; options
  {json.dumps(card['training'])}
- Last logged losses: {losses or '-'}
- Started from: {lineage or 'random weights'}
- Weights: float16 safetensors, SHA-256 {card['sha256']}
- Exported {card['exported_at']} by facelab {card['tool_version']}

## Data ({card['faces']} aligned faces)

| source | faces | licence | origin |
|---|---|---|---|
{rows}

The photos and clips are of identifiable people, taken by third parties and published in the
repositories named above under the licences given; the faces themselves are not shipped, only weights
learned from them. Do not use this prior to reconstruct or publish any of these people's faces.

{card.get('notes', '')}
"""

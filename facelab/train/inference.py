"""A trained model for inference (merge, evaluation, export): load a model folder, swap faces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from facelab.core.errors import InputError
from facelab.core.model_folder import load_checkpoint, load_modules, read_state
from facelab.train.checkpoint import read_config
from facelab.train.device import autocast, resolve_device
from facelab.train.nets import ARCHITECTURES, AutoEncoder, create_autoencoder
from facelab.train.options import TrainOptions


@dataclass
class SwapModel:
    """The generator of a model folder, in eval mode, with its options and identity."""

    options: TrainOptions
    ae: AutoEncoder
    device: torch.device
    iteration: int
    model_id: str  # sha256 of the weights file: names this exact model in provenance records

    @property
    def resolution(self) -> int:
        return self.options.resolution

    @property
    def face_type(self) -> str:
        """The framing of the faces the model sees and returns (a face type of face.align)."""
        return self.options.face_type

    @property
    def supports_reverse(self) -> bool:
        """Whether the architecture can merge dst->src (render dst's identity on src faces)."""
        return self.ae.spec.architecture.reverse

    @torch.no_grad()
    def swap(self, dst_faces: Tensor, dst_mask: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """For a batch of dst faces (B,3,R,R) in [0,1]: (swapped face, its predicted mask, and with
        ``dst_mask`` dst's own predicted mask), float32 on the CPU. The faces are encoded once, and dst's
        mask comes from the mask branch alone."""
        return self._predict(dst_faces, False, dst_mask)

    @torch.no_grad()
    def swap_reverse(self, src_faces: Tensor, src_mask: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """dst2src: src faces rendered with dst's identity (DF: the dst decoder on src's code), with src's
        own mask. Architectures without a reverse path (LIAE renders identity from the shared AB code) are
        refused (``supports_reverse``)."""
        self.check_reverse()
        return self._predict(src_faces, True, src_mask)

    def check_reverse(self) -> None:
        """InputError unless the architecture has a dst2src path (its registry entry says)."""
        if not self.supports_reverse:
            able = ", ".join(n.upper() for n in sorted(ARCHITECTURES.where(lambda a: a.reverse)))
            raise InputError(f"--direction dst2src needs a {able} model: {self.ae.spec.kind.upper()}'s swap path "
                             "only renders the src identity")

    def _predict(self, faces: Tensor, reverse: bool, own_mask: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        x = faces.to(self.device, torch.float32)
        with autocast(self.device, self.options.precision):
            face, mask, own = self.ae.predict(x, reverse, own_mask)
        return face.float().cpu(), mask.float().cpu(), None if own is None else own.float().cpu()


def load_swap_model(model_dir: Path, device: str = "auto") -> SwapModel:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError("model folder not found", model_dir)
    opts = read_config(model_dir)
    if opts is None:
        raise InputError("not a model folder (no config.json): train one with `facelab train`", model_dir)
    ckpt = load_checkpoint(model_dir, optimizer=False)
    if ckpt is None:
        raise InputError("model folder has no weights yet (no state.json): train it first", model_dir)
    state = read_state(model_dir)
    assert state is not None
    dev = resolve_device(device)
    with torch.device("meta"):  # no random init: every parameter comes from the weights file (strict load)
        ae = create_autoencoder(opts.arch, opts.resolution, opts.ae_dims, opts.e_dims, opts.d_dims, opts.d_mask_dims)
    ae = ae.to_empty(device="cpu")
    load_modules({"ae": ae}, ckpt.weights, model_dir / state["files"]["weights"])
    ae.to(dev).eval()
    model_id = str(state["sha256"][state["files"]["weights"]])
    return SwapModel(opts, ae, dev, ckpt.state.iteration, model_id)

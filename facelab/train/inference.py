"""A trained model for inference (merge, evaluation, export, live): load a model folder, swap faces.

``SwapModel.freeze`` replaces the eager swap path by a frozen TorchScript trace of it (``torch.jit.trace`` +
``torch.jit.freeze``, under bf16 autocast when asked, optionally run with oneDNN Graph fusion): the same
weights and operations with less Python and dispatch per call, for the CPU and batch-by-batch callers (live).
Its outputs are checked against the eager model's on the tracing input; any failure leaves the model eager.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from facelab.core.errors import InputError
from facelab.core.model_folder import load_checkpoint, load_modules, read_state
from facelab.train.checkpoint import read_config
from facelab.train.device import autocast, inference_precision, resolve_device
from facelab.train.nets import ARCHITECTURES, AutoEncoder, create_autoencoder
from facelab.train.options import TrainOptions

FreezeMode = Literal["fused", "trace"]
FROZEN_TOLERANCE = 0.02  # max |frozen - eager| on a 0..1 scale the frozen path may differ by (bf16 rounding: ~0.004)


class _FusionSwitch:
    """oneDNN Graph fusion of TorchScript graphs on the CPU (a process-wide switch): on while any caller is
    inside ``on()`` (live's swap workers run side by side), then back as it was before the first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.before = False

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        with self.lock:
            if self.users == 0:
                self.before = bool(torch.jit.onednn_fusion_enabled())  # type: ignore[no-untyped-call]
                torch.jit.enable_onednn_fusion(True)
            self.users += 1
        try:
            yield
        finally:
            with self.lock:
                self.users -= 1
                if self.users == 0:
                    torch.jit.enable_onednn_fusion(self.before)


_FUSION = _FusionSwitch()


class _SwapPath(torch.nn.Module):
    """The forward swap path (dst faces -> face, mask[, dst's own mask]) as a module to trace."""

    def __init__(self, ae: AutoEncoder, own_mask: bool) -> None:
        super().__init__()
        self.ae = ae
        self.own_mask = own_mask

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        face, mask, own = self.ae.predict(x, False, self.own_mask)
        return (face.float(), mask.float()) if own is None else (face.float(), mask.float(), own.float())


@dataclass(frozen=True)
class FrozenSwap:
    """A frozen trace of the swap path for one choice of dst mask, precision and fusion."""

    module: torch.jit.ScriptModule
    own_mask: bool
    bf16: bool
    mode: FreezeMode

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        with _FUSION.on() if self.mode == "fused" else contextlib.nullcontext():
            out = self.module(x)
        return out[0], out[1], out[2] if self.own_mask else None


@dataclass
class SwapModel:
    """The generator of a model folder, in eval mode, with its options and identity."""

    options: TrainOptions
    ae: AutoEncoder
    device: torch.device
    iteration: int
    model_id: str  # sha256 of the weights file: names this exact model in provenance records
    frozen: FrozenSwap | None = field(default=None, repr=False)  # see ``freeze``

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
        if self.frozen is not None and self.frozen.own_mask == dst_mask:
            face, mask, own = self.frozen(dst_faces.to(self.device, torch.float32))
            return face.cpu(), mask.cpu(), None if own is None else own.cpu()
        return self._predict(dst_faces, False, dst_mask)

    def freeze(self, example: Tensor, own_mask: bool, bf16: bool, mode: FreezeMode = "fused") -> str | None:
        """Make ``swap(x, own_mask)`` run a frozen TorchScript trace of the swap path (under CPU bf16 autocast
        with ``bf16``; ``mode`` fused: run with oneDNN Graph fusion). Traced on ``example`` (a batch of faces
        as ``swap`` takes them) and kept only when its outputs there are within FROZEN_TOLERANCE of the eager
        model's under the same precision; warmed up (the profiling runs that fusion needs). Returns None when
        frozen, else why not (the model stays eager). CPU only; ``swap`` with the other ``own_mask``, and
        ``swap_reverse``, stay eager."""
        self.frozen = None
        if self.device.type != "cpu":
            return "not on the CPU"
        x = example.to(self.device, torch.float32)
        try:
            # torch 2.13 calls TorchScript deprecated (for torch.compile, which needs a C++ compiler at run time)
            with warnings.catch_warnings(), torch.inference_mode(), \
                    torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), \
                    autocast(self.device, inference_precision(self.device, self.options.precision)):  # as _predict
                warnings.simplefilter("ignore", DeprecationWarning)
                want = self.ae.predict(x, False, own_mask)
                traced = torch.jit.trace(_SwapPath(self.ae, own_mask).eval(), x,  # type: ignore[no-untyped-call]
                                         check_trace=False)
                frozen = FrozenSwap(torch.jit.freeze(traced), own_mask, bf16, mode)
            with torch.inference_mode():
                for _ in range(3):  # the profiling executor optimizes (and fuses) after its first runs
                    got = frozen(x)
        except Exception as exc:  # any tracing failure: the eager model still works
            return f"tracing failed: {type(exc).__name__}: {exc}"
        pairs = [(g, w) for g, w in zip(got, want, strict=True) if g is not None and w is not None]
        diff = max(float((g - w.float()).abs().max()) for g, w in pairs)
        if not diff <= FROZEN_TOLERANCE:
            return f"the trace's output differs from the eager model's by {diff:.4f}"
        self.frozen = frozen
        return None

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
        with autocast(self.device, inference_precision(self.device, self.options.precision)):
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

"""XSeg training: a resumable loop over the labelled faces of one or more folders.

The model folder is created on the first run (``config.json``) and resumed afterwards; each save writes
new safetensors files and then ``state.json`` (``facelab.core.model_folder``), so a killed run resumes
from its last save. Ctrl+C saves and stops. Loss: binary cross-entropy plus soft Dice on the logits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch.nn import functional as F

from facelab.core.atomic import append_line, write_bytes_atomic
from facelab.core.errors import InputError
from facelab.core.lock import Want, hold
from facelab.core.model_folder import (
    ModelState,
    load_checkpoint,
    load_modules,
    load_optimizers,
    remove_model_temps,
    save_checkpoint,
)
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import read_face
from facelab.xseg.augment import AugmentOptions, LabelledFace, make_sample
from facelab.xseg.infer import to_input
from facelab.xseg.labels import exclude_mask, label_mask
from facelab.xseg.model import MODULE, read_face_type, write_config
from facelab.xseg.net import XSegNet
from facelab.xseg.options import XSegOptions

PREVIEW_ROWS = 4


@dataclass(frozen=True)
class Status:
    iteration: int
    loss: float
    it_per_s: float
    data_share: float  # fraction of the time spent making samples
    remaining: int | None  # iterations left in this run, when bounded by iterations


def _shrink(face: LabelledFace, res: int) -> LabelledFace:
    """A face larger than the training resolution resized to it (area filter, as ``to_input`` at inference),
    so the random warps neither alias nor work on more pixels than the network sees."""
    if face.image.shape[0] <= res:
        return face

    def area(a: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(cv2.resize(a, (res, res), interpolation=cv2.INTER_AREA))

    return LabelledFace(area(face.image).astype(np.uint8), area(face.mask).astype(np.float32),
                        None if face.occluder is None else area(face.occluder).astype(np.float32))


def load_labelled(folders: Sequence[Path], resolution: int | None = None) -> list[LabelledFace]:
    """Every face with XSeg polygons in the folders, decoded once (few-shot sets are small), shrunk to
    ``resolution`` when larger."""
    return load_labelled_typed(folders, resolution)[0]


def load_labelled_typed(folders: Sequence[Path], resolution: int | None = None) -> tuple[list[LabelledFace], str]:
    """The labelled faces and their face type. A model learns one framing of the face, so the labelled
    faces must share one face type (other types are converted when the model is applied)."""
    out: list[LabelledFace] = []
    types: dict[str, Path] = {}
    for folder in folders:
        for path, rec in scan_faces(Path(folder)).faces:
            if rec.xseg_polygons:
                image, _ = read_face(path)
                face = LabelledFace(image, label_mask(rec, path), exclude_mask(rec))
                out.append(face if resolution is None else _shrink(face, resolution))
                types.setdefault(rec.face_type, path)
    if not out:
        names = ", ".join(str(f) for f in folders)
        raise InputError(f"no labelled faces (faces with XSeg polygons) in {names}: label some first "
                         "(e.g. `facelab xseg import-labels`)")
    if len(types) > 1:
        found = ", ".join(f"{t} (e.g. {p.name})" for t, p in sorted(types.items()))
        raise InputError(f"the labelled faces mix face types: {found}. An XSeg model learns one framing: "
                         "train on faces of one type (the model converts other types when it is applied)")
    return out, next(iter(types))


def segmentation_loss(logits: Tensor, target: Tensor) -> Tensor:
    """BCE + (1 - soft Dice), both over the batch."""
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(1, 2, 3))
    dice = (2 * inter + 1.0) / (prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1.0)
    return bce + (1.0 - dice.mean())


class XSegTrainer:
    def __init__(self, model_dir: Path, opts: XSegOptions, folders: Sequence[Path], new: bool,
                 augment: AugmentOptions | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.opts = opts
        self.augment = augment or AugmentOptions()
        wants = [Want(self.model_dir)] + [Want(Path(f), shared=True) for f in folders]
        self._locks = hold(self, wants, "xseg train")  # until close() (or this trainer is collected)
        try:
            self._setup(model_dir, opts, folders, new)
        except BaseException:
            self._locks.release()
            raise

    def _setup(self, model_dir: Path, opts: XSegOptions, folders: Sequence[Path], new: bool) -> None:
        self.faces, self.face_type = load_labelled_typed(folders, opts.resolution)
        with torch.random.fork_rng():  # a new model's initial weights depend on the seed only
            torch.manual_seed(opts.seed)
            self.net = XSegNet(opts.base_channels)
        self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=opts.lr)
        self.state = ModelState()
        self._saved_iteration: int | None = None  # None: a new model is saved even after zero iterations
        ckpt = None if new else load_checkpoint(self.model_dir)
        remove_model_temps(self.model_dir)
        if ckpt is not None:
            trained_on = read_face_type(self.model_dir)
            if trained_on is not None and trained_on != self.face_type:
                raise InputError(f"this XSeg model was trained on {trained_on} faces; the labelled faces are "
                                 f"{self.face_type}: continue it on {trained_on} faces or start a new model",
                                 self.model_dir)
            load_modules({MODULE: self.net}, ckpt.weights, self.model_dir)
            load_optimizers({"adam": self.optimizer}, ckpt.opt_tensors, ckpt.opt_meta, self.model_dir)
            self.state = ckpt.state
            self._saved_iteration = ckpt.state.iteration
        else:
            self.model_dir.mkdir(parents=True, exist_ok=True)
            write_config(self.model_dir, opts, self.face_type)

    def close(self) -> None:
        """Release the model folder (the faces are read only while training)."""
        self._locks.release()

    def batch(self) -> tuple[Tensor, Tensor]:
        """The samples of the current iteration, drawn from a stream seeded by (seed, iteration): a resumed
        run sees the batches an uninterrupted one would have."""
        res, n = self.opts.resolution, self.opts.batch_size
        rng = np.random.default_rng([self.opts.seed, self.state.iteration])
        idx = rng.integers(len(self.faces), size=n)
        samples = [make_sample(self.faces, int(i), res, rng, self.augment) for i in idx]
        x = to_input([s[0] for s in samples], res)
        y = torch.from_numpy(np.stack([s[1] for s in samples])[:, None])
        return x, y

    def step(self, x: Tensor, y: Tensor) -> float:
        self.net.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.opts.precision == "bf16"):
            logits = self.net(x)
        loss = segmentation_loss(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        return float(loss.detach())

    def save(self, preview: tuple[Tensor, Tensor] | None = None) -> None:
        save_checkpoint(self.model_dir, self.state, {MODULE: self.net}, {"adam": self.optimizer})
        self._saved_iteration = self.state.iteration
        if preview is not None and self.opts.preview:
            write_preview(self.model_dir / "previews" / "latest.png", self.net, *preview, self.state.iteration)
        append_line(self.model_dir / "metrics.jsonl", json.dumps({
            "iteration": self.state.iteration, "elapsed_s": round(self.state.elapsed_s, 2), **self.state.last_losses}))

    def train(self, iterations: int | None = None, minutes: float | None = None,
              on_status: Callable[[Status], None] | None = None) -> ModelState:
        """Train for ``iterations`` more iterations and/or ``minutes`` (whichever ends first; neither: until
        Ctrl+C), saving every ``save_every`` iterations and at the end."""
        start_it, t0 = self.state.iteration, time.perf_counter()
        deadline = None if minutes is None else t0 + minutes * 60.0
        last = t0
        data_s = 0.0
        losses: list[float] = []
        x: Tensor | None = None
        y: Tensor | None = None
        try:
            while True:
                done = self.state.iteration - start_it
                if iterations is not None and done >= iterations:
                    break
                if self.opts.target_iteration and self.state.iteration >= self.opts.target_iteration:
                    break
                if deadline is not None and time.perf_counter() >= deadline:
                    break
                ts = time.perf_counter()
                x, y = self.batch()
                data_s += time.perf_counter() - ts
                losses.append(self.step(x, y))
                self.state.iteration += 1
                now = time.perf_counter()
                self.state.elapsed_s += now - last
                last = now
                if self.state.iteration % self.opts.save_every == 0:
                    self._record(losses)
                    self.save((x, y))
                if on_status is not None and (self.state.iteration % 5 == 0 or done + 1 == iterations):
                    spent = now - t0
                    on_status(Status(self.state.iteration, float(np.mean(losses[-20:])),
                                     (done + 1) / max(spent, 1e-9), data_s / max(spent, 1e-9),
                                     None if iterations is None else iterations - done - 1))
        except KeyboardInterrupt:
            pass
        if self.state.iteration != self._saved_iteration:
            self._record(losses)
            self.save(None if x is None or y is None else (x, y))
        return self.state

    def _record(self, losses: list[float]) -> None:
        if losses:
            self.state.last_losses = {"loss": round(float(np.mean(losses[-50:])), 6)}


@torch.inference_mode()
def write_preview(path: Path, net: XSegNet, x: Tensor, y: Tensor, iteration: int) -> None:
    """Rows of (input, label, prediction, prediction over the input) for the first samples of a batch."""
    net.eval()
    n = min(PREVIEW_ROWS, x.shape[0])
    prob = torch.sigmoid(net(x[:n])).float()
    rows = []
    for i in range(n):
        img = (x[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        lab = np.repeat((y[i, 0].numpy()[..., None] * 255).astype(np.uint8), 3, axis=2)
        p = prob[i, 0].numpy()
        pred = np.repeat((p[..., None] * 255).astype(np.uint8), 3, axis=2)
        tint = np.array([0, 255, 0], np.float32)
        over = (img * (1 - 0.4 * p[..., None]) + tint * 0.4 * p[..., None]).astype(np.uint8)
        rows.append(np.hstack([img, lab, pred, over]))
    grid: NDArray[np.uint8] = np.vstack(rows)
    header = np.full((24, grid.shape[1], 3), 255, np.uint8)
    cv2.putText(header, f"iteration {iteration}: input | label | prediction | overlay", (4, 16),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", np.vstack([header, grid]))
    if ok:
        write_bytes_atomic(path, buf.tobytes())

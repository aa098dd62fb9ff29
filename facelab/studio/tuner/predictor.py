"""The workspace's model and its predictions, cached per frame.

The model is loaded once (``load_swap_model``, as the merge does) and again only when the model folder's
weights change (training saved): its id, the weights' sha256 from state.json, is read at each request.
Predictions are made batch by batch exactly as the batch merge makes them (``plan``): the frames of the
batch are read, each face cropped from its frame (``crop_face`` with the record's transform converted
to the model), run through ``facelab.merge.batches.predict`` together, and kept per frame in a
least-recently-used cache bounded in bytes, keyed by model id, direction and frame. The model's own mask
of the dst face is always asked for (it does not change the other outputs), so a mask-mode change never
needs the model again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facelab.core.errors import InputError
from facelab.core.model_folder import read_state
from facelab.core.types import U8
from facelab.faceset.record import FaceRecord
from facelab.media.frames import read_image_rgb
from facelab.merge.batches import predict
from facelab.merge.compose import Prediction, crop_face, model_transform
from facelab.studio.tuner.cache import ByteLRU
from facelab.studio.tuner.gate import ModelGate
from facelab.studio.tuner.index import FrameIndex
from facelab.train.inference import SwapModel, load_swap_model

DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
PREFETCH_WITHIN = 4  # frames from the end of a batch: from there the next batch is predicted in the background
FRAME_OVERHEAD = 512  # bytes counted per cached frame besides its arrays

Checkpoint = Callable[[], None]


@dataclass(frozen=True)
class FramePrediction:
    """One frame's faces through the model: records, predictions and the crops the model saw."""

    records: list[FaceRecord]
    predictions: list[Prediction]
    crops: list[U8]

    @property
    def nbytes(self) -> int:
        arrays: list[NDArray[np.generic] | None] = [*self.crops]
        for p in self.predictions:
            arrays += [p.face, p.mask, p.dst_mask, p.xseg_prd, p.xseg_dst]
        return sum(a.nbytes for a in arrays if a is not None) + FRAME_OVERHEAD


def model_id_of(model_dir: Path) -> str | None:
    """The id of the model folder's current weights (None: no weights yet)."""
    try:
        state = read_state(model_dir)
    except (InputError, OSError, ValueError):
        return None
    if not state:
        return None
    try:
        return str(state["sha256"][state["files"]["weights"]])
    except (KeyError, TypeError):
        return None


class Predictor:
    """The model of ``model_dir`` and its per-frame prediction cache (thread-safe: one model call at a time,
    a render request's before the background's)."""

    def __init__(self, model_dir: Path, device: str = "auto", max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.model_dir = model_dir
        self.device = device
        self.cache: ByteLRU[FramePrediction] = ByteLRU(max_bytes, lambda v: v.nbytes)
        self.gate = ModelGate()
        self._model: SwapModel | None = None
        self._model_lock = threading.Lock()  # loading
        self._index_lock = threading.Lock()
        self._index: FrameIndex | None = None
        self._generation = 0  # of the frames: part of every cache key
        self._face_bytes: dict[str, int] = {}  # model id -> bytes one cached face takes

    def model(self) -> SwapModel:
        """The model, loaded again when the folder holds other weights than the ones loaded."""
        with self._model_lock:
            current = model_id_of(self.model_dir)
            if self._model is None or (current is not None and current != self._model.model_id):
                if current is None and not (self.model_dir / "config.json").is_file():
                    raise InputError("no model yet: train one first (the workspace page's Train step)",
                                     self.model_dir)
                self._model = load_swap_model(self.model_dir, self.device)
                self.cache.clear()
            return self._model

    @property
    def loaded(self) -> SwapModel | None:
        """The model if loaded (nothing is read)."""
        return self._model

    def sync(self, index: FrameIndex) -> int:
        """The frames' generation; a new index (the frame or face folder changed) drops the cache."""
        with self._index_lock:
            if index is not self._index:
                if self._index is not None:
                    self.cache.clear()
                self._index = index
                self._generation += 1
            return self._generation

    def key(self, model_id: str, direction: str, generation: int, stem: str) -> Hashable:
        return (model_id, direction, generation, stem)

    def has_batch(self, model_id: str, direction: str, generation: int, batch: Sequence[str]) -> bool:
        return all(self.key(model_id, direction, generation, s) in self.cache for s in batch)

    def frame(self, index: FrameIndex, stem: str, direction: str, checkpoint: Checkpoint) -> FramePrediction:
        """The predictions of one frame's faces (empty for a frame without faces). A cached frame never waits
        for the model; an uncached one waits only for the model call in progress."""
        if not index.faces(stem):
            return FramePrediction([], [], [])
        gen = self.sync(index)
        model = self.model()
        if direction == "dst2src":
            model.check_reverse()
        key = self.key(model.model_id, direction, gen, stem)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        checkpoint()
        with self.gate.user():
            hit = self.cache.get(key)  # made by the call that held the model
            if hit is not None:
                return hit
            checkpoint()
            return self._predict_batch(model, index, gen, index.batches[stem], direction)[stem]

    def batch_bytes(self, model_id: str, index: FrameIndex, batch: Sequence[str]) -> int | None:
        """The bytes a batch's predictions will take in the cache (None: not known before a first batch)."""
        per_face = self._face_bytes.get(model_id)
        if per_face is None:
            return None
        return sum(per_face * len(index.faces(s)) + FRAME_OVERHEAD for s in batch)

    def warm_batch(self, model: SwapModel, index: FrameIndex, generation: int, batch: tuple[str, ...],
                   direction: str, cold: bool) -> bool:
        """Predict ``batch`` in the background, after every render request waiting for the model; False when
        there was nothing to do (cached meanwhile, or the model or the frames changed)."""
        with self.gate.background():
            if model is not self._model or generation != self._generation:
                return False
            if self.has_batch(model.model_id, direction, generation, batch):
                return False
            self._predict_batch(model, index, generation, batch, direction, cold)
            return True

    def close(self) -> None:
        """Nothing to release (kept for the Tuner's close)."""

    def _predict_batch(self, model: SwapModel, index: FrameIndex, generation: int, batch: tuple[str, ...],
                       direction: str, cold: bool = False) -> dict[str, FramePrediction]:
        face_type, res = model.options.face_type, model.resolution
        paths = {p.stem: p for p in index.frames}
        crops: list[U8] = []
        for stem in batch:  # as Batcher.flush: faces of the batch's frames in order
            frame = read_image_rgb(paths[stem])
            crops.extend(crop_face(frame, model_transform(r, face_type, res), res) for r in index.faces(stem))
        preds = predict(model, crops, direction, True)
        out: dict[str, FramePrediction] = {}
        k = 0
        for stem in batch:
            recs = index.faces(stem)
            n = len(recs)
            out[stem] = FramePrediction(list(recs), preds[k:k + n], crops[k:k + n])
            k += n
        faces = sum(len(v.records) for v in out.values())
        if faces:
            per_face = -(-sum(v.nbytes - FRAME_OVERHEAD for v in out.values()) // faces)
            self._face_bytes[model.model_id] = max(per_face, self._face_bytes.get(model.model_id, 0))
        for stem in batch:
            self.cache.put(self.key(model.model_id, direction, generation, stem), out[stem], cold)
        return out

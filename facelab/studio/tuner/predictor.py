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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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
from facelab.studio.tuner.index import FrameIndex
from facelab.train.inference import SwapModel, load_swap_model

DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
PREFETCH_WITHIN = 4  # frames from the end of a batch: from there the next batch is predicted in the background

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
        return sum(a.nbytes for a in arrays if a is not None) + 512


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
    """The model of ``model_dir`` and its per-frame prediction cache (thread-safe: one model call at a time)."""

    def __init__(self, model_dir: Path, device: str = "auto", max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.model_dir = model_dir
        self.device = device
        self.cache: ByteLRU[FramePrediction] = ByteLRU(max_bytes, lambda v: v.nbytes)
        self._model: SwapModel | None = None
        self._model_lock = threading.Lock()  # loading
        self._predict_lock = threading.Lock()  # one model call at a time
        self._prefetcher = ThreadPoolExecutor(1, thread_name_prefix="tuner-prefetch")
        self._prefetching: Future[None] | None = None

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

    def frame(self, index: FrameIndex, stem: str, direction: str, checkpoint: Checkpoint) -> FramePrediction:
        """The predictions of one frame's faces (empty for a frame without faces)."""
        if not index.faces(stem):
            return FramePrediction([], [], [])
        model = self.model()
        if direction == "dst2src":
            model.check_reverse()
        key = (model.model_id, direction, stem)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        checkpoint()
        with self._predict_lock:
            hit = self.cache.get(key)  # made by the request that held the lock
            if hit is not None:
                return hit
            checkpoint()
            return self._predict_batch(model, index, index.batches[stem], direction)[stem]

    def prefetch_after(self, index: FrameIndex, stem: str, direction: str) -> None:
        """Near the end of the frame's batch, predict the next batch in the background (one at a time), so
        that stepping through the frames does not wait for the model."""
        batch = index.batches.get(stem)
        if batch is None or len(batch) - batch.index(stem) > PREFETCH_WITHIN:
            return
        stems = index.stems
        pos = stems.index(batch[-1])
        nxt = next((index.batches[s] for s in stems[pos + 1:] if s in index.batches), None)
        if nxt is None or (self._prefetching is not None and not self._prefetching.done()):
            return
        if self._model is None or self.cache.get((self._model.model_id, direction, nxt[0])) is not None:
            return
        model: SwapModel = self._model

        def run() -> None:
            with self._predict_lock:
                if self.cache.get((model.model_id, direction, nxt[0])) is None:
                    self._predict_batch(model, index, nxt, direction)

        self._prefetching = self._prefetcher.submit(run)

    def close(self) -> None:
        self._prefetcher.shutdown(wait=True, cancel_futures=True)

    def _predict_batch(self, model: SwapModel, index: FrameIndex, batch: tuple[str, ...],
                       direction: str) -> dict[str, FramePrediction]:
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
            self.cache.put((model.model_id, direction, stem), out[stem])
            k += n
        return out

"""``Tuner``: one per studio app. A dst frame merged with any options, exactly as `facelab merge` writes
it; the frames list; the session file. Model, predictions and frame list are cached; nothing else is kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facelab.core.types import U8
from facelab.media.frames import read_image_rgb
from facelab.merge.options import MergeOptions, check_supported
from facelab.provenance.marker import ProvenanceMarker, marker_for, phase_sample
from facelab.studio.layout import Layout
from facelab.studio.tuner.index import FrameIndex, IndexCache
from facelab.studio.tuner.latest import Latest, no_ticket
from facelab.studio.tuner.predictor import DEFAULT_CACHE_BYTES, Predictor
from facelab.studio.tuner.render import encode, face_inputs, merged_pixels, needs_xseg
from facelab.studio.tuner.sessions import SessionStore
from facelab.studio.tuner.warmup import Warmup
from facelab.xseg.infer import XSegModel, load_xseg

Checkpoint = Callable[[], None]


@dataclass(frozen=True)
class Rendered:
    data: bytes
    stem: str
    faces: int
    predict_ms: float  # model time (0: cached)
    total_ms: float


class Tuner:
    def __init__(self, layout: Layout, device: str = "auto", cache_bytes: int = DEFAULT_CACHE_BYTES,
                 warmup: bool = True) -> None:
        self.layout = layout
        self.index = IndexCache(layout)
        self.predictor = Predictor(layout.model, device, cache_bytes)
        self.warmup = Warmup(self.predictor, self.index, enabled=warmup)  # started by the first request
        self.latest = Latest()
        self.sessions = SessionStore(layout.session)
        self._xseg: dict[Path, XSegModel] = {}
        self._markers: dict[str, ProvenanceMarker] = {}
        self._lock = threading.Lock()

    # ---- frames ------------------------------------------------------------------------------------

    def frames(self) -> dict[str, Any]:
        """The frames in order with their face counts."""
        idx = self.index.get()
        faces = [len(idx.faces(s)) for s in idx.stems]
        return {"count": len(idx.frames), "stems": idx.stems, "faces": faces,
                "without_face": sum(1 for n in faces if n == 0), "format": idx.frames[0].suffix.lstrip(".")}

    def frame_path(self, index: int) -> Path:
        return self.index.get().path(index)

    def warmup_status(self) -> dict[str, Any]:
        """The background warm-up's progress (``{state, cached, total, ...}``: model batches cached)."""
        return self.warmup.status()

    def close(self) -> None:
        self.warmup.close()

    # ---- rendering ---------------------------------------------------------------------------------

    def _xseg_model(self, path: Path) -> XSegModel:
        with self._lock:
            if path not in self._xseg:
                self._xseg[path] = load_xseg(path)
            return self._xseg[path]

    def _marker(self, model_id: str) -> ProvenanceMarker:
        with self._lock:
            if model_id not in self._markers:
                idx = self.index.get()  # the phase `facelab merge` chooses on these frames
                marker = marker_for(model_id, {"frames": self.layout.dst_frames.name})
                self._markers = {model_id: marker.placed(phase_sample(idx.frames, idx.by_frame))}
            return self._markers[model_id]

    def pixels(self, index: int, opts: MergeOptions, checkpoint: Checkpoint = no_ticket) -> tuple[U8, str, int, float]:
        """(merged frame RGB, stem, faces, model ms) for frame ``index`` with ``opts``: what `facelab merge`
        writes for that frame when the frame's options are ``opts``; frames without a face pass through."""
        idx: FrameIndex = self.index.get()
        path = idx.path(index)
        stem = path.stem
        check_supported(opts, idx.dst_masks)
        if not idx.faces(stem):
            self.warmup.focus(stem, opts.direction)  # the warm-up moves outward from the user's frame
            return read_image_rgb(path), stem, 0, 0.0
        t0 = time.perf_counter()
        pred = self.predictor.frame(idx, stem, opts.direction, checkpoint)
        predict_ms = (time.perf_counter() - t0) * 1000
        self.warmup.focus(stem, opts.direction)
        model = self.predictor.model()
        face_type, res = model.options.face_type, model.resolution
        xseg = None
        batch = None
        if needs_xseg(opts):
            xseg = self._xseg_model(opts.xseg_model) if opts.xseg_model is not None else None
            batch = [self.predictor.frame(idx, s, opts.direction, checkpoint) for s in idx.batches[stem]]
        checkpoint()
        frame = read_image_rgb(path)
        inputs = face_inputs(stem, pred, idx.motions, opts, xseg, face_type, res, batch)
        merged = merged_pixels(frame, stem, inputs, face_type, res, opts, self._marker(model.model_id))
        return merged, stem, len(inputs), predict_ms

    def render(self, index: int, opts: MergeOptions, fmt: str = "jpg", checkpoint: Checkpoint = no_ticket) -> Rendered:
        t0 = time.perf_counter()
        rgb, stem, faces, predict_ms = self.pixels(index, opts, checkpoint)
        checkpoint()
        data = encode(rgb, fmt)
        return Rendered(data, stem, faces, predict_ms, (time.perf_counter() - t0) * 1000)

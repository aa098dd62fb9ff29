"""Faces through the model in batches: crop each face from its frame, predict (only the outputs the mask
modes use: dst's own mask only for the learned-dst modes), add the XSeg masks, and hand each frame with
its predictions on as a compositing job."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from facelab.core.types import U8
from facelab.export.load import FaceSwapper
from facelab.faceset.record import FaceRecord
from facelab.merge.compose import FaceInput, Prediction, crop_face, model_transform
from facelab.merge.jobs import Job
from facelab.merge.masks import LEARNED_DST_MODES
from facelab.merge.motion import Motions
from facelab.merge.schedule import ThreadPlan
from facelab.merge.session import MergeSession
from facelab.merge.xseg_masks import with_xseg
from facelab.train.inference import SwapModel
from facelab.xseg.infer import XSegModel

BATCH_FACES = 16  # faces per model call



def needs_dst_mask(session: MergeSession) -> bool:
    """Whether any frame's mask mode uses the model's own mask of the dst face."""
    return any(o.mask_mode in LEARNED_DST_MODES for o in session.variants())


def predict(model: FaceSwapper, crops: list[U8], direction: str, dst_mask: bool) -> list[Prediction]:
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    if direction == "src2dst":
        face, mask, own = model.swap(x, dst_mask)
    else:
        assert isinstance(model, SwapModel)  # merge.inputs refuses dst2src for other models
        face, mask, own = model.swap_reverse(x, dst_mask)
    f = face.clamp_(0, 1).permute(0, 2, 3, 1).contiguous().numpy()
    m = mask[:, 0].contiguous().numpy()
    d = None if own is None else own[:, 0].contiguous().numpy()
    return [Prediction(f[i], m[i], None if d is None else d[i]) for i in range(len(crops))]


class Batcher:
    """Collects frames until a batch holds BATCH_FACES faces, then runs the model on them (when the
    ThreadPlan allows, after ``drain`` let the workers finish) and passes each frame's job to ``submit``."""

    def __init__(self, model: FaceSwapper, session: MergeSession, xseg: XSegModel | None, motions: Motions,
                 plan: ThreadPlan, submit: Callable[[Job], None], drain: Callable[[], None]) -> None:
        self.model = model
        self.session = session
        self.xseg = xseg
        self.motions = motions
        self.plan = plan
        self.submit = submit
        self.drain = drain
        self.dst_mask = needs_dst_mask(session)
        self.direction = session.options.direction
        self.pending: list[tuple[str, Path, U8, list[FaceRecord]]] = []
        self.pending_faces = 0
        self.faces_done = 0  # faces handed on as jobs

    def add(self, stem: str, path: Path, frame: U8, records: list[FaceRecord]) -> None:
        self.pending.append((stem, path, frame, records))
        self.pending_faces += len(records)
        if self.pending_faces >= BATCH_FACES:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        face_type, res = self.model.face_type, self.model.resolution
        crops: list[U8] = []
        for _stem, _, frame, recs in self.pending:
            crops.extend(crop_face(frame, model_transform(r, face_type, res), res) for r in recs)
        self.plan.before_predict(self.drain)
        t_model = time.perf_counter()
        preds = predict(self.model, crops, self.direction, self.dst_mask)
        self.plan.after_predict(time.perf_counter() - t_model, len(self.pending))
        modes = [self.session.options_for(stem).mask_mode for stem, _, _, recs in self.pending for _ in recs]
        recs_flat = [r for _, _, _, recs in self.pending for r in recs]
        preds = with_xseg(preds, crops, recs_flat, modes, self.xseg, face_type, res)
        k = 0
        for stem, path, frame, recs in self.pending:
            inputs = [FaceInput(r, preds[k + j], self.motions.get((stem, r.face_index))) for j, r in enumerate(recs)]
            k += len(recs)
            self.faces_done += len(recs)
            self.submit(Job(stem, path, frame, inputs, self.session.options_for(stem)))
        self.pending.clear()
        self.pending_faces = 0

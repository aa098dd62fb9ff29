"""XSeg masks for the xseg-* mask modes: of the predicted face (XSeg run on it) and of the dst face (the mask
stored in its record by `facelab xseg apply` or its hand-drawn polygons, else XSeg run on the dst crop).

Masks are returned in the model's crop (R x R), where the compositor combines them like the learned masks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from facelab.core.types import F32, U8
from facelab.face.align import compose
from facelab.face.masks import face_mask
from facelab.faceset.record import FaceRecord
from facelab.merge.compose import Prediction, model_transform
from facelab.merge.masks import XSEG_DST_MODES, XSEG_PRD_MODES
from facelab.xseg.infer import XSegModel


def has_stored_mask(record: FaceRecord) -> bool:
    """The face carries an XSeg mask or hand-drawn XSeg polygons."""
    return record.xseg_mask is not None or bool(record.xseg_polygons)


def stored_mask(record: FaceRecord, face_type: str, resolution: int) -> F32 | None:
    """The face's stored XSeg mask (polygons first: they are ground truth) in the model's crop, or None."""
    if not has_stored_mask(record):
        return None
    to_crop = compose(model_transform(record, face_type, resolution), record.inverse_affine())
    return face_mask(record, to_crop, resolution, path=record.source.frame)


def _bgr(face_rgb01: F32) -> U8:
    return np.ascontiguousarray(np.clip(face_rgb01[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8))


def with_xseg(preds: Sequence[Prediction], crops: Sequence[U8], records: Sequence[FaceRecord],
              modes: Sequence[str], model: XSegModel | None, face_type: str, resolution: int) -> list[Prediction]:
    """The predictions with the XSeg masks their mask modes need (one batched XSeg call per side).

    ``crops`` are the dst crops (RGB uint8) the model saw; ``modes`` the mask mode of each face's frame.
    """
    out = list(preds)
    need_prd = [i for i, m in enumerate(modes) if m in XSEG_PRD_MODES]
    need_dst = [i for i, m in enumerate(modes) if m in XSEG_DST_MODES]
    dst_masks: dict[int, F32] = {}
    run_dst: list[int] = []
    for i in need_dst:
        m = stored_mask(records[i], face_type, resolution)
        if m is not None:
            dst_masks[i] = m
        else:
            run_dst.append(i)
    if model is not None and run_dst:
        bgr = [np.ascontiguousarray(crops[i][..., ::-1]) for i in run_dst]
        dst_masks.update(zip(run_dst, model.predict(bgr, face_types=[face_type] * len(bgr)), strict=True))
    prd_masks: dict[int, F32] = {}
    if model is not None and need_prd:
        faces = [_bgr(out[i].face) for i in need_prd]
        prd_masks.update(zip(need_prd, model.predict(faces, face_types=[face_type] * len(faces)), strict=True))
    for i in set(need_prd) | set(need_dst):
        out[i] = dataclasses.replace(out[i], xseg_prd=prd_masks.get(i), xseg_dst=dst_masks.get(i))
    return out

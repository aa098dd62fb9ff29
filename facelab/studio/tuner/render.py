"""Compositing only: a frame's cached predictions merged with the options, watermarked as the batch merge
marks its frames, and encoded for the page.

``merged_pixels`` is facelab.merge.jobs' per-frame work without the file writing: ``merge_frame`` with
the frame's options and the same random generator (seeded by the frame's stem), then the provenance
watermark inside the merged region (``marker_for(model_id)``: the mark depends on the model id only).
`facelab merge` always marks its frames, so the tuner's frame equals the merged file's pixels (PNG
output; JPEG output adds its own compression).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from facelab.core.types import U8
from facelab.media.frames import encode_image
from facelab.merge.compose import FaceInput, Prediction, merge_frame
from facelab.merge.masks import XSEG_DST_MODES, XSEG_PRD_MODES
from facelab.merge.motion import Motions
from facelab.merge.options import MergeOptions
from facelab.merge.xseg_masks import with_xseg
from facelab.provenance.marker import ProvenanceMarker
from facelab.studio.tuner.predictor import FramePrediction
from facelab.xseg.infer import XSegModel

JPEG_QUALITY = 95
FORMATS = ("jpg", "png")


def frame_rng(stem: str) -> np.random.Generator:
    """The random generator the merge's job for this frame uses (facelab.merge.jobs)."""
    return np.random.default_rng(int(hashlib.sha1(stem.encode()).hexdigest()[:8], 16))


def needs_xseg(opts: MergeOptions) -> bool:
    return opts.mask_mode in XSEG_PRD_MODES or opts.mask_mode in XSEG_DST_MODES


def face_inputs(stem: str, pred: FramePrediction, motions: Motions, opts: MergeOptions, xseg: XSegModel | None,
                face_type: str, resolution: int, batch_preds: list[FramePrediction] | None = None) -> list[FaceInput]:
    """The frame's faces as compositing inputs (with the XSeg masks an xseg-* mask mode needs: XSeg runs on
    the faces of the frame's whole model batch, as the merge runs it when the batch's frames share the mode)."""
    preds: list[Prediction] = list(pred.predictions)
    if needs_xseg(opts) and pred.records:
        group = batch_preds if batch_preds else [pred]
        all_preds = [p for g in group for p in g.predictions]
        crops = [c for g in group for c in g.crops]
        recs = [r for g in group for r in g.records]
        start = next(i for i, g in enumerate(group) if g is pred)
        k = sum(len(g.records) for g in group[:start])
        done = with_xseg(all_preds, crops, recs, [opts.mask_mode] * len(recs), xseg, face_type, resolution)
        preds = done[k:k + len(pred.records)]
    else:
        preds = [dataclasses.replace(p, xseg_prd=None, xseg_dst=None) for p in preds]
    return [FaceInput(r, p, motions.get((stem, r.face_index))) for r, p in zip(pred.records, preds, strict=True)]


def merged_pixels(frame: U8, stem: str, faces: list[FaceInput], face_type: str, resolution: int,
                  opts: MergeOptions, marker: ProvenanceMarker | None) -> U8:
    """The merged frame as `facelab merge` writes it (before encoding); ``frame`` is not modified."""
    merged, mask8 = merge_frame(frame, faces, face_type, resolution, opts, rng=frame_rng(stem))
    if marker is not None:
        merged = marker.mark(merged, region=mask8, inplace=True, where=opts.watermark_region)
    return merged


def encode(rgb: U8, fmt: str) -> bytes:
    """PNG (lossless: the pixel-exact view) or JPEG at quality 95 (the page's quick view)."""
    return encode_image(rgb, "png") if fmt == "png" else encode_image(rgb, "jpg", JPEG_QUALITY)

"""A face's stored XSeg mask (the FaceRecord's ``xseg_mask``): base64 of an 8-bit grayscale PNG over the face."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np

from facelab.core.types import Mask
from facelab.face.masks import decode_stored_mask
from facelab.faceset.record import FaceRecord


def encode_mask(mask: Mask) -> str:
    """A float mask in [0, 1] (H x W) as the record's ``xseg_mask``."""
    m8 = np.clip(np.asarray(mask, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", m8, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("cannot encode the mask as PNG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def decode_mask(record: FaceRecord, path: Path | str) -> Mask | None:
    """The record's ``xseg_mask`` as float32 in [0, 1] at its stored size, or None when it has none.

    Raises MetadataError naming ``path`` when the stored mask is not a decodable grayscale PNG.
    """
    return None if record.xseg_mask is None else decode_stored_mask(record.xseg_mask, path)

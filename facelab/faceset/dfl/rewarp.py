"""An imported DFL face re-warped to facelab's own crop of its face type (``import-dfl --rewarp``).

DFL and facelab fit different mean faces and pad their crops differently (docs/reliability.md has the
measured differences), so a DFL ``whole_face`` shows more around the face than facelab's ``whole_face``.
Training reads a faceset's crops with facelab's geometry; re-warping makes imported faces match faces
facelab extracted, at the cost of one resampling and re-encoding. The frame -> face matrix and the
source landmarks say where the stored pixels came from, so the new crop is the stored image seen through
``facelab crop o inverse(DFL crop)``; pixels the DFL crop did not hold repeat its edge.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelab.core.errors import MetadataError
from facelab.core.geometry import invert_affine
from facelab.face.align import compose, face_transform
from facelab.faceset.record import FaceRecord
from facelab.faceset.resize import resize_record, warp_resized
from facelab.media.metadata import embed_json


def rewarp_face(image_data: bytes, record: FaceRecord, name: str, jpeg_quality: int = 95) -> bytes:
    """The face file (format by ``name``'s extension) of ``image_data`` re-warped to facelab's crop."""
    target = face_transform(record.source_landmarks_array(), record.face_type, record.size)
    mat = compose(target, invert_affine(record.affine()))  # stored px -> facelab crop px
    stored = cv2.imdecode(np.frombuffer(image_data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if stored is None:
        raise MetadataError("cannot decode the image pixels")
    bgr = warp_resized(np.asarray(stored, dtype=np.uint8), mat, record.size)
    new_record = resize_record(record, mat, record.face_type, record.size, None, Path(name))
    png = name.lower().endswith(".png")
    params = [] if png else [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    ok, encoded = cv2.imencode(".png" if png else ".jpg", bgr, params)
    if not ok:
        raise MetadataError("cannot encode the re-warped face")
    return embed_json(encoded.tobytes(), new_record.to_payload())

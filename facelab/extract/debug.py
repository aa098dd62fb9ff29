"""Debug frames: the detector box, the 68 landmarks and the outline of the face-type crop."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelab.core.atomic import write_bytes_atomic
from facelab.core.types import Image
from facelab.extract.analyze import DetectedFace
from facelab.extract.options import ExtractOptions
from facelab.face.align import face_transform, unwarp_points


def draw_debug(image: Image, faces: list[DetectedFace], opts: ExtractOptions) -> Image:
    out = np.ascontiguousarray(image[:, :, ::-1])
    for face in faces:
        b = face.box
        cv2.rectangle(out, (int(b.left), int(b.top)), (int(b.right), int(b.bottom)), (0, 0, 255), 2)
        for x, y in face.landmarks:
            cv2.circle(out, (round(x), round(y)), 2, (0, 255, 0), -1, lineType=cv2.LINE_AA)
        mat = face_transform(face.landmarks, opts.face_type, opts.size)
        s = float(opts.size)
        corners = unwarp_points(np.array([[0, 0], [s, 0], [s, s], [0, s]], dtype=np.float64), mat)
        cv2.polylines(out, [np.round(corners).astype(np.int32)], True, (255, 160, 0), 2, cv2.LINE_AA)
        tip = unwarp_points(np.array([[s / 2, 0.0]]), mat)[0]  # marks the crop's top edge
        cv2.circle(out, (round(tip[0]), round(tip[1])), 5, (255, 160, 0), -1)
        label = f"{face.box.detector}/{face.landmarker}"
        cv2.putText(out, label, (int(b.left), max(12, int(b.top) - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 255), 1, cv2.LINE_AA)
    return out


def write_debug(image: Image, faces: list[DetectedFace], frame: str, folder: Path,
                opts: ExtractOptions) -> None:
    ok, buf = cv2.imencode(".jpg", draw_debug(image, faces, opts), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if ok:
        write_bytes_atomic(folder / f"{frame}.jpg", buf.tobytes())

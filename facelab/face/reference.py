"""A reference identity from still images: the mean embedding of the largest face in each image (used
by extraction's --only-like and the faceset identity filter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelab.core.choices import IMAGE_EXTENSIONS
from facelab.core.errors import InputError
from facelab.face.detect import create_detector
from facelab.face.identity import Embedding, create_embedder
from facelab.face.landmarks import create_landmarker
from facelab.media.frames import read_image_rgb

# Stills are often small or far shots: let dlib's HOG detector upsample twice before giving up.
_DETECTOR, _DETECTOR_SETTINGS, _LANDMARKS = "dlib", {"max_upsample": 2}, "dlib"


def reference_embedding(path: Path) -> Embedding:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    elif path.is_file():
        files = [path]
    else:
        raise InputError("reference image or folder not found", path)
    if not files:
        raise InputError("no images in the reference folder", path)
    det = create_detector(_DETECTOR, **_DETECTOR_SETTINGS)
    lmk, emb = create_landmarker(_LANDMARKS), create_embedder()
    vecs = []
    for f in files:
        img = read_image_rgb(f)
        boxes = det.detect(img)
        if not boxes:
            continue
        box = max(boxes, key=lambda b: b.size)
        pts, _ = lmk.landmarks(img, box)
        vecs.append(emb.embed(img, pts))
    if not vecs:
        raise InputError("no face found in the reference image(s)", path)
    out: Embedding = np.mean(vecs, axis=0)
    return out

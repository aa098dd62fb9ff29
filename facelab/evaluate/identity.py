"""Reference identities: the mean embedding of an aligned face set, or of a clip's faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelab.core.errors import InputError
from facelab.core.types import F64
from facelab.evaluate.frames import frame_count, iter_selected, sample_indices
from facelab.extract.analyze import FrameAnalyzer
from facelab.extract.options import ExtractOptions
from facelab.face.identity import Embedder, Embedding
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import read_face


def faceset_embedding(folder: Path, embedder: Embedder, limit: int = 200) -> tuple[Embedding, int]:
    """Mean identity embedding of up to `limit` faces (spread over the set) of an aligned folder, and how
    many faces it averages. A face whose record holds an embedding (extract --only-like) uses it;
    the others are embedded from the aligned image and its landmarks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder of aligned faces", folder)
    faces = scan_faces(folder).faces
    if not faces:
        raise InputError("no aligned faces in this folder (extract the src faces first: facelab extract)", folder)
    picks = [faces[i] for i in sample_indices(len(faces), limit)]
    embeddings = []
    for path, rec in picks:
        if rec.identity is not None:
            embeddings.append(np.asarray(rec.identity, dtype=np.float64))
            continue
        bgr, rec = read_face(path)
        embeddings.append(embedder.embed(np.ascontiguousarray(bgr[..., ::-1]), rec.landmarks_array()))
    return np.mean(embeddings, axis=0), len(embeddings)


def clip_embeddings(source: Path, embedder: Embedder, frames: int = 10,
                    analyzer: FrameAnalyzer | None = None) -> F64:
    """Identity embeddings (one row per frame) of the largest face on `frames` frames spread evenly over
    a video or frame folder; frames without a face are skipped. Their mean is the clip's identity."""
    analyzer = analyzer or FrameAnalyzer(ExtractOptions(workers=1))
    embeddings = []
    for _, img in iter_selected(source, sample_indices(frame_count(source), frames)):
        faces = analyzer.analyze(img)
        if faces:
            embeddings.append(embedder.embed(img, faces[0].landmarks))
    if not embeddings:
        raise InputError("no face found on any sampled frame", source)
    return np.stack(embeddings)

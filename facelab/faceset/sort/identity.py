"""Who a faceset is of: the set's main identity, and reference identities given as images or faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelab.core.choices import IMAGE_EXTENSIONS
from facelab.core.errors import InputError
from facelab.core.types import FloatArray
from facelab.face.identity import Embedder, create_embedder
from facelab.faceset.record import NotAFaceError, read_face

_BLOCK = 1024


def main_identity(embeddings: FloatArray, threshold: float) -> FloatArray:
    """The centre of the largest group of same-person embeddings: the face with the most neighbours
    within ``threshold`` (ties: the smallest mean distance to them), averaged with those neighbours.

    Unlike the plain mean, this is not pulled towards other people as long as the main person's
    faces are the largest group.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or len(emb) == 0:
        raise ValueError("need a non-empty (n, d) array of embeddings")
    norms = np.sum(emb * emb, axis=1)
    best_count, best_mean, best = -1, np.inf, 0
    for start in range(0, len(emb), _BLOCK):
        rows = emb[start:start + _BLOCK]
        sq = norms[start:start + _BLOCK, None] + norms[None, :] - 2.0 * rows @ emb.T
        dist = np.sqrt(np.maximum(sq, 0.0))
        close = dist <= threshold
        counts = close.sum(axis=1)
        means = np.where(close, dist, 0.0).sum(axis=1) / np.maximum(counts, 1)
        for offset in range(len(rows)):
            c, m = int(counts[offset]), float(means[offset])
            if c > best_count or (c == best_count and m < best_mean):
                best_count, best_mean, best = c, m, start + offset
    members = np.linalg.norm(emb - emb[best], axis=1) <= threshold
    centre: FloatArray = emb[members].mean(axis=0)
    return centre


def _aligned_embedding(path: Path, embedder: Embedder | None) -> tuple[FloatArray | None, Embedder | None]:
    """The identity of an aligned face file (its record's, or computed), or None when it is not one."""
    try:
        bgr, record = read_face(path)
    except NotAFaceError:
        return None, embedder
    if record.identity is not None:
        return np.asarray(record.identity, dtype=np.float64), embedder
    embedder = embedder if embedder is not None else create_embedder()
    return embedder.embed(np.ascontiguousarray(bgr[:, :, ::-1]), record.landmarks_array()), embedder


def reference_identity(path: Path) -> FloatArray:
    """The mean identity of a reference: an aligned face file, a still image (its largest face), or a
    folder of either. Raises InputError when no face is found."""
    from facelab.face.reference import reference_embedding

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise InputError("no images in the reference folder", path)
    elif path.is_file():
        files = [path]
    else:
        raise InputError("reference image or folder not found", path)
    vectors: list[FloatArray] = []
    embedder: Embedder | None = None
    for file in files:
        vector, embedder = _aligned_embedding(file, embedder)
        if vector is None:
            try:
                vector = reference_embedding(file)
            except InputError:
                if len(files) == 1:
                    raise
                continue  # a still without a face in a reference folder: the others decide
        vectors.append(vector)
    if not vectors:
        raise InputError("no face found in the reference image(s)", path)
    out: FloatArray = np.mean(vectors, axis=0)
    return out

"""Identity embeddings behind one Protocol: dlib's ResNet face descriptor (128-d, L2 distance; the
metric the DeepFaceLab paper uses for verification; dlib's same-person threshold is 0.6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import dlib
import numpy as np

from facelab.core.registry import Registry
from facelab.core.types import F64, Image, Points
from facelab.face.models import dlib_model

Embedding = F64
SAME_PERSON_THRESHOLD = 0.6


class Embedder(Protocol):
    name: str
    dims: int

    def embed(self, image: Image, landmarks: Points) -> Embedding:
        """The identity embedding of the face with these 68 landmarks in an RGB image."""
        ...


class DlibResNetEmbedder:
    name = "dlib"
    dims = 128

    def __init__(self, jitter: int = 0) -> None:
        self._net = dlib.face_recognition_model_v1(str(dlib_model("dlib_face_recognition_resnet_model_v1.dat")))
        self.jitter = jitter

    def embed(self, image: Image, landmarks: Points) -> Embedding:
        lm = np.asarray(landmarks)
        lo, hi = lm.min(axis=0), lm.max(axis=0)
        rect = dlib.rectangle(int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
        shape = dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in lm])
        desc = self._net.compute_face_descriptor(np.ascontiguousarray(image), shape, self.jitter)
        return np.array(desc, dtype=np.float64)


EMBEDDERS: Registry[Callable[[], Embedder]] = Registry("identity model")
EMBEDDERS.register("dlib", DlibResNetEmbedder)


def create_embedder(name: str = "dlib") -> Embedder:
    return EMBEDDERS.get(name)()


def distance(a: Embedding, b: Embedding) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))

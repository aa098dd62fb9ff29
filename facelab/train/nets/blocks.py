"""Building blocks of the autoencoders: activations, down/upscale convolutions, residual blocks, pixel norm.

Every block takes ``cos``: False gives leaky ReLU (slope 0.1), True gives the ``-c`` modifier's x*cos(x).
Convolutions use "same" padding (kernel // 2), so a Downscale halves and an Upscale doubles the side exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEAKY_SLOPE = 0.1


class CosActivation(nn.Module):
    """x * cos(x): the ``-c`` modifier's activation."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.cos(x)


def activation(cos: bool = False) -> nn.Module:
    """The activation used everywhere in the autoencoders: leaky ReLU 0.1, or x*cos(x) with ``-c``."""
    return CosActivation() if cos else nn.LeakyReLU(LEAKY_SLOPE)


class Downscale(nn.Module):
    """Conv (stride 2, "same" padding) + activation: halves the side."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5, *, cos: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=2, padding=kernel // 2)
        self.act = activation(cos)

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.act(self.conv(x))
        return y


class Upscale(nn.Module):
    """Conv to 4*out channels + activation + depth-to-space (pixel shuffle 2): doubles the side."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, *, cos: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * 4, kernel, padding=kernel // 2)
        self.act = activation(cos)

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.act(self.conv(x))
        return F.pixel_shuffle(y, 2)


class ResidualBlock(nn.Module):
    """conv - act - conv, add the input, act. Keeps channels and side."""

    def __init__(self, ch: int, kernel: int = 3, *, cos: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(ch, ch, kernel, padding=kernel // 2)
        self.act1 = activation(cos)
        self.act2 = activation(cos)

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.conv2(self.act1(self.conv1(x)))
        out: Tensor = self.act2(x + y)
        return out


class PixelNorm(nn.Module):
    """x / sqrt(mean(x^2 over dim 1) + eps): channels of a feature map, or features of a flat vector."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # the mean of squares is taken in fp32 so that bf16/fp16 autocast does not lose the scale
        scale = torch.rsqrt(x.float().square().mean(dim=1, keepdim=True) + self.eps)
        return x * scale.to(x.dtype)


Dense = nn.Linear
"""A fully connected layer is a plain ``nn.Linear``."""

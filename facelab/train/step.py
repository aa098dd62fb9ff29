"""One training step's losses, as a pure function of the network outputs and the batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from facelab.train import losses as L
from facelab.train.options import TrainOptions
from facelab.train.perceptual import FeatureLoss


@dataclass
class SideBatch:
    warped: Tensor
    target: Tensor
    mask: Tensor
    em_mask: Tensor


def side_loss(pred: Tensor, pred_mask: Tensor, b: SideBatch, opts: TrainOptions,
              features: FeatureLoss | None = None) -> tuple[Tensor, Tensor]:
    """(reconstruction loss, mask loss) for one side; `features` adds the perceptual term."""
    r = opts.resolution
    target = b.target
    if opts.blur_out_mask:
        target = L.blur_out(target, b.mask, r)
    if opts.masked_training:
        m = L.blur_mask(b.mask, r)
        pred_in, target_in = pred * m, target * m
    else:
        pred_in, target_in = pred, target
    rec = L.reconstruction_loss(pred_in, target_in, r)
    if features is not None and opts.perceptual_power > 0:
        rec = rec + opts.perceptual_power * features(pred_in, target_in)
    if opts.eyes_mouth_prio:
        rec = rec + L.eyes_mouth_loss(pred, target, b.em_mask)
    return rec, L.mask_loss(pred_mask, b.mask)


def style_terms(swap: Tensor, dst: SideBatch, opts: TrainOptions) -> Tensor:
    """face_style_power / bg_style_power: pull the swapped face towards dst's colours and lighting, and
    its background towards dst's background (DFL's style options, as loss weights in percent)."""
    total = torch.zeros((), device=swap.device)
    m = L.blur_mask(dst.mask, opts.resolution)
    if opts.face_style_power > 0:
        total = total + opts.face_style_power / 100 * 10 * L.style_loss(swap * m, dst.target * m, opts.resolution)
    if opts.bg_style_power > 0:
        inv = 1 - m
        total = total + opts.bg_style_power / 100 * L.reconstruction_loss(swap * inv, dst.target * inv,
                                                                          opts.resolution)
    return total

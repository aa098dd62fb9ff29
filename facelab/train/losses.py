"""Training losses: DSSIM (multi-scale at high resolution) + MSE, masks, eyes/mouth priority, style,
and the adversarial terms. All operate on NCHW float tensors in [0, 1]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).to(dtype)
    return w.expand(channels, 1, size, size).contiguous()


def dssim(a: Tensor, b: Tensor, kernel_size: int, max_val: float = 1.0) -> Tensor:
    """Structural dissimilarity (1 - SSIM) / 2, averaged over the batch; Gaussian window of kernel_size."""
    k = max(3, kernel_size | 1)
    c = a.shape[1]
    win = _gaussian_window(k, 1.5, c, a.device, a.dtype)  # sigma 1.5 as in the SSIM paper; k sets the extent
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, win, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    s_aa = blur(a * a) - mu_aa
    s_bb = blur(b * b) - mu_bb
    s_ab = blur(a * b) - mu_ab
    ssim = ((2 * mu_ab + c1) * (2 * s_ab + c2)) / ((mu_aa + mu_bb + c1) * (s_aa + s_bb + c2))
    return ((1 - ssim) / 2).mean()


def dssim_kernels(resolution: int) -> list[int]:
    """DSSIM kernel sizes scaled with resolution: one scale below 256 px, two at 256 px and above."""
    k = max(3, int(resolution / 11.6))
    return [k, max(3, int(resolution / 23.2))] if resolution >= 256 else [k]


def reconstruction_loss(pred: Tensor, target: Tensor, resolution: int) -> Tensor:
    """10 x DSSIM (averaged over scales) + 10 x MSE, as DeepFaceLab weighs them."""
    ks = dssim_kernels(resolution)
    d = sum((dssim(pred, target, k) for k in ks), torch.zeros((), device=pred.device, dtype=pred.dtype)) / len(ks)
    return 10 * d + 10 * F.mse_loss(pred, target)


def blur_mask(mask: Tensor, resolution: int) -> Tensor:
    """A softened mask for masked training: the loss fades out over a few pixels at the face border."""
    k = max(3, (resolution // 32) | 1)
    return F.avg_pool2d(mask, k, stride=1, padding=k // 2, count_include_pad=False).clamp(0, 1)


def blur_out(image: Tensor, mask: Tensor, resolution: int) -> Tensor:
    """Replace what lies outside the mask by a smooth extension of the face's border colours
    (`blur_out_mask`): the background near the face stops carrying detail the model would learn."""
    k = max(3, (resolution // 8) | 1)
    num = F.avg_pool2d(image * mask, k, stride=1, padding=k // 2)
    den = F.avg_pool2d(mask, k, stride=1, padding=k // 2)
    fill = num / den.clamp_min(1e-4)
    return image * mask + fill * (1 - mask)


def eyes_mouth_loss(pred: Tensor, target: Tensor, em_mask: Tensor) -> Tensor:
    """Extra weight on eyes and mouth (`eyes_mouth_prio`): mean absolute error inside the region x 300."""
    return 300 * (torch.abs(pred - target) * em_mask).mean()


def mask_loss(pred_mask: Tensor, target_mask: Tensor) -> Tensor:
    return 10 * F.mse_loss(pred_mask, target_mask)


def style_loss(pred: Tensor, target: Tensor, resolution: int) -> Tensor:
    """Local colour statistics (mean and std over a window) of pred matched to target's."""
    k = max(3, (resolution // 16) | 1)

    def stats(x: Tensor) -> tuple[Tensor, Tensor]:
        mu = F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)
        var = F.avg_pool2d(x * x, k, stride=1, padding=k // 2, count_include_pad=False) - mu * mu
        return mu, torch.sqrt(var.clamp_min(1e-6))

    (mp, sp), (mt, st) = stats(pred), stats(target)
    return F.mse_loss(mp, mt) + F.mse_loss(sp, st)


def gan_generator_loss(fake_logits: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def gan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return (real + fake) / 2


def psnr(pred: Tensor, target: Tensor) -> float:
    mse = float(F.mse_loss(pred.float(), target.float()))
    return 10 * math.log10(1.0 / max(mse, 1e-10))

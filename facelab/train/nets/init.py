"""Weight initialisation at model creation: PyTorch defaults, He (Kaiming) normal, or convolution-aware (CA).

CA (Aghajanyan 2017, "Convolution Aware Initialization") builds each conv's filters in the Fourier domain so that
the filters of one input channel are orthogonal to each other, instead of being independent white noise. Our
simple version, per conv weight (out, in, kh, kw):

1. the kernel's real-FFT spectrum has F = kh * (kw//2 + 1) complex coefficients;
2. for every input channel, draw random complex Gaussian F x F matrices and orthonormalise them with a QR
   (a random unitary matrix); stack blocks of F rows until there are ``out`` rows (rows of one block are
   orthonormal, so filters are orthogonal in groups of F);
3. inverse real FFT each row to a kh x kw spatial filter (the inverse real FFT keeps only the Hermitian part
   of a spectrum, so the spatial filters are near-orthogonal, not exactly);
4. rescale the whole weight to the He variance 2 / fan_in (leaky-ReLU gain).

1x1 convs have a single frequency, so they get an orthogonal (out x in) matrix instead, at the same scale.
Linear layers get He normal under both "he" and "ca"; biases start at zero.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from facelab.core.choices import INITS, InitName
from facelab.core.errors import InputError
from facelab.train.nets.blocks import LEAKY_SLOPE

_HE_GAIN2 = 2.0 / (1.0 + LEAKY_SLOPE**2)  # gain^2 of leaky ReLU: variance 2 / ((1 + a^2) fan_in)


def he_std(fan_in: int) -> float:
    """The He (Kaiming) standard deviation for our leaky ReLU and this fan-in."""
    return math.sqrt(_HE_GAIN2 / fan_in)


def conv_aware_weight(shape: tuple[int, int, int, int], generator: torch.Generator | None = None) -> Tensor:
    """A convolution-aware weight of ``shape`` (out, in, kh, kw), float32, with the He standard deviation."""
    out_ch, in_ch, kh, kw = shape
    if kh * kw == 1:
        w = torch.empty(out_ch, in_ch)
        nn.init.orthogonal_(w, generator=generator)
        w = w.reshape(shape)
    else:
        fh, fw = kh, kw // 2 + 1
        n_freq = fh * fw
        blocks = []
        for _ in range(-(-out_ch // n_freq)):
            z = torch.complex(torch.randn(in_ch, n_freq, n_freq, generator=generator),
                              torch.randn(in_ch, n_freq, n_freq, generator=generator))
            q, _ = torch.linalg.qr(z)  # a random unitary matrix per input channel: orthonormal rows
            blocks.append(q)
        spectra = torch.cat(blocks, dim=1)[:, :out_ch].reshape(in_ch, out_ch, fh, fw)
        w = torch.fft.irfft2(spectra, s=(kh, kw)).permute(1, 0, 2, 3)
    std = w.std()
    return (w * (he_std(in_ch * kh * kw) / std.clamp_min(1e-12))).contiguous()


@torch.no_grad()
def init_weights(model: nn.Module, method: InitName, generator: torch.Generator | None = None) -> None:
    """Initialise every Conv2d and Linear of ``model`` in place.

    "default": PyTorch's own initialisation (the layers are reset). "he": Kaiming normal (leaky-ReLU 0.1 gain)
    for convs and linears, zero biases. "ca": convolution-aware convs, Kaiming normal linears, zero biases.
    """
    if method not in INITS:
        raise InputError(f"unknown init {method!r}: expected one of {', '.join(INITS)}")
    for m in model.modules():
        if not isinstance(m, nn.Conv2d | nn.Linear):
            continue
        if method == "default":
            m.reset_parameters()
            continue
        if method == "ca" and isinstance(m, nn.Conv2d):
            out_ch, in_ch, kh, kw = m.weight.shape
            m.weight.copy_(conv_aware_weight((out_ch, in_ch, kh, kw), generator))
        else:
            nn.init.kaiming_normal_(m.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu", generator=generator)
        if m.bias is not None:
            nn.init.zeros_(m.bias)

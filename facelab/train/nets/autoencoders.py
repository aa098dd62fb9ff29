"""The parts of the SAEHD-like autoencoders (encoder, inter, decoder) and their common base, ``AutoEncoder``;
DF (``df.py``) and LIAE (``liae.py``) build on them and register in ``arch.ARCHITECTURES``.

Shapes, for resolution R (``low`` = R/16, or R/32 with ``-d``):

* Encoder: 4 Downscale (kernel 5) to e, 2e, 4e, 8e channels -> (8e, R/16, R/16), flattened; ``-t`` adds a
  ResidualBlock after every downscale, ``-u`` pixel-normalises the flat features.
* Inter: Dense(features -> ae_dims), Dense(ae_dims -> low*low*C), reshape to (C, low, low), Upscale -> (C, 2low, 2low).
  DF: one Inter, C = ae_dims. LIAE: InterAB and InterB, C = 2*ae_dims each; the decoder reads two of them
  concatenated (4*ae_dims channels).
* Decoder: 3 Upscale to 8d, 4d, 2d channels, each followed by a ResidualBlock (two with ``-t``), then a conv to 3
  channels; a parallel mask branch of 3 Upscale (8m, 4m, 2m channels) and a conv to 1 channel. Without ``-d`` the
  side goes R/8 -> R. With ``-d`` it goes R/16 -> R/2, and the final convs give 4x the channels (12 and 4) that
  a depth-to-space turns into R x R. Faces and masks end in a sigmoid.

DF: shared encoder and inter, one decoder per side; the swap is decoder_src applied to dst's code.
LIAE: shared encoder, InterAB (both sides) and InterB (dst only), one shared decoder:
src code = AB(src)||AB(src), dst code = AB(dst)||B(dst), swap code = AB(dst)||AB(dst).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facelab.train.nets.blocks import Dense, Downscale, PixelNorm, ResidualBlock, Upscale

if TYPE_CHECKING:
    from facelab.train.nets.arch import ArchSpec

Side = Literal["src", "dst"]


class AEOutput(NamedTuple):
    """One training step's outputs. Faces (B,3,R,R) and masks (B,1,R,R) are in [0,1].

    ``src_code``/``dst_code`` are the latent codes the TrueFace discriminator sees: the Inter output for DF,
    the InterAB output for LIAE (shape ``AutoEncoder.code_shape``).
    """

    src_rec: Tensor
    src_mask: Tensor
    dst_rec: Tensor
    dst_mask: Tensor
    swap: Tensor | None  # None when forward(..., swap=False)
    swap_mask: Tensor | None
    src_code: Tensor
    dst_code: Tensor


class Encoder(nn.Module):
    """4 Downscale (kernel 5) to e, 2e, 4e, 8e channels (+ a ResidualBlock after each with -t), flattened."""

    def __init__(self, in_ch: int, e_dims: int, resolution: int, *, t: bool, u: bool, cos: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_ch
        for mult in (1, 2, 4, 8):
            ch = e_dims * mult
            layers.append(Downscale(prev, ch, 5, cos=cos))
            if t:
                layers.append(ResidualBlock(ch, cos=cos))
            prev = ch
        self.body = nn.Sequential(*layers)
        self.norm: nn.Module = PixelNorm() if u else nn.Identity()
        self.out_features = prev * (resolution // 16) ** 2

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.body(x)
        out: Tensor = self.norm(torch.flatten(y, 1))
        return out


class Inter(nn.Module):
    """Dense -> Dense -> reshape to (out_ch, low, low) -> Upscale: a (out_ch, 2*low, 2*low) code."""

    def __init__(self, in_features: int, ae_dims: int, out_ch: int, low: int, *, cos: bool) -> None:
        super().__init__()
        self.out_ch = out_ch
        self.low = low
        self.dense1 = Dense(in_features, ae_dims)
        self.dense2 = Dense(ae_dims, low * low * out_ch)
        self.upscale = Upscale(out_ch, out_ch, cos=cos)

    @property
    def out_res(self) -> int:
        return 2 * self.low

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.dense2(self.dense1(x))
        out: Tensor = self.upscale(y.reshape(-1, self.out_ch, self.low, self.low))
        return out


class Decoder(nn.Module):
    """Face and mask branches from a code to (face (B,3,..), mask (B,1,..)), 8x the code side (-d: 16x)."""

    def __init__(self, in_ch: int, d_dims: int, d_mask_dims: int, *, t: bool, d: bool, cos: bool) -> None:
        super().__init__()
        self.d = d
        face: list[nn.Module] = []
        mask: list[nn.Module] = []
        prev, prev_m = in_ch, in_ch
        for mult in (8, 4, 2):
            ch, ch_m = d_dims * mult, d_mask_dims * mult
            face.append(Upscale(prev, ch, cos=cos))
            face.extend(ResidualBlock(ch, cos=cos) for _ in range(2 if t else 1))
            mask.append(Upscale(prev_m, ch_m, cos=cos))
            prev, prev_m = ch, ch_m
        self.face_body = nn.Sequential(*face)
        self.mask_body = nn.Sequential(*mask)
        # -d: the final convs give 4x the channels, and depth-to-space doubles the side
        kernel, mult = (3, 4) if d else (1, 1)
        self.face_out = nn.Conv2d(prev, 3 * mult, kernel, padding=kernel // 2)
        self.mask_out = nn.Conv2d(prev_m, 1 * mult, kernel, padding=kernel // 2)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        face: Tensor = self.face_out(self.face_body(z))
        if self.d:
            face = F.pixel_shuffle(face, 2)
        return torch.sigmoid(face), self.predict_mask(z)

    def predict_mask(self, z: Tensor) -> Tensor:
        """The mask branch alone (the face branch holds most of the decoder's work)."""
        mask: Tensor = self.mask_out(self.mask_body(z))
        if self.d:
            mask = F.pixel_shuffle(mask, 2)
        return torch.sigmoid(mask)


class AutoEncoder(nn.Module):
    """Base of the DF and LIAE autoencoders. Inputs are float NCHW tensors in [0,1], R x R."""

    encoder: Encoder

    def __init__(self, spec: ArchSpec, resolution: int) -> None:
        super().__init__()
        self.spec = spec
        self.resolution = resolution
        self.low = resolution // (32 if spec.d else 16)

    @property
    def code_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the codes in ``AEOutput.src_code``/``dst_code`` (the TrueFace discriminator's input)."""
        raise NotImplementedError

    def forward(self, src: Tensor, dst: Tensor, swap: bool = True) -> AEOutput:
        """Reconstruct both sides and (``swap``) swap dst: dst's expression and pose with src's identity.
        Training asks for the swap only when a loss uses it (the style powers): its decoding is a third
        (LIAE) or a quarter (DF) of the decoder work, forward and backward."""
        raise NotImplementedError

    def swap(self, dst: Tensor) -> tuple[Tensor, Tensor]:
        """(face, mask) of dst's faces with src's identity: for previews and the merger."""
        raise NotImplementedError

    def reconstruct(self, x: Tensor, side: Side) -> tuple[Tensor, Tensor]:
        """(face, mask) of x reconstructed through the given side's path."""
        raise NotImplementedError

    def predict(self, x: Tensor, reverse: bool = False, own_mask: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """What a merge needs, with x encoded once: (face, mask) of the swap (reverse: of dst's path on src
        faces), and with ``own_mask`` the mask x's own side predicts (its mask branch only)."""
        raise NotImplementedError


def split_batch(x: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` items of a batch and the rest."""
    return x[:n], x[n:]

"""The DF and LIAE autoencoders (SAEHD-like) and their architecture string ("df", "liae-udtc", ...).

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

from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facelab.core.errors import InputError
from facelab.train.nets.blocks import Dense, Downscale, PixelNorm, ResidualBlock, Upscale

ArchKind = Literal["df", "liae"]
ARCH_KINDS: tuple[str, ...] = get_args(ArchKind)
MODIFIERS = "udtc"
Side = Literal["src", "dst"]

MIN_RESOLUTION = 64
MAX_RESOLUTION = 640


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: the kind (df or liae) and its modifiers.

    u: pixel-normalised encoder output. d: double resolution (half-size latent, depth-to-space at the end).
    t: deeper encoder and decoder (more residual blocks). c: x*cos(x) activation instead of leaky ReLU.
    """

    kind: ArchKind
    u: bool = False
    d: bool = False
    t: bool = False
    c: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ARCH_KINDS:
            raise InputError(f"unknown architecture kind {self.kind!r}: expected one of {', '.join(ARCH_KINDS)}")

    @property
    def name(self) -> str:
        """The canonical string: kind, then the modifiers in the order u, d, t, c ("liae-ud")."""
        mods = "".join(m for m in MODIFIERS if getattr(self, m))
        return f"{self.kind}-{mods}" if mods else self.kind

    def __str__(self) -> str:
        return self.name


def parse_arch(text: str) -> ArchSpec:
    """Parse "df", "liae", "df-ud", "liae-tcdu", ...: a kind, then optionally a dash and modifiers from u, d, t, c."""
    usage = "expected 'df' or 'liae', optionally followed by a dash and any of the modifiers u, d, t, c (e.g. liae-ud)"
    if not isinstance(text, str):
        raise InputError(f"architecture must be a string, got {type(text).__name__}: {usage}")
    kind, dash, mods = text.strip().lower().partition("-")
    if kind not in ARCH_KINDS:
        raise InputError(f"unknown architecture {text!r}: {usage}")
    if dash and not mods:
        raise InputError(f"architecture {text!r} has a dash but no modifiers: {usage}")
    bad = sorted({m for m in mods if m not in MODIFIERS})
    if bad:
        raise InputError(f"architecture {text!r} has unknown modifier(s) {', '.join(bad)}: {usage}")
    repeated = sorted({m for m in mods if mods.count(m) > 1})
    if repeated:
        raise InputError(f"architecture {text!r} repeats modifier(s) {', '.join(repeated)}: {usage}")
    return ArchSpec(kind="df" if kind == "df" else "liae", u="u" in mods, d="d" in mods, t="t" in mods, c="c" in mods)


def _as_spec(arch: str | ArchSpec) -> ArchSpec:
    return arch if isinstance(arch, ArchSpec) else parse_arch(arch)


def validate_resolution(arch: str | ArchSpec, resolution: int) -> ArchSpec:
    """Check the resolution for the architecture: 64..640, a multiple of 16 (of 32 with -d). Returns the spec."""
    spec = _as_spec(arch)
    step = 32 if spec.d else 16
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise InputError(f"resolution must be an integer, got {resolution!r}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION or resolution % step:
        why = f"a multiple of {step}" + (" (the -d modifier halves the latent side)" if spec.d else "")
        raise InputError(f"resolution {resolution} is not valid for {spec.name}: it must be "
                         f"{MIN_RESOLUTION}..{MAX_RESOLUTION} and {why}")
    return spec


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


def _split(x: Tensor, n: int) -> tuple[Tensor, Tensor]:
    return x[:n], x[n:]


class DFAutoEncoder(AutoEncoder):
    """DF: shared encoder and inter, decoder_src and decoder_dst. swap = decoder_src(inter(encoder(dst)))."""

    def __init__(self, spec: ArchSpec, resolution: int, ae_dims: int, e_dims: int, d_dims: int,
                 d_mask_dims: int) -> None:
        super().__init__(spec, resolution)
        self.encoder = Encoder(3, e_dims, resolution, t=spec.t, u=spec.u, cos=spec.c)
        self.inter = Inter(self.encoder.out_features, ae_dims, ae_dims, self.low, cos=spec.c)
        self.decoder_src = Decoder(ae_dims, d_dims, d_mask_dims, t=spec.t, d=spec.d, cos=spec.c)
        self.decoder_dst = Decoder(ae_dims, d_dims, d_mask_dims, t=spec.t, d=spec.d, cos=spec.c)

    @property
    def code_shape(self) -> tuple[int, int, int]:
        return (self.inter.out_ch, self.inter.out_res, self.inter.out_res)

    def _code(self, x: Tensor) -> Tensor:
        code: Tensor = self.inter(self.encoder(x))
        return code

    def forward(self, src: Tensor, dst: Tensor, swap: bool = True) -> AEOutput:
        n = src.shape[0]
        codes = self._code(torch.cat([src, dst]))  # one pass for both sides
        src_code, dst_code = _split(codes, n)
        dst_rec, dst_mask = self.decoder_dst(dst_code)
        if not swap:
            src_rec, src_mask = self.decoder_src(src_code)
            return AEOutput(src_rec, src_mask, dst_rec, dst_mask, None, None, src_code, dst_code)
        faces, masks = self.decoder_src(codes)  # src reconstruction and the swap in one pass
        src_rec, swapped = _split(faces, n)
        src_mask, swap_mask = _split(masks, n)
        return AEOutput(src_rec, src_mask, dst_rec, dst_mask, swapped, swap_mask, src_code, dst_code)

    def swap(self, dst: Tensor) -> tuple[Tensor, Tensor]:
        out: tuple[Tensor, Tensor] = self.decoder_src(self._code(dst))
        return out

    def reconstruct(self, x: Tensor, side: Side) -> tuple[Tensor, Tensor]:
        decoder = self.decoder_src if side == "src" else self.decoder_dst
        out: tuple[Tensor, Tensor] = decoder(self._code(x))
        return out

    def predict(self, x: Tensor, reverse: bool = False, own_mask: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        code = self._code(x)
        render, own = (self.decoder_dst, self.decoder_src) if reverse else (self.decoder_src, self.decoder_dst)
        face, mask = render(code)
        return face, mask, own.predict_mask(code) if own_mask else None


class LIAEAutoEncoder(AutoEncoder):
    """LIAE: shared encoder, InterAB, InterB, one decoder; codes AB||AB (src), AB||B (dst), AB(dst)||AB(dst) (swap)."""

    def __init__(self, spec: ArchSpec, resolution: int, ae_dims: int, e_dims: int, d_dims: int,
                 d_mask_dims: int) -> None:
        super().__init__(spec, resolution)
        self.encoder = Encoder(3, e_dims, resolution, t=spec.t, u=spec.u, cos=spec.c)
        feats = self.encoder.out_features
        self.inter_ab = Inter(feats, ae_dims, ae_dims * 2, self.low, cos=spec.c)
        self.inter_b = Inter(feats, ae_dims, ae_dims * 2, self.low, cos=spec.c)
        self.decoder = Decoder(ae_dims * 4, d_dims, d_mask_dims, t=spec.t, d=spec.d, cos=spec.c)

    @property
    def code_shape(self) -> tuple[int, int, int]:
        return (self.inter_ab.out_ch, self.inter_ab.out_res, self.inter_ab.out_res)

    def forward(self, src: Tensor, dst: Tensor, swap: bool = True) -> AEOutput:
        n, m = src.shape[0], dst.shape[0]
        feats: Tensor = self.encoder(torch.cat([src, dst]))
        ab: Tensor = self.inter_ab(feats)
        ab_src, ab_dst = _split(ab, n)
        b_dst: Tensor = self.inter_b(feats[n:])
        codes = [
            torch.cat([ab_src, ab_src], dim=1),  # src
            torch.cat([ab_dst, b_dst], dim=1),  # dst
        ]
        if swap:
            codes.append(torch.cat([ab_dst, ab_dst], dim=1))
        faces, masks = self.decoder(torch.cat(codes))
        src_rec, dst_rec, *swapped = faces.split([n, m, m][:len(codes)])
        src_mask, dst_mask, *swap_mask = masks.split([n, m, m][:len(codes)])
        return AEOutput(src_rec, src_mask, dst_rec, dst_mask, swapped[0] if swap else None,
                        swap_mask[0] if swap else None, ab_src, ab_dst)

    def swap(self, dst: Tensor) -> tuple[Tensor, Tensor]:
        ab: Tensor = self.inter_ab(self.encoder(dst))
        out: tuple[Tensor, Tensor] = self.decoder(torch.cat([ab, ab], dim=1))
        return out

    def reconstruct(self, x: Tensor, side: Side) -> tuple[Tensor, Tensor]:
        feats: Tensor = self.encoder(x)
        ab: Tensor = self.inter_ab(feats)
        other: Tensor = ab if side == "src" else self.inter_b(feats)
        out: tuple[Tensor, Tensor] = self.decoder(torch.cat([ab, other], dim=1))
        return out

    def predict(self, x: Tensor, reverse: bool = False, own_mask: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        if reverse:
            raise InputError("LIAE has no reverse path: its swap renders identity from the shared AB code")
        feats: Tensor = self.encoder(x)
        ab: Tensor = self.inter_ab(feats)
        face, mask = self.decoder(torch.cat([ab, ab], dim=1))
        own = self.decoder.predict_mask(torch.cat([ab, self.inter_b(feats)], dim=1)) if own_mask else None
        return face, mask, own


def create_autoencoder(arch: str | ArchSpec, resolution: int, ae_dims: int, e_dims: int, d_dims: int,
                       d_mask_dims: int) -> AutoEncoder:
    """Build the DF or LIAE autoencoder for ``arch`` at ``resolution`` (validated) with PyTorch's default init."""
    spec = validate_resolution(arch, resolution)
    for name, value in (("ae_dims", ae_dims), ("e_dims", e_dims), ("d_dims", d_dims), ("d_mask_dims", d_mask_dims)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    cls = DFAutoEncoder if spec.kind == "df" else LIAEAutoEncoder
    return cls(spec, resolution, ae_dims, e_dims, d_dims, d_mask_dims)

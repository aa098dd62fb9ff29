"""LIAE: a shared encoder, InterAB (both sides) and InterB (dst only), one shared decoder: src code =
AB(src)||AB(src), dst code = AB(dst)||B(dst), swap code = AB(dst)||AB(dst). The identity comes from the
shared AB code, so there is no reverse (dst->src) path."""

from __future__ import annotations

import torch
from torch import Tensor

from facelab.core.errors import InputError
from facelab.train.nets.arch import ARCHITECTURES, Architecture, ArchSpec
from facelab.train.nets.autoencoders import AEOutput, AutoEncoder, Decoder, Encoder, Inter, Side, split_batch


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
        ab_src, ab_dst = split_batch(ab, n)
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


ARCHITECTURES.register("liae", Architecture(LIAEAutoEncoder, reverse=False,
                                            summary="one shared decoder over an AB || B code (no dst->src path)"))

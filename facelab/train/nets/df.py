"""DF: a shared encoder and inter, one decoder per side; the swap is decoder_src on dst's code, and the
reverse (dst->src) is decoder_dst on src's code."""

from __future__ import annotations

import torch
from torch import Tensor

from facelab.train.nets.arch import ARCHITECTURES, Architecture, ArchSpec
from facelab.train.nets.autoencoders import AEOutput, AutoEncoder, Decoder, Encoder, Inter, Side, split_batch


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
        src_code, dst_code = split_batch(codes, n)
        dst_rec, dst_mask = self.decoder_dst(dst_code)
        if not swap:
            src_rec, src_mask = self.decoder_src(src_code)
            return AEOutput(src_rec, src_mask, dst_rec, dst_mask, None, None, src_code, dst_code)
        faces, masks = self.decoder_src(codes)  # src reconstruction and the swap in one pass
        src_rec, swapped = split_batch(faces, n)
        src_mask, swap_mask = split_batch(masks, n)
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


ARCHITECTURES.register("df", Architecture(DFAutoEncoder, reverse=True,
                                          summary="one decoder per side (dst->src merging possible)"))

"""Network definitions of the training engine: the architecture registry with DF and LIAE, discriminators,
weight init.

>>> model = create_autoencoder("liae-ud", 128, ae_dims=256, e_dims=64, d_dims=64, d_mask_dims=22)
>>> out = model(src, dst)            # AEOutput: src_rec, src_mask, dst_rec, dst_mask, swap, swap_mask, codes
>>> face, mask = model.swap(dst)     # merge / preview
>>> ARCHITECTURES.get("df").reverse  # capabilities come from the registry
"""

from __future__ import annotations

from facelab.train.nets.arch import (
    ARCHITECTURES,
    MODIFIERS,
    Architecture,
    ArchSpec,
    create_autoencoder,
    parse_arch,
    validate_resolution,
)
from facelab.train.nets.autoencoders import AEOutput, AutoEncoder, Decoder, Encoder, Inter, Side
from facelab.train.nets.df import DFAutoEncoder  # registers "df"
from facelab.train.nets.discriminators import CodeDiscriminator, PatchDiscriminator, patch_layers, receptive_field
from facelab.train.nets.init import conv_aware_weight, init_weights
from facelab.train.nets.liae import LIAEAutoEncoder  # registers "liae"

__all__ = [
    "ARCHITECTURES",
    "MODIFIERS",
    "AEOutput",
    "ArchSpec",
    "Architecture",
    "AutoEncoder",
    "CodeDiscriminator",
    "DFAutoEncoder",
    "Decoder",
    "Encoder",
    "Inter",
    "LIAEAutoEncoder",
    "PatchDiscriminator",
    "Side",
    "conv_aware_weight",
    "create_autoencoder",
    "init_weights",
    "parse_arch",
    "patch_layers",
    "receptive_field",
    "validate_resolution",
]

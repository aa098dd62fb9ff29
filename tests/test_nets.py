"""Network definitions: every DF/LIAE variant at two sizes, code paths of the swap, discriminators, init."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facelab.core.errors import InputError
from facelab.train.nets import (
    AEOutput,
    ArchSpec,
    CodeDiscriminator,
    DFAutoEncoder,
    LIAEAutoEncoder,
    PatchDiscriminator,
    conv_aware_weight,
    create_autoencoder,
    init_weights,
    parse_arch,
    patch_layers,
    receptive_field,
    validate_resolution,
)
from facelab.train.nets.blocks import CosActivation, PixelNorm, Upscale
from facelab.train.nets.init import he_std

torch.set_num_threads(2)

ARCHS = [kind + ("-" + "".join(mods) if mods else "")
         for kind in ("df", "liae") for r in range(5) for mods in itertools.combinations("udtc", r)]
SMALL = {"ae_dims": 32, "e_dims": 16, "d_dims": 16, "d_mask_dims": 8}


def _batch(resolution: int, n: int = 2, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, resolution, resolution, generator=g), torch.rand(n, 3, resolution, resolution, generator=g)


def test_all_32_variants_listed() -> None:
    assert len(ARCHS) == 32 and len(set(ARCHS)) == 32
    assert {parse_arch(a).name for a in ARCHS} == set(ARCHS)


@pytest.mark.parametrize("resolution", [64, 128])
@pytest.mark.parametrize("arch", ARCHS)
def test_variant_shapes_range_and_gradients(arch: str, resolution: int) -> None:
    torch.manual_seed(0)
    model = create_autoencoder(arch, resolution, **SMALL)
    assert isinstance(model, DFAutoEncoder if arch.startswith("df") else LIAEAutoEncoder)
    assert model.spec == parse_arch(arch)
    src, dst = _batch(resolution)
    out = model(src, dst)
    assert isinstance(out, AEOutput)
    r = resolution
    for face in (out.src_rec, out.dst_rec, out.swap):
        assert face.shape == (2, 3, r, r)
    for mask in (out.src_mask, out.dst_mask, out.swap_mask):
        assert mask.shape == (2, 1, r, r)
    for t in (*out[:6],):
        assert torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1
    assert out.src_code.shape == out.dst_code.shape == (2, *model.code_shape)

    loss = (F.mse_loss(out.src_rec, src) + F.mse_loss(out.dst_rec, dst) + F.mse_loss(out.src_mask, src[:, :1])
            + F.mse_loss(out.dst_mask, dst[:, :1]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    first_conv = next(m for m in model.encoder.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0

    # swap() and reconstruct() agree with the batched forward pass
    with torch.no_grad():
        face, mask = model.swap(dst)
        assert torch.allclose(face, out.swap, atol=1e-5) and torch.allclose(mask, out.swap_mask, atol=1e-5)
        face, mask = model.reconstruct(dst, "dst")
        assert torch.allclose(face, out.dst_rec, atol=1e-5) and torch.allclose(mask, out.dst_mask, atol=1e-5)
        face, _ = model.reconstruct(src, "src")
        assert torch.allclose(face, out.src_rec, atol=1e-5)


def test_module_attributes() -> None:
    df = create_autoencoder("df", 64, **SMALL)
    assert isinstance(df, DFAutoEncoder)
    for attr in ("encoder", "inter", "decoder_src", "decoder_dst"):
        assert isinstance(getattr(df, attr), nn.Module)
    liae = create_autoencoder(ArchSpec("liae", u=True), 64, **SMALL)
    assert isinstance(liae, LIAEAutoEncoder)
    for attr in ("encoder", "inter_ab", "inter_b", "decoder"):
        assert isinstance(getattr(liae, attr), nn.Module)
    # LIAE: the decoder reads two concatenated Inter outputs of 2*ae_dims channels each
    assert liae.code_shape == (2 * SMALL["ae_dims"], 8, 8)
    assert liae.decoder.face_body[0].conv.in_channels == 4 * SMALL["ae_dims"]
    assert df.code_shape == (SMALL["ae_dims"], 8, 8)


def _perturb(module: nn.Module, zero: bool = False) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.zero_() if zero else p.add_(torch.randn_like(p) * 0.5)


@pytest.mark.parametrize("arch", ["liae", "liae-ud"])
def test_liae_swap_uses_ab_code(arch: str) -> None:
    torch.manual_seed(1)
    model = create_autoencoder(arch, 64, **SMALL)
    assert isinstance(model, LIAEAutoEncoder)
    src, dst = _batch(64)
    with torch.no_grad():
        before = model(src, dst)
        _perturb(model.inter_b, zero=True)
        after = model(src, dst)
        assert torch.equal(after.swap, before.swap) and torch.equal(after.swap_mask, before.swap_mask)
        assert torch.equal(after.src_rec, before.src_rec) and torch.equal(after.src_code, before.src_code)
        assert not torch.allclose(after.dst_rec, before.dst_rec)  # the dst path does read InterB
        # the swap code is AB(dst)||AB(dst)
        ab = model.inter_ab(model.encoder(dst))
        face, _ = model.decoder(torch.cat([ab, ab], dim=1))
        assert torch.allclose(face, after.swap, atol=1e-6)
        assert torch.allclose(after.dst_code, ab, atol=1e-6)
        _perturb(model.inter_ab)
        assert not torch.allclose(model(src, dst).swap, after.swap)


@pytest.mark.parametrize("arch", ["df", "df-ud"])
def test_df_swap_uses_decoder_src(arch: str) -> None:
    torch.manual_seed(2)
    model = create_autoencoder(arch, 64, **SMALL)
    assert isinstance(model, DFAutoEncoder)
    src, dst = _batch(64)
    with torch.no_grad():
        before = model(src, dst)
        face, _ = model.decoder_src(model.inter(model.encoder(dst)))
        assert torch.allclose(face, before.swap, atol=1e-6)
        _perturb(model.decoder_dst)
        after = model(src, dst)
        assert torch.equal(after.swap, before.swap) and torch.equal(after.src_rec, before.src_rec)
        assert not torch.allclose(after.dst_rec, before.dst_rec)
        _perturb(model.decoder_src)
        assert not torch.allclose(model(src, dst).swap, before.swap)


def test_channels_last_and_bf16_autocast() -> None:
    torch.manual_seed(3)
    for arch in ("df-ud", "liae-t"):
        model = create_autoencoder(arch, 64, **SMALL)
        src, dst = _batch(64)
        with torch.no_grad():
            ref = model(src, dst)
            model_cl = model.to(memory_format=torch.channels_last)
            out = model_cl(src.to(memory_format=torch.channels_last), dst.to(memory_format=torch.channels_last))
            for a, b in zip(ref, out, strict=True):
                assert torch.allclose(a, b, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(src, dst)
            loss = (F.mse_loss(out.src_rec.float(), src) + F.mse_loss(out.dst_rec.float(), dst)
                    + out.src_mask.float().mean() + out.dst_mask.float().mean())
        assert out.src_rec.dtype == torch.bfloat16
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# -- architecture strings and resolution ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "name"), [
    ("df", "df"), ("liae", "liae"), ("df-ud", "df-ud"), ("liae-udtc", "liae-udtc"), ("LIAE-CTDU", "liae-udtc"),
    ("df-t", "df-t"), (" df-dc ", "df-dc"), ("liae-cu", "liae-uc"),
])
def test_parse_arch(text: str, name: str) -> None:
    spec = parse_arch(text)
    assert spec.name == name and str(spec) == name
    assert parse_arch(spec.name) == spec


def test_parse_arch_fields() -> None:
    assert parse_arch("liae-dt") == ArchSpec("liae", u=False, d=True, t=True, c=False)


@pytest.mark.parametrize("text", ["", "sae", "dfud", "df-", "df-x", "df-uu", "liae-ud-", "df_ud", "df ud", "-ud",
                                  "liae-udtcx"])
def test_parse_arch_errors(text: str) -> None:
    with pytest.raises(InputError, match="architecture"):
        parse_arch(text)


def test_arch_spec_rejects_unknown_kind() -> None:
    with pytest.raises(InputError):
        ArchSpec("sae")  # type: ignore[arg-type]


@pytest.mark.parametrize(("arch", "resolution"), [("df", 64), ("df", 80), ("liae", 640), ("df-ud", 96),
                                                  ("liae-d", 640), ("liae-ud", 128)])
def test_valid_resolutions(arch: str, resolution: int) -> None:
    assert validate_resolution(arch, resolution) == parse_arch(arch)


@pytest.mark.parametrize(("arch", "resolution"), [("df", 48), ("df", 656), ("df", 72), ("liae-d", 80),
                                                  ("df-ud", 112), ("df", 0), ("df-d", 672)])
def test_invalid_resolutions(arch: str, resolution: int) -> None:
    with pytest.raises(InputError, match="resolution"):
        validate_resolution(arch, resolution)


def test_output_resolution_of_odd_latents() -> None:
    # 80 px: low = 5 (R/16); 96 px with -d: low = 3 (R/32)
    for arch, res in (("df", 80), ("liae-d", 96)):
        model = create_autoencoder(arch, res, ae_dims=16, e_dims=8, d_dims=8, d_mask_dims=4)
        with torch.no_grad():
            face, mask = model.swap(torch.rand(1, 3, res, res))
        assert face.shape == (1, 3, res, res) and mask.shape == (1, 1, res, res)


def test_create_autoencoder_errors() -> None:
    with pytest.raises(InputError, match="ae_dims"):
        create_autoencoder("df", 64, ae_dims=0, e_dims=8, d_dims=8, d_mask_dims=4)
    with pytest.raises(InputError, match="architecture"):
        create_autoencoder("sae", 64, ae_dims=8, e_dims=8, d_dims=8, d_mask_dims=4)
    with pytest.raises(InputError, match="resolution"):
        create_autoencoder("df-d", 80, ae_dims=8, e_dims=8, d_dims=8, d_mask_dims=4)


# -- blocks ------------------------------------------------------------------------------------------------------

def test_blocks() -> None:
    x = torch.randn(2, 8, 6, 6)
    assert Upscale(8, 5)(x).shape == (2, 5, 12, 12)
    assert torch.allclose(CosActivation()(x), x * torch.cos(x))
    y = PixelNorm()(x)
    assert torch.allclose(y.square().mean(dim=1), torch.ones(2, 6, 6), atol=1e-4)
    flat = PixelNorm()(torch.randn(3, 100) * 7)
    assert torch.allclose(flat.square().mean(dim=1), torch.ones(3), atol=1e-4)
    model = create_autoencoder("df-c", 64, **SMALL)
    assert any(isinstance(m, CosActivation) for m in model.modules())
    assert not any(isinstance(m, nn.LeakyReLU) for m in model.modules())


# -- discriminators ----------------------------------------------------------------------------------------------

def test_receptive_field_formula() -> None:
    assert receptive_field([]) == 1
    assert receptive_field([(3, 1), (3, 1)]) == 5
    assert receptive_field([(4, 2)] * 3 + [(3, 1)]) == 38
    for n in range(1, 7):
        assert receptive_field([(4, 2)] * n + [(3, 1)]) == 5 * 2**n - 2


@pytest.mark.parametrize(("patch_size", "resolution", "layers"), [
    (8, 128, 1), (16, 128, 2), (32, 128, 3), (40, 256, 3), (64, 128, 4), (128, 256, 5), (300, 640, 6),
    (300, 64, 4), (1, 64, 1),
])
def test_patch_layers(patch_size: int, resolution: int, layers: int) -> None:
    assert patch_layers(patch_size, resolution) == layers


def _empirical_rf(model: nn.Module, resolution: int) -> int:
    """Width of the input region whose pixels influence the centre logit (measured with a gradient)."""
    x = torch.randn(1, 3, resolution, resolution, dtype=torch.float64, requires_grad=True)
    out = model.double()(x)
    h, w = out.shape[-2:]
    out[0, 0, h // 2, w // 2].backward()
    assert x.grad is not None
    cols = (x.grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero().flatten()
    assert cols.min() > 0 and cols.max() < resolution - 1, "receptive field clipped by the border"
    return int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize(("patch_size", "resolution"), [(8, 64), (16, 64), (32, 128), (64, 256)])
def test_patch_discriminator(patch_size: int, resolution: int) -> None:
    torch.manual_seed(4)
    disc = PatchDiscriminator(3, resolution, patch_size, dims=8)
    out = disc(torch.rand(2, 3, resolution, resolution))
    n = patch_layers(patch_size, resolution)
    assert out.shape == (2, 1, resolution // 2**n, resolution // 2**n) and disc.out_res == out.shape[-1]
    assert disc.receptive_field == 5 * 2**n - 2
    assert abs(math.log2(disc.receptive_field / patch_size)) <= 1.25
    assert _empirical_rf(disc, resolution) == disc.receptive_field
    channels = [m.out_channels for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert max(channels) <= 8 * 8


def test_patch_discriminator_channel_cap() -> None:
    disc = PatchDiscriminator(3, 640, 318, dims=4)
    assert disc.n_layers == 6
    assert [m.out_channels for m in disc.modules() if isinstance(m, nn.Conv2d)] == [4, 8, 16, 32, 32, 32, 1]


@pytest.mark.parametrize(("code_res", "out_res"), [(2, 2), (3, 3), (4, 2), (6, 3), (8, 2), (12, 3), (16, 2)])
def test_code_discriminator(code_res: int, out_res: int) -> None:
    disc = CodeDiscriminator(32, code_res, dims=16)
    out = disc(torch.randn(2, 32, code_res, code_res))
    assert out.shape == (2, 1, out_res, out_res) and disc.out_res == out_res


def test_code_discriminator_on_autoencoder_codes() -> None:
    for arch in ("df-ud", "liae"):
        model = create_autoencoder(arch, 64, **SMALL)
        src, dst = _batch(64)
        out = model(src, dst)
        c, h, _ = model.code_shape
        disc = CodeDiscriminator(c, h, dims=16)
        logits = disc(out.src_code)
        assert logits.shape[:2] == (2, 1)
        logits.mean().backward()
        assert model.encoder.body[0].conv.weight.grad is not None


# -- initialisation ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["default", "he", "ca"])
def test_init_weights(method: str) -> None:
    torch.manual_seed(5)
    model = create_autoencoder("liae-ud", 64, **SMALL)
    init_weights(model, method)  # type: ignore[arg-type]
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            fan_in = m.weight[0].numel()
            ratio = float(m.weight.detach().std()) / he_std(fan_in)
            if method == "default":
                assert 0.3 < ratio < 0.5, name  # kaiming_uniform(a=sqrt(5)): std = 1/sqrt(3 fan_in)
            else:
                assert 0.85 < ratio < 1.15, name
                assert m.bias is None or not m.bias.any()
    src, dst = _batch(64)
    with torch.no_grad():
        out = model(src, dst)
        feats = model.encoder(src)
    assert all(torch.isfinite(t).all() for t in out)
    assert 0.5 < float(feats.square().mean()) < 2  # -u: pixel-normalised features
    # activations before the pixel norm stay in a sane range through the 4 downscales
    with torch.no_grad():
        raw = model.encoder.body(src)
    assert 1e-3 < float(raw.std()) < 1e3


def test_init_weights_rejects_unknown() -> None:
    with pytest.raises(InputError):
        init_weights(nn.Linear(2, 2), "xavier")  # type: ignore[arg-type]


def test_conv_aware_weight() -> None:
    g = torch.Generator().manual_seed(6)
    for shape in ((16, 4, 3, 3), (40, 3, 5, 5), (8, 8, 1, 1), (7, 2, 4, 4)):
        w = conv_aware_weight(shape, g)
        assert w.shape == shape and torch.isfinite(w).all()
        assert abs(float(w.std()) / he_std(shape[1] * shape[2] * shape[3]) - 1) < 1e-3
    # filters of one input channel (within a block of kh*(kw//2+1) of them) are closer to orthogonal than noise
    w = conv_aware_weight((15, 16, 5, 5), g)
    f = F.normalize(w.permute(1, 0, 2, 3).reshape(16, 15, 25), dim=2)
    gram = f @ f.transpose(1, 2)
    off = (gram - torch.diag_embed(torch.diagonal(gram, dim1=1, dim2=2))).abs().mean()
    r = F.normalize(torch.randn(16, 15, 25, generator=g), dim=2)
    gram_r = r @ r.transpose(1, 2)
    off_r = (gram_r - torch.diag_embed(torch.diagonal(gram_r, dim1=1, dim2=2))).abs().mean()
    assert off < 0.7 * off_r
    # 1x1: an orthogonal matrix (scaled)
    w1 = conv_aware_weight((8, 8, 1, 1), g).reshape(8, 8)
    gram1 = w1 @ w1.T
    assert torch.allclose(gram1, torch.eye(8) * gram1[0, 0], atol=1e-5)


@pytest.mark.parametrize("arch", ["df-ud", "liae-ud", "df-t"])
def test_predict_encodes_once_and_matches_swap(arch: str) -> None:
    """predict() (what a merge runs) equals swap() plus the own side's mask from reconstruct(), and skips
    that mask when not asked for."""
    torch.manual_seed(0)
    model = create_autoencoder(arch, 64, **SMALL).eval()
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        face, mask, own = model.predict(x)
        ref_face, ref_mask = model.swap(x)
        _, ref_own = model.reconstruct(x, "dst")
        assert own is not None
        for a, b in ((face, ref_face), (mask, ref_mask), (own, ref_own)):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)
        assert model.predict(x, own_mask=False)[2] is None
        if arch.startswith("df"):
            face, mask, own = model.predict(x, reverse=True)
            ref_face, ref_mask = model.reconstruct(x, "dst")
            _, ref_own = model.reconstruct(x, "src")
            assert own is not None
            for a, b in ((face, ref_face), (mask, ref_mask), (own, ref_own)):
                assert torch.allclose(a, b, atol=1e-6)
        else:
            with pytest.raises(InputError, match="reverse"):
                model.predict(x, reverse=True)


@pytest.mark.parametrize("arch", ["df-ud", "liae-ud"])
def test_forward_without_swap(arch: str) -> None:
    """Training without style losses skips decoding the swap; every other output is unchanged."""
    torch.manual_seed(1)
    model = create_autoencoder(arch, 64, **SMALL)
    src, dst = torch.rand(2, 3, 64, 64), torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        full, lean = model(src, dst), model(src, dst, swap=False)
    assert lean.swap is None and lean.swap_mask is None and full.swap is not None
    for name in ("src_rec", "src_mask", "dst_rec", "dst_mask", "src_code", "dst_code"):
        assert torch.allclose(getattr(full, name), getattr(lean, name), atol=1e-6), name

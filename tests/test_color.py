"""Colour transfer (facelab.core.color) on real faces: src (woman) recoloured towards dst (man)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facelab.core.choices import COLOR_TRANSFERS_NAMES
from facelab.core.color import COLOR_TRANSFERS, idt, mkl, rct, sot, transfer_color
from facelab.face.masks import face_hull_mask
from facelab.faceset.record import read_face

MODES = [m for m in COLOR_TRANSFERS_NAMES if m != "none"]
# minimum share of the src -> ref distance (Lab mean, Lab std) that each mode must remove
MEAN_GAIN = {"rct": 0.5, "lct": 0.5, "mkl": 0.5, "mix": 0.5, "idt": 0.3, "sot": 0.3}
STD_GAIN = {"rct": 0.5, "lct": 0.3, "mkl": 0.3, "mix": 0.5, "idt": 0.3, "sot": 0.3}


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    bgr, rec = read_face(path)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return rgb, face_hull_mask(rec.landmarks_array(), rgb.shape[:2], rec.face_type)


@pytest.fixture(scope="module")
def pairs(sample_faces: tuple[Path, Path]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    src_dir, dst_dir = sample_faces
    src = sorted(src_dir.glob("*.jpg"))
    dst = sorted(dst_dir.glob("*.jpg"))
    out = []
    for k in (0.2, 0.5, 0.8):
        s, sm = _load(src[int(k * (len(src) - 1))])
        r, rm = _load(dst[int(k * (len(dst) - 1))])
        out.append((s, sm, r, rm))
    return out


def _lab_stats(img: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float64)
    w = mask.reshape(-1).astype(np.float64)
    mu = w @ lab / w.sum()
    sd = np.sqrt(w @ (lab - mu) ** 2 / w.sum())
    return mu, sd


@pytest.mark.parametrize("mode", MODES)
def test_moves_lab_statistics_towards_reference(pairs: list, mode: str) -> None:
    for s, sm, r, rm in pairs:
        out = transfer_color(mode, s, r, sm, rm, rng=np.random.default_rng(1))
        assert out.shape == s.shape and out.dtype == np.float32
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        mu_s, sd_s = _lab_stats(s, sm)
        mu_r, sd_r = _lab_stats(r, rm)
        mu_o, sd_o = _lab_stats(out, sm)
        before, after = np.linalg.norm(mu_s - mu_r), np.linalg.norm(mu_o - mu_r)
        assert before > 3.0  # the two faces really differ in colour
        assert after <= (1 - MEAN_GAIN[mode]) * before, (mode, before, after)
        before, after = np.linalg.norm(sd_s - sd_r), np.linalg.norm(sd_o - sd_r)
        assert after <= (1 - STD_GAIN[mode]) * before + 0.5, (mode, before, after)


@pytest.mark.parametrize("mode", MODES)
def test_only_masked_pixels_count(pairs: list, mode: str) -> None:
    s, sm, r, rm = pairs[0]
    s2, r2 = s.copy(), r.copy()
    s2[sm == 0] = (0.0, 1.0, 0.0)  # garbage outside the masks must not change the mapping
    r2[rm == 0] = (1.0, 0.0, 1.0)
    a = transfer_color(mode, s, r, sm, rm, rng=np.random.default_rng(3))
    b = transfer_color(mode, s2, r2, sm[..., None], rm[..., None], rng=np.random.default_rng(3))
    inside = sm > 0
    np.testing.assert_allclose(a[inside], b[inside], atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_small_and_empty_masks(pairs: list, mode: str) -> None:
    s, _, r, _ = pairs[1]
    tiny = np.zeros(s.shape[:2], np.float32)
    tiny[60, 60] = 1.0
    few = np.zeros(r.shape[:2], np.float32)
    few[40:42, 50] = 1.0
    empty = np.zeros(s.shape[:2], np.float32)
    for sm, rm in ((tiny, few), (empty, empty), (few * 0.3, tiny)):
        out = transfer_color(mode, s, r, sm, rm, rng=np.random.default_rng(0))
        assert out.shape == s.shape and np.isfinite(out).all()
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # an empty mask counts as no mask
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_allclose(
        transfer_color(mode, s, r, empty, None, rng=rng_a), transfer_color(mode, s, r, None, None, rng=rng_b)
    )


def test_shapes_dtypes_and_dispatch(pairs: list) -> None:
    s, sm, r, rm = pairs[0]
    src = cv2.resize(s, (80, 100)).astype(np.float64)  # other size and dtype than the reference
    assert set(COLOR_TRANSFERS) == set(COLOR_TRANSFERS_NAMES)
    for mode in COLOR_TRANSFERS_NAMES:
        out = transfer_color(mode, src, r, None, rm, rng=np.random.default_rng(0))
        assert out.shape == (100, 80, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(transfer_color("none", s, r), s)
    with pytest.raises(ValueError, match="unknown colour transfer"):
        transfer_color("bogus", s, r)
    with pytest.raises(ValueError, match="src_mask"):
        rct(s, r, sm[:10], rm)
    with pytest.raises(ValueError, match="RGB"):
        mkl(s[..., :2], r)
    with pytest.raises(ValueError, match="float"):
        rct((s * 255).astype(np.uint8), r)


def test_random_modes_are_deterministic_given_rng(pairs: list) -> None:
    s, sm, r, rm = pairs[2]
    for fn in (idt, sot):
        a = fn(s, r, sm, rm, rng=np.random.default_rng(7))
        b = fn(s, r, sm, rm, rng=np.random.default_rng(7))
        c = fn(s, r, sm, rm, rng=np.random.default_rng(8))
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - c).max() > 1e-4


def test_identity_when_reference_is_source(pairs: list) -> None:
    s, sm, _, _ = pairs[0]
    for mode in ("rct", "lct", "mkl", "mix"):
        out = transfer_color(mode, s, s, sm, sm)
        assert np.abs(out - s)[sm > 0.5].mean() < 2e-3, mode

"""The training sample pipeline (facelab.train.samples) on the bundled faces (whole_face, 128 px)."""

from __future__ import annotations

import base64
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facelab.core.errors import InputError
from facelab.core.geometry import transform_points
from facelab.face.expression import mouth_openings
from facelab.face.masks import hull_points
from facelab.face.types import LEFT_EYE, RIGHT_EYE
from facelab.faceset.record import FaceRecord, XSegPolygon, read_face, update_record, write_face
from facelab.train.samples import (
    AUTO_MOUTH_GAP,
    AUTO_MOUTH_STRENGTH,
    MOUTH_BIN_EDGES,
    FaceSampleDataset,
    FaceSet,
    SampleOptions,
    balanced_weights,
    infinite,
    make_loader,
    matched_mouth_weights,
    mouth_bins,
    mouth_gap,
    mouth_match_strength,
    sampling_weights,
    uniform_yaw_weights,
)

PLAIN = dict(random_flip=False, random_warp=False, scale_range=0.0, rotation_deg=0.0, shift=0.0)


@pytest.fixture(scope="module")
def sets(sample_faces: tuple[Path, Path]) -> tuple[FaceSet, FaceSet]:
    src, dst = sample_faces
    return FaceSet(src), FaceSet(dst)


def _np(t: torch.Tensor) -> np.ndarray:
    arr = t.numpy()
    return arr.transpose(1, 2, 0) if arr.ndim == 3 else arr


def _stored_rgb(faces: FaceSet, i: int) -> np.ndarray:
    """Face i as stored, RGB float32 in [0, 1]."""
    rgb = cv2.cvtColor(faces.read_bgr(i), cv2.COLOR_BGR2RGB)
    return np.asarray(rgb, dtype=np.float32) * np.float32(1 / 255)


def _lab_mean(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2Lab).reshape(-1, 3)
    w = mask.reshape(-1)
    return (w @ lab) / w.sum()


# ----------------------------------------------------------------------------------------------------


def test_faceset(sets: tuple[FaceSet, FaceSet]) -> None:
    src, dst = sets
    assert len(src) > 50 and len(dst) > 20
    assert src.face_type == "whole_face" and src.size == 128
    assert len(src.records) == len(src.paths) == len(src.yaws) == len(src)
    rgb, rec = _stored_rgb(src, 3), src.records[3]
    assert rgb.shape == (128, 128, 3) and rgb.dtype == np.float32 and rgb.min() >= 0.0 and rgb.max() <= 1.0
    bgr, rec2 = read_face(src.paths[3])
    assert rec == rec2
    np.testing.assert_allclose(rgb, bgr[..., ::-1] / 255.0, atol=1e-6)


def test_shapes_dtypes_ranges(sets: tuple[FaceSet, FaceSet]) -> None:
    src, dst = sets
    ds = FaceSampleDataset(src, SampleOptions(96, "whole_face", random_hsv_power=0.1, ct_mode="rct", seed=0), dst)
    assert len(ds) == len(src)
    for i in (0, 7):
        s = ds[i]
        assert set(s) == {"warped", "target", "mask", "em_mask", "index"}
        for key, ch in (("warped", 3), ("target", 3), ("mask", 1), ("em_mask", 1)):
            assert s[key].shape == (ch, 96, 96) and s[key].dtype == torch.float32, key
            assert float(s[key].min()) >= 0.0 and float(s[key].max()) <= 1.0, key
        assert s["index"].dtype == torch.int64 and int(s["index"]) == i


def test_plain_target_is_a_resize(sets: tuple[FaceSet, FaceSet]) -> None:
    src, _ = sets
    stored = _stored_rgb(src, 5)
    same = FaceSampleDataset(src, SampleOptions(128, "whole_face", **PLAIN, seed=0))[5]
    np.testing.assert_allclose(_np(same["target"]), stored, atol=1e-6)
    np.testing.assert_array_equal(same["warped"].numpy(), same["target"].numpy())
    for res in (96, 192):
        got = _np(FaceSampleDataset(src, SampleOptions(res, "whole_face", **PLAIN, seed=0))[5]["target"])
        want = cv2.resize(stored, (res, res), interpolation=cv2.INTER_AREA if res < 128 else cv2.INTER_CUBIC)
        inner = slice(4, res - 4)  # borders: replicate vs resize's edge handling
        assert np.abs(got - want)[inner, inner].mean() < 0.02, res


def test_large_stored_faces_are_preshrunk(sets: tuple[FaceSet, FaceSet], tmp_path: Path) -> None:
    src, _ = sets
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(3):  # the faces at 320 px: a 96 px sample shrinks them by 0.3
        img, rec = read_face(src.paths[i])
        big = FaceRecord.model_validate({**rec.to_payload(), "size": 320,
                                         "landmarks": (rec.landmarks_array() * 2.5).tolist()})
        write_face(folder / f"{i}.png", cv2.resize(img, (320, 320), interpolation=cv2.INTER_CUBIC), big)
    faces = FaceSet(folder)
    ds = FaceSampleDataset(faces, SampleOptions(96, "whole_face", **PLAIN, seed=0))
    s = ds[1]
    want = cv2.resize(_stored_rgb(faces, 1), (96, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(_np(s["target"]) - want)[4:-4, 4:-4].mean() < 0.02
    # the landmark masks agree with the image: the same ones made from the 128 px originals
    small = FaceSampleDataset(src, SampleOptions(96, "whole_face", **PLAIN, seed=0))[1]
    assert float((s["mask"] - small["mask"]).abs().mean()) < 0.01
    assert np.abs(_np(s["target"]) - _np(small["target"])).mean() < 0.03


def test_full_crop_of_whole_face(sets: tuple[FaceSet, FaceSet]) -> None:
    src, _ = sets
    i = 10
    ds = FaceSampleDataset(src, SampleOptions(128, "full", **PLAIN, seed=0))
    aug = ds.draw(np.random.default_rng(0))
    s = ds.render(i, aug)
    # independent geometry: whole_face shows canonical [-0.4, 1.4] x [-0.5, 1.3], full [-0.25, 1.25]^2
    k = 1.8 / 1.5  # ratio of the face-type scales
    tx = (-0.4 + 0.25) * 128 / 1.5
    ty = (-0.5 + 0.25) * 128 / 1.5
    mat = np.array([[k, 0.0, tx], [0.0, k, ty]])
    np.testing.assert_allclose(ds.target_matrix(aug), mat, atol=1e-9)
    stored8 = cv2.cvtColor(src.read_bgr(i), cv2.COLOR_BGR2RGB)
    want = cv2.warpAffine(stored8, mat, (128, 128), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(_np(s["target"]), want / 255.0, atol=1e-6)
    # the eyes (landmarks, and the rendered eyes-mouth mask) are k times further apart
    lm = src.landmarks[i]
    lm_t = transform_points(lm, mat)
    d0 = np.linalg.norm(lm[LEFT_EYE].mean(0) - lm[RIGHT_EYE].mean(0))
    d1 = np.linalg.norm(lm_t[LEFT_EYE].mean(0) - lm_t[RIGHT_EYE].mean(0))
    assert d1 / d0 == pytest.approx(k, rel=1e-6)
    em = (_np(s["em_mask"])[..., 0] > 0.5).astype(np.uint8)
    n, _, _, centroids = cv2.connectedComponentsWithStats(em)
    blobs = sorted(centroids[1:n].tolist(), key=lambda c: c[1])[:2]  # the two upper blobs: the eyes
    assert n - 1 == 3
    measured = np.linalg.norm(np.subtract(blobs[0], blobs[1]))
    assert measured == pytest.approx(d1, rel=0.05)


def test_warp_only_changes_the_input(sets: tuple[FaceSet, FaceSet]) -> None:
    src, _ = sets
    opts = SampleOptions(128, "whole_face", seed=11)  # flip, affine and warp on
    warped_ds = FaceSampleDataset(src, opts)
    flat_ds = FaceSampleDataset(src, replace(opts, random_warp=False))
    for i in (2, 30):
        a, b = warped_ds[i], flat_ds[i]
        np.testing.assert_array_equal(a["target"].numpy(), b["target"].numpy())
        np.testing.assert_array_equal(a["mask"].numpy(), b["mask"].numpy())
        np.testing.assert_array_equal(b["warped"].numpy(), b["target"].numpy())
        diff = float((a["warped"] - a["target"]).abs().mean())
        assert 0.01 < diff < 0.2, diff
    # the target is the stored face through target_matrix (the augmentation affine), nothing else
    aug = warped_ds.draw(np.random.default_rng(4))
    assert aug.warp is not None and (aug.scale != 1.0 or aug.angle_deg != 0.0)
    s = warped_ds.render(8, aug)
    stored8 = cv2.cvtColor(src.read_bgr(8), cv2.COLOR_BGR2RGB)
    want = cv2.warpAffine(stored8, warped_ds.target_matrix(aug), (128, 128), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(_np(s["target"]), want / 255.0, atol=1e-6)


def test_flip_mirrors_image_and_masks(sets: tuple[FaceSet, FaceSet]) -> None:
    src, _ = sets
    ds = FaceSampleDataset(src, SampleOptions(128, "whole_face", **{**PLAIN, "random_flip": True}, seed=0))
    rng = np.random.default_rng(0)
    augs = [ds.draw(rng) for _ in range(20)]
    flipped = next(a for a in augs if a.flip)
    straight = next(a for a in augs if not a.flip)
    i = 20
    f, s = ds.render(i, flipped), ds.render(i, straight)
    np.testing.assert_allclose(_np(f["target"]), _np(s["target"])[:, ::-1], atol=1e-6)
    assert np.abs(_np(f["mask"]) - _np(s["mask"])[:, ::-1]).mean() < 0.01
    assert np.abs(_np(f["em_mask"]) - _np(s["em_mask"])[:, ::-1]).mean() < 0.01
    # the subject's right eye (the image's left) is now on the image's right, and masked there
    eye_s = transform_points(src.landmarks[i], ds.target_matrix(straight))[RIGHT_EYE].mean(0)
    eye_f = transform_points(src.landmarks[i], ds.target_matrix(flipped))[RIGHT_EYE].mean(0)
    assert eye_s[0] < 64 < eye_f[0]
    assert eye_f[0] == pytest.approx(127 - eye_s[0]) and eye_f[1] == pytest.approx(eye_s[1])
    x, y = np.round(eye_f).astype(int)
    assert _np(f["em_mask"])[y, x, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(_np(f["target"])[y, x], _np(s["target"])[y, 127 - x], atol=1e-6)


def test_masks_cover_the_hull(sets: tuple[FaceSet, FaceSet]) -> None:
    src, _ = sets
    ds = FaceSampleDataset(src, SampleOptions(128, "whole_face", seed=3))
    kernel = np.ones((5, 5), np.uint8)
    for i in (1, 40, 70):
        aug = ds.draw()
        s = ds.render(i, aug)
        mask, em = _np(s["mask"])[..., 0], _np(s["em_mask"])[..., 0]
        pts = hull_points(transform_points(src.landmarks[i], ds.target_matrix(aug)), "whole_face")
        hull = np.zeros((128, 128), np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(np.round(pts).astype(np.int32)), 1)
        inside, outside = cv2.erode(hull, kernel) > 0, cv2.dilate(hull, kernel) == 0
        assert mask[inside].mean() > 0.95 and mask[outside].mean() < 0.05
        assert (em <= mask + 1e-6).all() and em.sum() > 50


def test_skin_mask_leaves_the_womans_hair_out_of_the_training_mask(sets: tuple[FaceSet, FaceSet]) -> None:
    """With ``skin_mask`` the sample's face mask loses the hull's dark border (woman D's hair over her temples and
    cheeks) and nothing else: the inner face, the eyes and the mouth stay whole, the targets are the same, and a
    face with an XSeg mask keeps it."""
    src, _ = sets
    plain = FaceSampleDataset(src, SampleOptions(64, "full", **PLAIN, seed=0))
    skin = FaceSampleDataset(src, SampleOptions(64, "full", **PLAIN, skin_mask=True, seed=0))
    dropped_faces = 0
    for i in range(0, len(src.paths), 6):
        a, b = plain[i], skin[i]
        assert torch.equal(a["target"], b["target"]) and torch.equal(a["warped"], b["warped"])
        m0, m1 = _np(a["mask"])[..., 0], _np(b["mask"])[..., 0]
        assert (m1 <= m0 + 1e-6).all()
        lm = transform_points(src.landmarks[i], plain.target_matrix(plain.draw()))
        width = float(np.linalg.norm(lm[16] - lm[0]))
        hull = (m0 > 0.5).astype(np.uint8)
        inner = cv2.erode(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(width * 0.3) | 1,) * 2)) > 0
        assert np.allclose(m1[inner], m0[inner])  # the inner face is never touched
        for k in (36, 45, 48, 54):  # eye corners, mouth corners
            x, y = np.round(lm[k]).astype(int)
            assert m1[y, x] == pytest.approx(m0[y, x])
        em0, em1 = _np(a["em_mask"])[..., 0], _np(b["em_mask"])[..., 0]
        assert (em1 <= m1 + 1e-6).all() and em1.sum() > 0.9 * em0.sum()
        lost = (m0 - m1) > 0.5
        if lost.sum() >= 4:
            dropped_faces += 1
            grey = cv2.cvtColor(_np(a["target"]), cv2.COLOR_RGB2GRAY)
            assert grey[lost].mean() < grey[inner].mean() - 0.12  # what is left out is darker than her skin: hair
    assert dropped_faces >= 5


def test_xseg_polygons_and_mask(sets: tuple[FaceSet, FaceSet], tmp_path: Path) -> None:
    src, _ = sets
    folder = tmp_path / "xseg"
    folder.mkdir()
    poly_path, raster_path = folder / "a.jpg", folder / "b.jpg"
    shutil.copy(src.paths[0], poly_path)
    shutil.copy(src.paths[1], raster_path)
    rec = src.records[0]
    polys = [XSegPolygon(kind="include", points=[(20, 20), (100, 20), (100, 110), (20, 110)]),
             XSegPolygon(kind="exclude", points=[(20, 20), (60, 20), (60, 60), (20, 60)])]
    update_record(poly_path, FaceRecord.model_validate({**rec.to_payload(), "xseg_polygons": [
        p.model_dump(mode="json") for p in polys]}))
    circle = np.zeros((64, 64), np.uint8)  # a mask at half the face size: scaled up
    cv2.circle(circle, (32, 32), 20, 255, -1)
    png = base64.b64encode(cv2.imencode(".png", circle)[1].tobytes()).decode()
    update_record(raster_path, FaceRecord.model_validate({**src.records[1].to_payload(), "xseg_mask": png}))
    faces = FaceSet(folder)
    ds = FaceSampleDataset(faces, SampleOptions(128, "whole_face", **PLAIN, seed=0))
    m = _np(ds[0]["mask"])[..., 0]
    assert m[30:100, 70:95].mean() > 0.97 and m[25:55, 25:55].mean() < 0.03 and m[:15].max() < 0.05
    assert m[115:].max() < 0.05
    m2 = _np(ds[1]["mask"])[..., 0]
    yy, xx = np.mgrid[0:128, 0:128]
    r = np.hypot(xx - 63.5, yy - 63.5)
    assert m2[r < 36].mean() > 0.97 and m2[r > 44].mean() < 0.01
    hull = FaceSampleDataset(faces, SampleOptions(128, "whole_face", **PLAIN, xseg=False, seed=0))
    assert np.abs(_np(hull[0]["mask"])[..., 0] - m).mean() > 0.05
    skin = FaceSampleDataset(faces, SampleOptions(128, "whole_face", **PLAIN, skin_mask=True, seed=0))
    assert np.array_equal(_np(skin[0]["mask"]), _np(ds[0]["mask"]))  # drawn or inferred XSeg masks are kept
    assert np.array_equal(_np(skin[1]["mask"]), _np(ds[1]["mask"]))


def test_uniform_yaw_weights() -> None:
    rng = np.random.default_rng(0)
    yaws = np.concatenate([rng.normal(0, 3, 900), rng.uniform(-40, 40, 100), [np.nan] * 5])
    w = uniform_yaw_weights(yaws, bins=8)
    assert w.shape == yaws.shape and w.sum() == pytest.approx(1.0) and (w > 0).all()
    finite = np.isfinite(yaws)
    edges = np.linspace(yaws[finite].min(), yaws[finite].max(), 9)
    labels = np.where(finite, np.clip(np.searchsorted(edges, np.nan_to_num(yaws), side="right") - 1, 0, 7), 8)
    occupied = np.unique(labels)
    per_bin = np.array([w[labels == b].sum() for b in occupied])
    np.testing.assert_allclose(per_bin, 1 / len(occupied), rtol=1e-9)
    draws = rng.choice(len(yaws), 20000, p=w)
    freq = np.bincount(labels[draws], minlength=9)[occupied] / 20000
    assert np.abs(freq - 1 / len(occupied)).max() < 0.02
    np.testing.assert_allclose(uniform_yaw_weights([5.0] * 4), 0.25)
    with pytest.raises(ValueError):
        uniform_yaw_weights([])


def test_color_transfer_moves_src_towards_dst(sets: tuple[FaceSet, FaceSet]) -> None:
    src, dst = sets
    base = SampleOptions(96, "whole_face", **PLAIN, seed=2)

    def mean_lab(faces: FaceSet, opts: SampleOptions, ref: FaceSet | None = None) -> np.ndarray:
        ds = FaceSampleDataset(faces, opts, ref)
        out = []
        for i in np.linspace(0, len(faces) - 1, 8).astype(int):
            s = ds[int(i)]
            out.append(_lab_mean(_np(s["target"]), _np(s["mask"])[..., 0]))
            if opts.ct_mode != "none":  # input and target are recoloured alike
                np.testing.assert_array_equal(s["warped"].numpy(), s["target"].numpy())
        return np.mean(out, axis=0)

    dst_mean = mean_lab(dst, base)
    before = np.linalg.norm(mean_lab(src, base) - dst_mean)
    after = np.linalg.norm(mean_lab(src, replace(base, ct_mode="rct"), dst) - dst_mean)
    assert before > 3.0 and after < 0.5 * before, (before, after)
    # with the warp on, one colour map serves both: the input's colours follow the target's
    ds = FaceSampleDataset(src, SampleOptions(96, "whole_face", ct_mode="rct", seed=2), dst)
    s = ds[4]
    plain = FaceSampleDataset(src, SampleOptions(96, "whole_face", seed=2))[4]
    shift_t = _np(s["target"]).mean((0, 1)) - _np(plain["target"]).mean((0, 1))
    shift_w = _np(s["warped"]).mean((0, 1)) - _np(plain["warped"]).mean((0, 1))
    np.testing.assert_allclose(shift_w, shift_t, atol=0.01)
    with pytest.raises(ValueError, match="ct_reference"):
        FaceSampleDataset(src, base.__class__(96, "whole_face", ct_mode="rct"))


def test_hsv_jitter_changes_both_alike(sets: tuple[FaceSet, FaceSet]) -> None:
    src, _ = sets
    opts = SampleOptions(96, "whole_face", **PLAIN, random_hsv_power=0.3, seed=5)
    a = FaceSampleDataset(src, opts)[3]
    b = FaceSampleDataset(src, replace(opts, random_hsv_power=0.0))[3]
    np.testing.assert_array_equal(a["warped"].numpy(), a["target"].numpy())
    assert float((a["target"] - b["target"]).abs().mean()) > 0.005
    np.testing.assert_array_equal(a["mask"].numpy(), b["mask"].numpy())


def _copy_faces(src: FaceSet, folder: Path, count: int) -> list[Path]:
    folder.mkdir()
    out = []
    for p in src.paths[:count]:
        shutil.copy(p, folder / p.name)
        out.append(folder / p.name)
    return out


def test_bad_folders(sets: tuple[FaceSet, FaceSet], tmp_path: Path) -> None:
    src, _ = sets
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "note.txt").write_text("x")
    with pytest.raises(InputError, match="no aligned faces in"):
        FaceSet(empty)
    with pytest.raises(InputError):
        FaceSet(tmp_path / "missing")
    types = _copy_faces(src, tmp_path / "types", 3)
    update_record(types[1], src.records[1].model_copy(update={"face_type": "full"}))
    with pytest.raises(InputError, match=r"mixed face types.*whole_face.*full"):
        FaceSet(tmp_path / "types")
    sizes = _copy_faces(src, tmp_path / "sizes", 3)
    img, rec = read_face(sizes[2])
    small = FaceRecord.model_validate({**rec.to_payload(), "size": 96,
                                       "landmarks": (rec.landmarks_array() * 0.75).tolist()})
    write_face(sizes[2], cv2.resize(img, (96, 96), interpolation=cv2.INTER_AREA), small)
    with pytest.raises(InputError, match=r"mixed face sizes.*128.*96"):
        FaceSet(tmp_path / "sizes")
    with pytest.raises(InputError, match=r"whole_face.*head"):
        FaceSampleDataset(src, SampleOptions(128, "head"))
    with pytest.raises(InputError, match="resolution 16"):
        SampleOptions(16, "full")
    with pytest.raises(InputError, match="warp_strength"):
        SampleOptions(128, "full", warp_strength=-1.0)


def test_loader_with_workers(sets: tuple[FaceSet, FaceSet]) -> None:
    src, dst = sets
    ds = FaceSampleDataset(src, SampleOptions(64, "whole_face", ct_mode="rct", seed=0), dst)
    loader = make_loader(ds, 4, workers=2, seed=0, uniform_yaw=True, pin_memory=False)
    it = iter(loader)
    try:
        for _ in range(3):
            batch = next(it)
            assert batch["warped"].shape == (4, 3, 64, 64) and batch["target"].shape == (4, 3, 64, 64)
            assert batch["mask"].shape == (4, 1, 64, 64) and batch["em_mask"].shape == (4, 1, 64, 64)
            assert batch["index"].shape == (4,) and batch["index"].dtype == torch.int64
    finally:
        del it, loader


def test_determinism(sets: tuple[FaceSet, FaceSet]) -> None:
    src, _ = sets
    opts = SampleOptions(64, "whole_face", random_hsv_power=0.1, seed=7)
    a, b = FaceSampleDataset(src, opts)[9], FaceSampleDataset(src, opts)[9]
    for key in a:
        assert torch.equal(a[key], b[key]), key

    def first(seed: int, rank: int = 0) -> dict[str, torch.Tensor]:
        ds = FaceSampleDataset(src, opts)
        return next(iter(make_loader(ds, 3, workers=0, seed=seed, distributed=(rank, 2))))

    x, y, z = first(1), first(1), first(1, rank=1)
    for key in x:
        assert torch.equal(x[key], y[key]), key
    assert not torch.equal(x["warped"], z["warped"])
    batches = infinite([1, 2])
    assert [next(batches) for _ in range(5)] == [1, 2, 1, 2, 1]
    with pytest.raises(RuntimeError):
        next(infinite([]))


def test_pixel_cache_changes_nothing_but_the_cost(sets: tuple[FaceSet, FaceSet],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoded faces are kept per dataset (and worker): a sample made from the cache equals one made from
    the file, the cache respects its byte budget, and it is not pickled into loader workers."""
    import pickle

    from facelab.train import samples as samples_mod

    src, dst = sets
    opts = SampleOptions(resolution=64, face_type="whole_face", ct_mode="rct", seed=3)
    cached = FaceSampleDataset(src, opts, dst)
    monkeypatch.setattr(samples_mod, "PIXEL_CACHE_BYTES", 0)
    uncached = FaceSampleDataset(src, opts, dst)
    for i in (0, 5, 0, 5):  # the second visit reads the cache
        aug = cached.draw(np.random.default_rng(i + 11))
        a, b = cached.render(i, aug), uncached.render(i, aug)
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert len(cached._cache.items) >= 2 and not uncached._cache.items
    assert all(not img.flags.writeable for img in cached._cache.items.values())
    assert len(pickle.loads(pickle.dumps(cached))._cache.items) == 0
    one_face = 64 * 64 * 3
    small = samples_mod._PixelCache(budget=one_face)
    for k in range(3):
        img = small.get((0, k), lambda: np.zeros((64, 64, 3), np.uint8))
        assert img.shape == (64, 64, 3)  # always served, kept only within the budget
    assert len(small.items) == 1 and small.used == one_face


def test_uniform_mouth_balances_mouth_openings(sample_faces: tuple[Path, Path]) -> None:
    """The bundled src clip's woman rarely opens her mouth wide: balanced over the four mouth-opening bins
    present, each bin is drawn equally often, and combined with yaw the weights stay a distribution."""
    faces = FaceSet(sample_faces[0])
    bins = mouth_bins(faces.landmarks)
    openings = mouth_openings(faces.landmarks)
    assert ((openings >= MOUTH_BIN_EDGES[0]) == (bins >= 1)).all()
    present = np.unique(bins)
    assert len(present) >= 2  # the clip has closed and open mouths
    w = sampling_weights(faces, uniform_yaw=False, uniform_mouth=True)
    assert w is not None and w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose([w[bins == b].sum() for b in present], 1 / len(present), rtol=1e-9)
    both = sampling_weights(faces, uniform_yaw=True, uniform_mouth=True)
    assert both is not None and both.sum() == pytest.approx(1.0) and (both > 0).all()
    assert sampling_weights(faces, uniform_yaw=False, uniform_mouth=False) is None
    np.testing.assert_allclose(balanced_weights(np.array([0, 0, 0, 5])), [1 / 6, 1 / 6, 1 / 6, 1 / 2])


def test_mouth_match_draws_src_mouths_in_dst_proportions(sample_faces: tuple[Path, Path]) -> None:
    """src's mouth-opening bins drawn at strength 1 in dst's proportions (over the bins src has), at 0 as
    src's own (every face equally likely), halfway between at 0.5; uniform_mouth gives way to it."""
    src, dst = FaceSet(sample_faces[0]), FaceSet(sample_faces[1])
    own, ref = mouth_bins(src.landmarks), mouth_bins(dst.landmarks)
    present = np.unique(own)
    p_own = np.array([(own == b).mean() for b in present])
    p_ref = np.array([(ref == b).mean() for b in present])
    assert np.abs(p_own - p_ref).max() > 0.1  # the two clips open their mouths differently
    np.testing.assert_allclose(matched_mouth_weights(src.landmarks, dst.landmarks, 0.0), 1 / len(own))
    for s in (0.5, 1.0):
        w = matched_mouth_weights(src.landmarks, dst.landmarks, s)
        want = (1 - s) * p_own + s * p_ref
        np.testing.assert_allclose([w[own == b].sum() for b in present], want / want.sum(), rtol=1e-9)
        for b in present:  # within a bin every face is equally likely
            assert np.ptp(w[own == b]) < 1e-12
    via = sampling_weights(src, uniform_yaw=False, uniform_mouth=True, mouth_match=(dst.landmarks, 1.0))
    np.testing.assert_allclose(via, matched_mouth_weights(src.landmarks, dst.landmarks, 1.0))
    with pytest.raises(ValueError):
        matched_mouth_weights(src.landmarks, dst.landmarks, 1.5)
    # a bin dst has and src lacks cannot be drawn: only src's bins get mass, and it sums to 1
    lonely = src.landmarks[own == present[0]]
    w1 = matched_mouth_weights(lonely, dst.landmarks, 1.0)
    np.testing.assert_allclose(w1, 1 / len(lonely))


def test_mouth_match_auto_turns_on_only_where_src_opens_its_mouth_more(sample_faces: tuple[Path, Path]) -> None:
    """mouth_match "auto": the demo pair (both open their mouths alike) gets 0; src's open-mouthed faces against
    dst's closed ones get AUTO_MOUTH_STRENGTH, the other way round 0; a number given is used as it is."""
    src, dst = FaceSet(sample_faces[0]), FaceSet(sample_faces[1])
    gap = mouth_gap(src.landmarks, dst.landmarks)
    np.testing.assert_allclose(gap, mouth_openings(src.landmarks).mean() - mouth_openings(dst.landmarks).mean())
    assert abs(gap) < AUTO_MOUTH_GAP and mouth_match_strength("auto", gap) == 0.0
    opened = src.landmarks[mouth_openings(src.landmarks) > 0.15]
    closed = dst.landmarks[mouth_openings(dst.landmarks) < 0.05]
    assert len(opened) >= 10 and len(closed) >= 10
    talks, quiet = mouth_gap(opened, closed), mouth_gap(closed, opened)
    assert talks > 0.1 and mouth_match_strength("auto", talks) == AUTO_MOUTH_STRENGTH
    assert quiet < -0.1 and mouth_match_strength("auto", quiet) == 0.0
    assert mouth_gap(opened, closed[:0]) == 0.0  # a side without faces: nothing to match
    assert mouth_match_strength(0.3, 0.5) == 0.3 and mouth_match_strength(0.0, 0.5) == 0.0

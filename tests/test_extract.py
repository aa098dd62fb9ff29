"""Extraction on real footage: detection rate, landmark round trip, centring, resume, smoothing, filters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelab.core.geometry import transform_points
from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import ExtractSummary, run_extract
from facelab.face.types import eye_centers
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import FaceRecord
from facelab.media.video import iter_frames
from tests.conftest import SAMPLES, shared_file


def write_frames(folder: Path, count: int) -> Path:
    """The first `count` frames of the bundled dst clip as a frame folder."""
    folder.mkdir()
    for i, img in iter_frames(SAMPLES / "dst.mp4"):
        if i >= count:
            break
        cv2.imwrite(str(folder / f"{i:06d}.png"), img[:, :, ::-1])
    return folder


@pytest.fixture(scope="module")
def dst_faces(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExtractSummary, list[tuple[Path, FaceRecord]], Path]:
    out = tmp_path_factory.mktemp("dst_aligned")
    summary = run_extract(SAMPLES / "dst.mp4", out, ExtractOptions(workers=2, debug=True))
    scan = scan_faces(out)
    assert not scan.foreign and not scan.invalid
    return summary, scan.faces, out


def test_every_frame_of_the_sample_has_its_face(dst_faces: tuple[ExtractSummary, list, Path]) -> None:
    summary, faces, out = dst_faces
    assert summary.frames == 216
    assert summary.frames_with_faces >= 0.98 * 216
    assert len(faces) == summary.faces
    saved = json.loads((out / "_extract" / "summary.json").read_text())
    assert saved["frames"] == 216 and saved["faces"] == summary.faces
    assert len(list((out / "_extract" / "debug").glob("*.jpg"))) == 216
    rec = faces[0][1]
    assert rec.face_type == "whole_face" and rec.size == 256 and rec.source.width == 480
    assert rec.pose is not None and rec.sharpness is not None and rec.sharpness > 0


def test_landmarks_round_trip_through_the_inverse_transform(dst_faces: tuple[ExtractSummary, list, Path]) -> None:
    _, faces, _ = dst_faces
    worst = 0.0
    for _, rec in faces:
        back = transform_points(rec.landmarks_array(), rec.inverse_affine())
        worst = max(worst, float(np.abs(back - rec.source_landmarks_array()).max()))
    assert worst < 0.5


def test_aligned_faces_are_consistently_centred(dst_faces: tuple[ExtractSummary, list, Path]) -> None:
    _, faces, _ = dst_faces
    eyes = np.array([np.concatenate(eye_centers(rec.landmarks_array())) for _, rec in faces])
    std = eyes.std(axis=0).max()
    assert std < 0.02 * 256, f"eye centre std {std:.2f} px"


def test_resume_skips_finished_frames_and_survives_a_torn_journal(tmp_path: Path) -> None:
    frames = write_frames(tmp_path / "frames", 12)
    out = tmp_path / "aligned"
    opts = ExtractOptions(workers=1, size=128)
    first = run_extract(frames, out, opts)
    assert first.frames == 12 and first.resumed_frames == 0
    journal = out / "_extract" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    # as if killed: the last 3 frames never finished, the one before was torn mid-line
    journal.write_text("\n".join(lines[:-4]) + "\n" + lines[-4][: len(lines[-4]) // 2])
    for name in ("000011_0.jpg", "000010_0.jpg"):
        (out / name).unlink()
    before = (out / "000000_0.jpg").stat().st_mtime_ns
    faces_before = {p.name: p.read_bytes() for p in out.glob("*.jpg")}
    second = run_extract(frames, out, opts)
    # the first tracking run (frames 0-7, --track 8) is whole: kept; the second, partly done, is redone whole
    assert second.resumed_frames == 8 and second.frames == 12 and second.faces == 12
    assert (out / "000000_0.jpg").stat().st_mtime_ns == before  # finished work is not redone
    assert (out / "000011_0.jpg").exists()
    assert all((out / n).read_bytes() == b for n, b in faces_before.items())  # redone bit-identically
    with pytest.raises(Exception, match="size=128"):
        run_extract(frames, out, ExtractOptions(workers=1, size=256))


def test_smoothing_reduces_landmark_jitter(tmp_path: Path) -> None:
    def jitter(out: Path) -> float:
        faces = sorted(scan_faces(out).faces, key=lambda f: f[1].source.index)
        lm = np.array([rec.source_landmarks_array() for _, rec in faces])
        return float(np.abs(lm[2:] - 2 * lm[1:-1] + lm[:-2]).mean())  # second difference: shake

    clip = write_frames(tmp_path / "clip", 40)
    raw, smooth = tmp_path / "raw", tmp_path / "smooth"
    run_extract(clip, raw, ExtractOptions(workers=1, size=64, landmarks="dlib"))
    s = run_extract(clip, smooth, ExtractOptions(workers=1, size=64, landmarks="dlib", smooth=3))
    assert s.faces == 40
    assert jitter(smooth) < 0.6 * jitter(raw)


@pytest.mark.parametrize("clip", ["lp_d6", "lp_d9", "lp_d10", "lp_d18"])
def test_detection_rate_on_the_shared_clips(clip: str, tmp_path: Path) -> None:
    path = shared_file(f"clips/{clip}.mp4")
    s = run_extract(path, tmp_path / clip, ExtractOptions(workers=2, size=64, jpeg_quality=80))
    assert s.frames_with_faces >= 0.98 * s.frames, f"{clip}: {s.frames_with_faces}/{s.frames}"


def test_several_faces_and_only_like(tmp_path: Path) -> None:
    clip = shared_file("clips/fr_short_hamilton_clip.mp4")
    ref = shared_file("images/fr_lin-manuel-miranda.png")
    opts = ExtractOptions(workers=2, size=64, fps=3, min_face_size=30, detector="blazeface")
    all_faces = run_extract(clip, tmp_path / "all", opts)
    per_frame = {}
    for _, rec in scan_faces(tmp_path / "all").faces:
        per_frame[rec.source.frame] = per_frame.get(rec.source.frame, 0) + 1
    assert max(per_frame.values()) >= 3, per_frame  # the audience shots hold several people
    only = run_extract(clip, tmp_path / "only", opts.model_copy(update={"only_like": ref}))
    kept = scan_faces(tmp_path / "only").faces
    assert 0 < only.faces < all_faces.faces
    assert all(rec.identity is not None for _, rec in kept)
    from facelab.face.identity import distance
    from facelab.face.reference import reference_embedding

    target = reference_embedding(ref)
    assert all(distance(np.array(rec.identity), target) < 0.6 for _, rec in kept)
    # at most one face per frame survives: the performer
    frames = [rec.source.frame for _, rec in kept]
    assert len(frames) == len(set(frames))


def test_copy_of_a_face_folder_stays_a_dataset(dst_faces: tuple[ExtractSummary, list, Path], tmp_path: Path) -> None:
    _, faces, _ = dst_faces
    dst = tmp_path / "copy"
    dst.mkdir()
    for i, (p, _) in enumerate(faces[:5]):
        shutil.copy(p, dst / f"renamed_{i}.jpg")
    scan = scan_faces(dst)
    assert len(scan.faces) == 5 and [r.source.frame for _, r in scan.faces] == [r.source.frame for _, r in faces[:5]]

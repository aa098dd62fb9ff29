"""Swap-quality metrics on real footage: each metric responds to what it measures and to nothing else."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelab.core.errors import InputError
from facelab.evaluate import metrics
from facelab.evaluate.frames import frame_count, sample_indices
from facelab.evaluate.identity import clip_embeddings, faceset_embedding
from facelab.evaluate.options import EvaluateOptions
from facelab.evaluate.perceptual import classify, load_mobilenet_v2, perceptual_distance
from facelab.evaluate.report import VERSION, markdown_table, read_summary, summarise, summary_lines, write_reports
from facelab.evaluate.results import Evaluation, FrameMetrics
from facelab.evaluate.runner import evaluate_swap
from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import run_extract
from facelab.face import expression
from facelab.face.identity import SAME_PERSON_THRESHOLD, create_embedder
from facelab.media.video import iter_frames
from tests.conftest import SAMPLES, read_rgb, shared_file

FRAMES = 40  # dst frames written to folders for the synthetic results
SPREAD = 16  # frames spread over the whole dst clip, whose mouth opens twice (about frames 64-96 and 116-152)
NEW_COLUMNS = ("detail", "mouth_open_result", "mouth_open_dst", "eye_open_result", "eye_open_dst")


def _rgb(path: Path, size: int = 224) -> np.ndarray:
    return cv2.resize(read_rgb(path), (size, size), interpolation=cv2.INTER_AREA)


def _write_frames(folder: Path, frames: list[np.ndarray], change: Callable[[np.ndarray], np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for i, img in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:06d}.png"), cv2.cvtColor(change(img), cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def dst_frames() -> list[np.ndarray]:
    return [img for i, img in iter_frames(SAMPLES / "dst.mp4") if i < FRAMES]


@pytest.fixture(scope="module")
def dst_dir(dst_frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_frames(tmp_path_factory.mktemp("dst") / "frames", dst_frames, lambda x: x)


@pytest.fixture(scope="module")
def spread_frames() -> list[np.ndarray]:
    picks = set(sample_indices(frame_count(SAMPLES / "dst.mp4"), SPREAD))
    return [img for i, img in iter_frames(SAMPLES / "dst.mp4") if i in picks]


@pytest.fixture(scope="module")
def spread_dir(spread_frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_frames(tmp_path_factory.mktemp("spread") / "frames", spread_frames, lambda x: x)


def _evaluate_spread(result: Path, dst: Path, src: Path | None = None) -> Evaluation:
    """Every frame of a spread folder evaluated (no temporal measures)."""
    return evaluate_swap(result, dst, src, EvaluateOptions(frames=SPREAD, temporal=False, src_limit=8))


@pytest.fixture(scope="module")
def src_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Aligned faces of 8 frames of the bundled src clip (woman D)."""
    base = tmp_path_factory.mktemp("src")
    picks = set(sample_indices(448, 8))
    frames = [img for i, img in iter_frames(SAMPLES / "src.mp4") if i in picks]
    _write_frames(base / "frames", frames, lambda x: x)
    run_extract(base / "frames", base / "aligned", ExtractOptions(size=128, workers=1))
    return base / "aligned"


# ---- the perceptual network --------------------------------------------------------------------


def test_mobilenet_loads_every_key_and_classifies_sensibly() -> None:
    net = load_mobilenet_v2()  # strict: every key of the torchvision-layout file matched, none missing
    assert sum(p.numel() for p in net.parameters()) == 3_504_872  # MobileNetV2 1.0, 224 px
    suit, windsor_tie, bow_tie, groom = 834, 906, 457, 982
    obama, biden = classify([_rgb(SAMPLES / "fr_obama.jpg"), _rgb(SAMPLES / "fr_biden.jpg")], net=net)
    # men in suit and tie: ImageNet's suit / tie / groom classes, with most of the probability on them
    for top in (obama, biden):
        assert top[0][0] in (suit, groom)
        assert sum(p for c, p in top if c in (suit, windsor_tie, bow_tie, groom)) > 0.8


def test_perceptual_distance_zero_for_equal_and_grows_with_blur() -> None:
    img = _rgb(SAMPLES / "fr_obama.jpg")
    light, heavy = cv2.GaussianBlur(img, (0, 0), 1.0), cv2.GaussianBlur(img, (0, 0), 3.0)
    d = perceptual_distance([img, img, img], [img, light, heavy])
    assert d[0] == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < d[1] < d[2] <= 4.0
    assert d[2] > 3 * d[1] > 0.05


# ---- per-frame metrics ----------------------------------------------------------------------------


def test_ssim_of_the_face_region_drops_for_a_shifted_copy(dst_frames: list[np.ndarray]) -> None:
    img = dst_frames[0]
    crop = cv2.resize(img[100:380, 100:380], (224, 224))
    assert metrics.ssim(crop, crop) == pytest.approx(1.0)
    shifted = np.roll(crop, 6, axis=1)
    assert metrics.ssim(crop, shifted) < 0.8


def test_landmark_and_temporal_metrics_on_synthetic_points() -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(100, 300, (68, 2))
    iod = metrics.inter_ocular(pts)
    assert metrics.landmark_distance(pts + np.array([iod / 10, 0]), pts) == pytest.approx(0.1)
    # the same motion in result and dst is no jitter; an extra motion in the result is
    assert metrics.landmark_jitter(pts, pts + 5, pts, pts + 5) == pytest.approx(0.0)
    assert metrics.landmark_jitter(pts, pts + np.array([iod / 20, 0]), pts, pts) == pytest.approx(0.05)


def _synthetic_face() -> np.ndarray:
    """68 points: eye centres at (100, 100) and (200, 100) (inter-ocular distance 100), each eye's lids
    10 px apart, the inner lips closed on y = 200; the other points random."""
    pts = np.random.default_rng(1).uniform(80, 220, (68, 2))
    for eye, cx in ((slice(36, 42), 100.0), (slice(42, 48), 200.0)):
        pts[eye] = [[cx - 15, 100], [cx - 5, 95], [cx + 5, 95], [cx + 15, 100], [cx + 5, 105], [cx - 5, 105]]
    pts[60:68] = [[130, 200], [140, 200], [150, 200], [160, 200], [170, 200], [160, 200], [150, 200], [140, 200]]
    return pts


def test_mouth_and_eye_opening_on_synthetic_points() -> None:
    face = _synthetic_face()
    assert expression.mouth_opening(face) == pytest.approx(0.0)
    assert expression.eye_opening(face) == pytest.approx(0.1)
    opened, pressed = face.copy(), face.copy()
    opened[65:68, 1] += 20  # the lower inner lip moves down 20 px: a fifth of the inter-ocular distance
    pressed[65:68, 1] -= 3
    assert expression.mouth_opening(opened) == pytest.approx(0.2)
    assert expression.mouth_opening(pressed) == pytest.approx(-0.03)
    assert expression.eye_opening(opened) == pytest.approx(0.1)  # the eyes did not move
    blink = face.copy()
    blink[[40, 41, 46, 47], 1] -= 8  # lower lids up 8 of the 10 px
    assert expression.eye_opening(blink) == pytest.approx(0.02)
    # head roll and face size change nothing: the gaps are along the face's own vertical, in its own units
    a = np.radians(30)
    turn = 2.0 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    assert expression.mouth_opening(opened @ turn.T + 40) == pytest.approx(0.2)
    assert expression.eye_opening(blink @ turn.T + 40) == pytest.approx(0.02)


def test_correlation_share_and_detail_ratio_on_synthetic_values() -> None:
    assert metrics.correlation([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(1.0)
    assert metrics.correlation([0, 1, 2, 3], [7, 5, 3, 1]) == pytest.approx(-1.0)
    assert metrics.correlation([0.1] * 5, [1, 2, 3, 4, 5]) is None  # a constant series has no variance
    assert metrics.correlation([0, 0, 0], [1, 2, 3]) is None
    assert metrics.correlation([1, 2], [1, 2]) is None  # fewer than 3 frames
    assert metrics.closer_share([0.4, 0.9, 0.5, 0.7], [0.8, 0.6, 0.9, 0.7]) == 0.5  # a tie is not closer
    assert metrics.closer_share([], []) is None
    assert metrics.mean_abs_difference([0.1, 0.0, 0.3], [0.0, 0.0, 0.1]) == pytest.approx(0.1)
    assert metrics.mean_abs_difference([], []) is None
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hull = np.array([[8.0, 8.0], [56.0, 8.0], [56.0, 56.0], [8.0, 56.0]])
    assert metrics.detail_ratio(noise, noise, hull) == pytest.approx(1.0)
    assert 0.0 < metrics.detail_ratio(cv2.GaussianBlur(noise, (0, 0), 1.0), noise, hull) < 0.2
    assert np.isnan(metrics.detail_ratio(noise, np.full_like(noise, 90), hull))  # flat dst: no ratio


def test_per_video_values_in_the_summary_and_version_1_summaries_still_read(tmp_path: Path) -> None:
    def row(i: int, mouth: float, id_src: float, status: str = "ok") -> FrameMetrics:
        r = FrameMetrics(i, "ok", mouth_open_dst=0.1 * i, eye_open_dst=0.1, detail=0.5, id_dst=0.8)
        if status == "ok":
            r.mouth_open_result, r.eye_open_result, r.id_src = mouth, 0.1, id_src
        else:
            r.status, r.id_dst = "no_face_result", float("nan")
        return r

    rows = [row(0, 0.0, 0.4), row(1, 0.1, 0.9), row(2, 0.0, 0.5, "no_face_result"), row(3, 0.3, 0.3)]
    summary = summarise(rows, {"frames_sampled": 4, "result_frames": 4, "dst_frames": 4})
    assert summary["version"] == VERSION == 3
    video = summary["video"]
    assert video["mouth_corr"]["n"] == 3 and video["mouth_corr"]["value"] > 0.9  # frames 0, 1, 3
    # |0 - 0| + |0.1 - 0.1| + |0.3 - 0.3| over frames 0, 1, 3
    assert video["mouth_err"] == {"value": pytest.approx(0.0), "n": 3}
    assert video["eye_corr"] == {"value": None, "n": 3}  # constant eye openings
    assert video["id_share"] == {"value": pytest.approx(2 / 3), "n": 3}
    assert summary["metrics"]["detail"] == {"mean": 0.5, "std": 0.0, "n": 4}
    # a version 1 summary (before these columns) is still read, the new columns without a value
    old = {k: v for k, v in summary.items() if k != "video"}
    old["version"], old["metrics"] = 1, {k: v for k, v in summary["metrics"].items() if k != "detail"}
    (tmp_path / "v1.json").write_text(json.dumps(old))
    read = read_summary(tmp_path / "v1.json")
    assert read["video"]["id_share"] == {"value": None, "n": 0} and read["metrics"]["detail"]["mean"] is None
    assert read["video"]["mouth_err"] == {"value": None, "n": 0}
    table = markdown_table({"new": summary, "old": read})
    assert "| mouth corr ↑ | mouth error ↓ | eye corr ↑ | detail ↑ | id share ↑ |" in table
    assert "| n/a | n/a | n/a | n/a | n/a | 3 / 1 |" in table.splitlines()[-1]
    assert any(line.startswith("id share") and "0.667" in line for line in summary_lines(summary))
    (tmp_path / "v9.json").write_text(json.dumps({**summary, "version": 9}))
    with pytest.raises(InputError, match="unsupported evaluation summary version 9"):
        read_summary(tmp_path / "v9.json")


def test_sample_indices_are_spread_and_include_the_ends() -> None:
    assert sample_indices(216, 4) == [0, 72, 143, 215]
    assert sample_indices(5, 100) == [0, 1, 2, 3, 4]
    assert sample_indices(0, 10) == []


# ---- the whole evaluation on real footage ---------------------------------------------------------


def test_dst_against_itself_is_a_perfect_swap_of_dst(dst_dir: Path, src_faces: Path) -> None:
    ev = evaluate_swap(dst_dir, dst_dir, src_faces, EvaluateOptions(frames=3, src_limit=8))
    m = ev.summary["metrics"]
    assert ev.summary["frames"] == {"ok": 3, "no_face_result": 0, "no_face_dst": 0}
    assert m["ssim"]["mean"] == pytest.approx(1.0)
    for key in ("perceptual", "landmarks", "pose", "jitter", "flicker"):
        assert m[key]["mean"] == pytest.approx(0.0, abs=1e-6), key
    assert m["id_dst"]["mean"] < 0.05
    assert m["id_src"]["mean"] > SAME_PERSON_THRESHOLD  # dst (man H) is not src (woman D)
    assert m["jitter"]["n"] == 2  # the last sampled frame is the last frame: it has no successor


def test_shifted_copy_lowers_ssim_and_moves_the_landmarks(dst_frames: list[np.ndarray], dst_dir: Path,
                                                          tmp_path: Path) -> None:
    shift = np.float32([[1, 0, 12], [0, 1, 0]])
    moved = _write_frames(tmp_path / "shifted", dst_frames,
                          lambda x: cv2.warpAffine(x, shift, (x.shape[1], x.shape[0]), borderMode=cv2.BORDER_REFLECT))
    ev = evaluate_swap(moved, dst_dir, None, EvaluateOptions(frames=3, temporal=False))
    m = ev.summary["metrics"]
    assert m["ssim"]["mean"] < 0.75
    assert m["landmarks"]["mean"] > 0.05  # 12 px is about a tenth of this face's inter-ocular distance
    assert m["id_dst"]["mean"] < SAME_PERSON_THRESHOLD  # still the same person
    assert m["id_src"]["n"] == 0  # no src faces given: no identity-to-src values


def test_blurred_copy_raises_the_perceptual_distance(dst_frames: list[np.ndarray], dst_dir: Path,
                                                     tmp_path: Path) -> None:
    blurred = _write_frames(tmp_path / "blurred", dst_frames, lambda x: cv2.GaussianBlur(x, (0, 0), 3.0))
    ev = evaluate_swap(blurred, dst_dir, None, EvaluateOptions(frames=2, temporal=False))
    m = ev.summary["metrics"]
    assert m["perceptual"]["mean"] > 0.1
    assert m["ssim"]["mean"] < 0.95


def test_dst_against_itself_follows_expression_keeps_detail_and_is_not_src(spread_dir: Path, src_faces: Path,
                                                                           tmp_path: Path) -> None:
    ev = _evaluate_spread(spread_dir, spread_dir, src_faces)
    video, m = ev.summary["video"], ev.summary["metrics"]
    mouth = [r.mouth_open_dst for r in ev.rows]
    assert max(mouth) - min(mouth) > 0.3  # the sampled frames do open and close the mouth
    assert video["mouth_corr"]["n"] == video["eye_corr"]["n"] == SPREAD
    assert video["mouth_corr"]["value"] > 0.99 and video["eye_corr"]["value"] > 0.99
    assert m["detail"]["mean"] == pytest.approx(1.0) and m["detail"]["n"] == SPREAD
    assert video["id_share"] == {"value": 0.0, "n": SPREAD}  # dst's own face is never closer to src (woman D)
    write_reports(ev, tmp_path / "frames.csv", tmp_path / "summary.json")
    rows = list(csv.DictReader((tmp_path / "frames.csv").open()))
    assert all(rows[0][c] != "" for c in NEW_COLUMNS)
    assert read_summary(tmp_path / "summary.json")["video"]["mouth_corr"]["n"] == SPREAD


def test_shuffled_frames_do_not_follow_dst_s_mouth(spread_frames: list[np.ndarray], spread_dir: Path,
                                                  tmp_path: Path) -> None:
    # a fixed shuffle, not the time-reversed clip: the clip's two mouth openings are nearly symmetric in time,
    # so its reversal still correlates (about 0.88 on these frames)
    order = np.random.default_rng(0).permutation(SPREAD)
    shuffled = _write_frames(tmp_path / "shuffled", [spread_frames[k] for k in order], lambda x: x)
    ev = _evaluate_spread(shuffled, spread_dir)
    video = ev.summary["video"]
    assert video["mouth_corr"]["n"] >= SPREAD - 2
    assert video["mouth_corr"]["value"] < 0.5
    assert video["eye_corr"]["value"] < 0.5
    assert video["id_share"] == {"value": None, "n": 0}  # no src faces given


def test_blurred_result_loses_detail_but_follows_the_mouth(spread_frames: list[np.ndarray], spread_dir: Path,
                                                           tmp_path: Path) -> None:
    blurred = _write_frames(tmp_path / "blurred", spread_frames, lambda x: cv2.GaussianBlur(x, (0, 0), 3.0))
    ev = _evaluate_spread(blurred, spread_dir)
    video, m = ev.summary["video"], ev.summary["metrics"]
    assert m["detail"]["n"] == SPREAD and m["detail"]["mean"] < 0.2
    assert video["mouth_corr"]["n"] >= SPREAD - 2 and video["mouth_corr"]["value"] > 0.9


def test_frames_without_a_face_in_the_result_are_counted_not_dropped(dst_frames: list[np.ndarray], dst_dir: Path,
                                                                     tmp_path: Path) -> None:
    def erase(x: np.ndarray) -> np.ndarray:
        out = x.copy()
        out[60:420, 80:400] = 128
        return out

    blank = _write_frames(tmp_path / "blank", dst_frames, erase)
    ev = evaluate_swap(blank, dst_dir, None, EvaluateOptions(frames=2))
    assert ev.summary["frames"] == {"ok": 0, "no_face_result": 2, "no_face_dst": 0}
    assert all(r.status == "no_face_result" and np.isnan(r.id_dst) for r in ev.rows)
    assert ev.summary["metrics"]["ssim"]["n"] == 2  # the face region is still compared
    assert ev.summary["metrics"]["landmarks"]["mean"] is None
    # the reports keep those rows, with empty cells
    write_reports(ev, tmp_path / "frames.csv", tmp_path / "summary.json")
    rows = list(csv.DictReader((tmp_path / "frames.csv").open()))
    assert [r["status"] for r in rows] == ["no_face_result", "no_face_result"] and rows[0]["id_dst"] == ""
    summary = read_summary(tmp_path / "summary.json")
    assert summary["frames"]["no_face_result"] == 2
    assert "n/a" in markdown_table({"blank": summary})


def test_another_persons_clip_has_a_large_identity_distance() -> None:
    other, dst = shared_file("clips/lp_d6.mp4"), shared_file("clips/lp_d18.mp4")  # woman B vs man H, both 480 px
    ev = evaluate_swap(other, dst, None, EvaluateOptions(frames=3, temporal=False))
    m = ev.summary["metrics"]
    assert m["id_dst"]["n"] >= 2
    assert m["id_dst"]["mean"] > SAME_PERSON_THRESHOLD
    assert any("only the first 216 were compared" in line for line in summary_lines(ev.summary))


def test_identity_metric_separates_the_shared_pairs() -> None:
    """The pairs of ../shared/data/README.md: different people above dlib's 0.6, a clip's two halves below."""
    embedder = create_embedder()
    names = ("lp_d10", "lp_d18", "lp_d6", "lp_d9", "lp_d3")
    per_frame = {n: clip_embeddings(shared_file(f"clips/{n}.mp4"), embedder, frames=6) for n in names}
    ident = {n: e.mean(axis=0) for n, e in per_frame.items()}
    for a, b in (("lp_d10", "lp_d18"), ("lp_d6", "lp_d9"), ("lp_d3", "lp_d9")):
        assert np.linalg.norm(ident[a] - ident[b]) > 0.7, (a, b)
    for n, e in per_frame.items():
        assert len(e) >= 5
        assert np.linalg.norm(e[0::2].mean(axis=0) - e[1::2].mean(axis=0)) < 0.3, n


def test_faceset_identity_is_the_persons(src_faces: Path) -> None:
    embedder = create_embedder()
    ident, n = faceset_embedding(src_faces, embedder, limit=8)
    assert n >= 6
    clip = clip_embeddings(SAMPLES / "src.mp4", embedder, frames=3).mean(axis=0)
    assert np.linalg.norm(ident - clip) < 0.3


# ---- inputs and the command ------------------------------------------------------------------------


def test_mismatched_sizes_and_missing_inputs_are_input_errors(dst_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="are 512x512 but dst"):
        evaluate_swap(SAMPLES / "src.mp4", dst_dir, None)
    with pytest.raises(InputError, match="no such result"):
        evaluate_swap(tmp_path / "missing.mp4", dst_dir, None)
    with pytest.raises(InputError, match="no aligned faces"):
        evaluate_swap(dst_dir, dst_dir, tmp_path)


def test_cli_writes_csv_and_json_and_reports_errors_in_one_line(dst_dir: Path, tmp_path: Path) -> None:
    def facelab(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "facelab.cli.main", *map(str, args)],
                              capture_output=True, text=True, timeout=600)

    res = facelab("evaluate", "--result", dst_dir, "--dst", dst_dir, "--frames", "2", "--no-temporal",
                  "--json", tmp_path / "s.json", "--csv", tmp_path / "f.csv")
    assert res.returncode == 0, res.stderr
    assert "SSIM" in res.stdout and "1.000 ± 0.000" in res.stdout
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["schema"] == "facelab.evaluate" and summary["frames_sampled"] == 2
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 3
    res = facelab("evaluate", "--result", tmp_path / "nope.mp4", "--dst", dst_dir)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("error:")] == [
        f"error: {tmp_path / 'nope.mp4'}: no such result video or frame folder"]

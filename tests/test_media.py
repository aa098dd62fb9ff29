"""Video I/O: probe, frame extraction (resumable), lossless/lossy rebuild with copied audio, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from facelab.cli import video as video_cli
from facelab.core.errors import InputError
from facelab.core.types import Image
from facelab.media.encode import build_video
from facelab.media.frames import (
    FRAME_INFO_NAME,
    extract_frames,
    frame_name,
    list_frames,
    read_frame_info,
    read_image_rgb,
)
from facelab.media.video import iter_frames, parse_fps, probe_video

DST = Path(__file__).parents[1] / "samples" / "dst.mp4"
DST_FRAMES = 216
AAC_FRAME_S = 1024 / 44100  # one AAC frame of the sample's 44.1 kHz audio


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [bytes(pkt) for pkt in container.demux(stream) if pkt.size > 0]


def _frames(path: Path) -> Iterator[Image]:
    return (rgb for _, rgb in iter_frames(path))


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dst.mp4 extracted once, as PNG, for the whole module (tests must not modify it)."""
    out = tmp_path_factory.mktemp("media") / "frames"
    extract_frames(DST, out)
    return out


@pytest.fixture(scope="module")
def lossless_mp4(frames_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("media") / "lossless.mp4"
    build_video(frames_dir, out, audio_from=DST, lossless=True)
    return out


@pytest.fixture()
def small_frames(frames_dir: Path, tmp_path: Path) -> Path:
    """The first 8 frames of dst.mp4, without a video.json."""
    folder = tmp_path / "small"
    folder.mkdir()
    for i in range(8):
        shutil.copy(frames_dir / frame_name(i, "png"), folder / frame_name(i, "png"))
    return folder


def test_probe_sample() -> None:
    info = probe_video(DST)
    assert (info.width, info.height) == (480, 480)
    assert info.fps == 30.0
    assert info.fps_fraction == "30/1"
    assert info.frame_count == DST_FRAMES
    assert info.duration_s == pytest.approx(7.2, abs=0.01)
    assert info.codec == "h264"
    assert info.has_audio
    assert info.audio_codec == "aac"
    assert info.audio_duration_s == pytest.approx(7.2, abs=0.05)


def test_parse_fps() -> None:
    assert parse_fps("30000/1001").denominator == 1001
    assert parse_fps(30000 / 1001) == parse_fps("30000/1001")
    assert parse_fps(29.97) == parse_fps("2997/100")
    assert parse_fps("25") == 25
    for bad in ("0", "-5", "abc", "1/0", float("nan")):
        with pytest.raises(InputError, match="invalid frame rate"):
            parse_fps(bad)


def test_frame_name() -> None:
    assert frame_name(0, "png") == "000000.png"
    assert frame_name(215, ".JPG") == "000215.jpg"
    assert frame_name(1_234_567, "png") == "1234567.png"
    with pytest.raises(ValueError):
        frame_name(-1, "png")


def test_extract_frames_writes_folder(frames_dir: Path) -> None:
    frames = list_frames(frames_dir)
    assert [p.name for p in frames] == [frame_name(i, "png") for i in range(DST_FRAMES)]
    info = read_frame_info(frames_dir)
    assert info is not None
    assert info == json.loads((frames_dir / FRAME_INFO_NAME).read_text())
    assert info["schema"] == "facelab.video" and info["version"] == 1
    assert info["source"] == str(DST.resolve())
    assert (info["width"], info["height"], info["frame_count"]) == (480, 480, DST_FRAMES)
    assert (info["fps"], info["fps_fraction"], info["source_fps"]) == (30.0, "30/1", 30.0)
    assert (info["has_audio"], info["audio_codec"], info["format"]) == (True, "aac", "png")
    # Only the frames and video.json remain: no temporary files or resume marker.
    assert sorted(p.name for p in frames_dir.iterdir()) == sorted([*(p.name for p in frames), FRAME_INFO_NAME])
    # PNG is lossless: the files hold exactly the decoded pixels.
    first, last = next(iter_frames(DST))[1], read_image_rgb(frames[-1])
    assert np.array_equal(read_image_rgb(frames[0]), first)
    assert last.shape == (480, 480, 3) and last.dtype == np.uint8


def test_extract_again_skips_complete_folder(frames_dir: Path) -> None:
    mtimes = [p.stat().st_mtime_ns for p in list_frames(frames_dir)]
    json_mtime = (frames_dir / FRAME_INFO_NAME).stat().st_mtime_ns
    info = extract_frames(DST, frames_dir)
    assert (info.written, info.skipped, info.frame_count) == (0, DST_FRAMES, DST_FRAMES)
    assert [p.stat().st_mtime_ns for p in list_frames(frames_dir)] == mtimes
    assert (frames_dir / FRAME_INFO_NAME).stat().st_mtime_ns == json_mtime


def test_extract_resumes_interrupted_run(tmp_path: Path) -> None:
    out = tmp_path / "frames"

    class Killed(Exception):
        pass

    def die_after_20(done: int, total: int) -> None:
        if done == 20:
            raise Killed

    with pytest.raises(Killed):
        extract_frames(DST, out, fps=10, fmt="jpg", progress=die_after_20)
    assert not (out / FRAME_INFO_NAME).exists()
    assert len(list_frames(out)) == 20
    mtimes = {p.name: p.stat().st_mtime_ns for p in list_frames(out)}

    info = extract_frames(DST, out, fps=10, fmt="jpg")
    assert (info.written, info.skipped, info.frame_count) == (52, 20, 72)  # 7.2 s at 10 fps
    assert info.fps_fraction == "10/1" and info.source_fps == 30.0
    assert {p.name: p.stat().st_mtime_ns for p in list_frames(out)[:20]} == mtimes
    assert [p.name for p in list_frames(out)] == [frame_name(i, "jpg") for i in range(72)]
    assert read_frame_info(out) is not None

    # A different extraction into the same folder is refused rather than mixed in.
    with pytest.raises(InputError, match="another extraction"):
        extract_frames(DST, out, fmt="jpg")


def test_extract_refuses_folder_with_foreign_images(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "holiday.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="not from an extraction"):
        extract_frames(DST, tmp_path)


def test_iter_frames_resamples_by_timestamp() -> None:
    def digests(fps: float | str | None) -> list[bytes]:
        return [hashlib.sha1(rgb.tobytes()).digest() for _, rgb in iter_frames(DST, fps=fps)]

    source = digests(None)
    assert len(source) == DST_FRAMES
    assert digests(10) == source[::3]  # the frame on screen at 0, 0.1, 0.2, ... s
    assert digests("60") == [d for d in source for _ in range(2)]  # every frame twice


@pytest.mark.parametrize("fps", ["2", "5", "7", "12.5", "29.97", "30000/1001"])
def test_resampled_count_is_what_iter_frames_yields(fps: str) -> None:
    """Progress totals and extraction's frame names use this count: it must be exact, not an estimate."""
    from facelab.extract.source import FrameSource
    from facelab.media.video import resampled_count

    info = probe_video(DST)
    yielded = sum(1 for _ in iter_frames(DST, fps=fps))
    assert resampled_count(info.frame_count, parse_fps(info.fps_fraction), parse_fps(fps)) == yielded
    assert FrameSource(DST, float(parse_fps(fps))).count == yielded


def test_lossless_rebuild_is_pixel_identical(lossless_mp4: Path) -> None:
    count = 0
    for count, (original, rebuilt) in enumerate(zip(_frames(DST), _frames(lossless_mp4), strict=True), 1):
        assert np.array_equal(original, rebuilt), f"frame {count - 1} differs"
    assert count == DST_FRAMES


def test_lossless_rebuild_keeps_timing_and_audio(lossless_mp4: Path) -> None:
    source, rebuilt = probe_video(DST), probe_video(lossless_mp4)
    assert rebuilt.frame_count == source.frame_count == DST_FRAMES
    assert rebuilt.fps_fraction == source.fps_fraction == "30/1"
    assert rebuilt.duration_s == pytest.approx(source.duration_s, abs=1 / 30)
    assert rebuilt.has_audio and rebuilt.audio_codec == "aac"
    assert source.audio_duration_s is not None and rebuilt.audio_duration_s is not None
    assert abs(rebuilt.audio_duration_s - source.audio_duration_s) <= AAC_FRAME_S


def test_audio_is_stream_copied_bit_exact(lossless_mp4: Path) -> None:
    original, copied = _audio_packets(DST), _audio_packets(lossless_mp4)
    assert len(original) > 300
    assert copied == original


def test_lossy_build_plays_back(frames_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "lossy.mp4"
    build_video(frames_dir, out, crf=23)
    info = probe_video(out)
    assert info.frame_count == DST_FRAMES
    assert info.fps_fraction == "30/1"  # from video.json
    assert not info.has_audio
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    first_src, first_out = next(_frames(DST)), next(_frames(out))
    assert np.abs(first_src.astype(int) - first_out.astype(int)).mean() < 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp file renamed away


def test_h265_lossless_and_exact_fractional_fps(small_frames: Path, tmp_path: Path) -> None:
    out = tmp_path / "h265.mp4"
    build_video(small_frames, out, codec="h265", lossless=True, fps="30000/1001")
    info = probe_video(out)
    assert (info.codec, info.frame_count, info.fps_fraction) == ("hevc", 8, "30000/1001")
    originals = [read_image_rgb(p) for p in list_frames(small_frames)]
    assert all(np.array_equal(a, b) for a, b in zip(originals, _frames(out), strict=True))


def test_build_default_fps_and_odd_sizes(tmp_path: Path) -> None:
    frames = tmp_path / "odd"
    frames.mkdir()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (51, 77, 3), dtype=np.uint8) for _ in range(3)]
    for i, rgb in enumerate(images):
        cv2.imwrite(str(frames / frame_name(i, "png")), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    build_video(frames, tmp_path / "padded.mp4")  # no video.json: 30 fps; yuv420p: padded to even
    padded = probe_video(tmp_path / "padded.mp4")
    assert (padded.width, padded.height, padded.fps_fraction, padded.frame_count) == (78, 52, "30/1", 3)
    build_video(frames, tmp_path / "exact.mkv", lossless=True)  # RGB: no padding needed
    with av.open(str(tmp_path / "exact.mkv")) as container:
        assert container.streams.video[0].frames == 0  # Matroska keeps no frame count...
    assert probe_video(tmp_path / "exact.mkv").frame_count == 3  # ...so probe_video decodes to count
    assert all(np.array_equal(a, b) for a, b in zip(images, _frames(tmp_path / "exact.mkv"), strict=True))

    cv2.imwrite(str(frames / frame_name(3, "png")), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match="differs from the first frame"):
        build_video(frames, tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_video_input(small_frames: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    truncated = tmp_path / "truncated.mp4"
    data = DST.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.3)])
    cases = {
        tmp_path / "missing.mp4": "no such file",
        text: "not a video file",
        truncated: "truncated or corrupt",
        DST.parent / "fr_obama.jpg": "still image",
        tmp_path: "is a folder",
    }
    for path, message in cases.items():
        with pytest.raises(InputError, match=message) as err:
            probe_video(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        with pytest.raises(InputError, match=message):
            next(iter_frames(path))
    with pytest.raises(InputError, match="truncated or corrupt"):
        extract_frames(truncated, tmp_path / "frames")
    with pytest.raises(InputError, match="no such file"):
        build_video(small_frames, tmp_path / "out.mp4", audio_from=tmp_path / "missing.mp4")


def test_decode_error_part_way_names_the_frame(small_frames: Path, tmp_path: Path) -> None:
    # build_video writes MP4s with the index first (faststart), so a cut copy still opens: its data box
    # (mdat) runs past the end, and it is refused at once; damaged data inside is found by decoding.
    whole = tmp_path / "whole.mp4"
    build_video(small_frames, whole, crf=30)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(InputError, match=r"truncated: the file ends at byte \d+ inside its 'mdat' box"):
        next(iter_frames(cut))
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data[: int(len(data) * 0.6)] + bytes(len(data) - int(len(data) * 0.6)))
    with pytest.raises(InputError, match=r"decoding failed at frame \d+: file truncated or corrupt"):
        for _ in iter_frames(damaged):
            pass


def test_frame_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        list_frames(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "000000.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="no frame images"):
        list_frames(tmp_path)
    assert read_frame_info(tmp_path) is None
    (tmp_path / FRAME_INFO_NAME).write_text(json.dumps({"schema": "other", "version": 1}))
    with pytest.raises(InputError, match="schema"):
        read_frame_info(tmp_path)
    (tmp_path / FRAME_INFO_NAME).write_text(json.dumps({"schema": "facelab.video", "version": 9}))
    with pytest.raises(InputError, match="version"):
        read_frame_info(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match="unreadable image"):
        read_image_rgb(broken)


def test_cli_frames_and_build(tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(video_cli.app, name="video")
    runner = CliRunner()
    frames, out = tmp_path / "frames", tmp_path / "out.mp4"
    result = runner.invoke(app, ["video", "frames", str(DST), "-o", str(frames), "--fps", "5", "--format", "jpg"])
    assert result.exit_code == 0, result.output
    assert f"Wrote 36 of 36 frames to {frames}" in result.output
    result = runner.invoke(app, ["video", "build", str(frames), "-o", str(out), "--audio-from", str(DST)])
    assert result.exit_code == 0, result.output
    assert f"Wrote {out} (36 frames, 480x480, 5/1 fps" in result.output
    info = probe_video(out)
    assert (info.frame_count, info.fps_fraction, info.audio_codec) == (36, "5/1", "aac")
    result = runner.invoke(app, ["video", "build", str(frames), "-o", str(out), "--crf", "20", "--lossless"])
    assert isinstance(result.exception, InputError)
    result = runner.invoke(app, ["video", "frames", str(DST), "-o", str(frames), "--format", "gif"])
    assert result.exit_code == 2
    # every option also comes from a config file; flags given on the command line win
    cfg = tmp_path / "video.toml"
    cfg.write_text('[video_frames]\nfps = "4"\nformat = "jpg"\njpeg_quality = 80\n\n'
                   '[video_build]\nfps = "8"\ncrf = 30\n', encoding="utf-8")
    frames4, out8 = tmp_path / "frames4", tmp_path / "out8.mp4"
    result = runner.invoke(app, ["video", "frames", str(DST), "-o", str(frames4), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "Wrote 29 of 29 frames" in result.output and len(list(frames4.glob("*.jpg"))) == 29
    result = runner.invoke(app, ["video", "build", str(frames4), "-o", str(out8), "--config", str(cfg),
                                 "--fps", "10"])
    assert result.exit_code == 0, result.output
    assert "10/1 fps, h264 crf 30" in result.output
    cfg.write_text("[video_build]\ncrf = 99\n", encoding="utf-8")
    result = runner.invoke(app, ["video", "build", str(frames4), "-o", str(out8), "--config", str(cfg)])
    assert isinstance(result.exception, InputError) and "crf" in str(result.exception)

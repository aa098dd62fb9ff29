"""Media from the wild: cut and empty files, audio-only and non-media files, variable frame rate, rotated
phone video, 10-bit and 4:4:4 input, odd sizes, 4K/8K frames and decompression bombs.

Each case is either read correctly or refused with a one-line InputError (the CLI's exit 2). Every test
file is generated here with PyAV, small and fast.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from facelab.core.errors import InputError
from facelab.core.types import Image
from facelab.extract.source import FrameSource
from facelab.media.encode import build_video
from facelab.media.frames import extract_frames, list_frames, read_image_rgb
from facelab.media.limits import MAX_PIXELS_ENV, decode_image
from facelab.media.video import count_at, iter_frames, probe_video

AUDIO_RATE = 44100


def _pattern(width: int, height: int, value: int) -> Image:
    """A frame whose orientation and identity can be read back after lossy coding: a white block in the
    top-left quarter, everything else at grey level ``value``."""
    rgb = np.full((height, width, 3), value, np.uint8)
    rgb[: height // 4, : width // 4] = 255
    return rgb


def make_video(
    path: Path,
    frames: Sequence[Image],
    *,
    times: Sequence[Fraction] | None = None,
    rate: int = 30,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    hflip: bool = False,
    audio_s: float = 0.0,
    faststart: bool = False,
) -> Path:
    """Write ``frames`` (RGB) as a video: at ``rate`` fps, or at ``times`` (seconds: variable rate); with
    a display-matrix rotation; with ``audio_s`` seconds of AAC (a tone)."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", container_options=options) as out:
        stream = out.add_stream(codec, rate=rate, options={"preset": "ultrafast"} if "x26" in codec else {})
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.height, stream.width = frames[0].shape[:2] if frames else (48, 64)
        stream.pix_fmt = pix_fmt
        time_base = Fraction(1, 1000) if times is not None else Fraction(1, rate)
        stream.time_base = stream.codec_context.time_base = time_base
        if rotation is not None or hflip:
            stream.set_display_rotation(rotation or 0, hflip=hflip)
        audio = out.add_stream("aac", rate=AUDIO_RATE) if audio_s else None
        out.start_encoding()
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = int(times[i] / time_base) if times is not None else i
            frame.time_base = time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:
            t = np.arange(int(audio_s * AUDIO_RATE)) / AUDIO_RATE
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(samples), 1024):
                chunk = samples[start:start + 1024][None, :]
                aframe = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                aframe.sample_rate, aframe.pts = AUDIO_RATE, start
                out.mux(audio.encode(aframe))
            out.mux(audio.encode(None))
    return path


def _noise_frames(count: int, width: int = 128, height: int = 96) -> list[Image]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _refused(path: Path, *words: str) -> str:
    """The one-line InputError that probing, decoding, frame extraction and extraction's source all give."""
    messages = []
    for read in (probe_video, lambda p: next(iter_frames(p)), lambda p: extract_frames(p, p.parent / "frames"),
                 FrameSource):
        with pytest.raises(InputError) as err:
            read(path)
        text = str(err.value)
        assert "\n" not in text and str(path) in text, text
        assert all(w in text for w in words), f"{words} not in {text!r}"
        messages.append(text)
    assert not (path.parent / "frames").exists() or not list((path.parent / "frames").glob("*.png"))
    return messages[0]


# ---- cut, empty and non-video files --------------------------------------------------------------

@pytest.mark.parametrize("faststart", [False, True], ids=["index-last", "index-first"])
def test_truncated_mp4_refused_at_every_cut(tmp_path: Path, faststart: bool) -> None:
    whole = make_video(tmp_path / "whole.mp4", _noise_frames(20), audio_s=0.7, faststart=faststart)
    data = whole.read_bytes()
    moov, mdat = data.find(b"moov") - 4, data.find(b"mdat") - 4
    header_end = mdat if faststart else moov
    cuts = {"in ftyp": 12, "in the first box after ftyp": 40, "header only": header_end + 8,
            "30%": len(data) * 3 // 10, "60%": len(data) * 6 // 10, "last byte": len(data) - 1}
    for label, cut in cuts.items():
        path = tmp_path / f"cut_{label.replace(' ', '_').replace('%', '')}.mp4"
        path.write_bytes(data[:cut])
        message = _refused(path)
        assert "truncated" in message or "holds no video or audio" in message, (label, message)
    assert probe_video(whole).frame_count == 20  # the whole file reads


def test_truncated_matroska_refused(tmp_path: Path) -> None:
    whole = make_video(tmp_path / "whole.mkv", _noise_frames(30))
    data = whole.read_bytes()
    for fraction in (0.02, 0.3, 0.6, 0.9):
        path = tmp_path / f"cut{int(fraction * 100)}.mkv"
        path.write_bytes(data[: int(len(data) * fraction)])
        _refused(path, "truncated")
    assert sum(1 for _ in iter_frames(whole)) == 30


def test_zero_frame_audio_only_and_non_media_files(tmp_path: Path) -> None:
    _refused(make_video(tmp_path / "empty.mp4", []), "holds no video or audio")
    _refused(make_video(tmp_path / "silent.mkv", [], audio_s=0.3), "no video frames")
    audio = tmp_path / "voice.m4a"
    with av.open(str(audio), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=AUDIO_RATE)
        for k in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = AUDIO_RATE, k * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    renamed = tmp_path / "voice.mp4"
    renamed.write_bytes(audio.read_bytes())
    _refused(renamed, "audio-only")
    text = tmp_path / "notes.mp4"
    text.write_text("meeting notes\n" * 50)
    _refused(text, "not a video file")
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    _refused(noise)
    photo = tmp_path / "photo.mp4"
    photo.write_bytes(cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))[1].tobytes())
    _refused(photo, "still image")


# ---- variable frame rate ---------------------------------------------------------------------------

# Frame starts (seconds) of a phone-like variable-rate clip: 30 fps with stalls, then faster.
VFR_TIMES = [Fraction(t, 1000) for t in (0, 33, 67, 100, 300, 333, 367, 700, 733, 750, 767, 783, 800, 833)]


def _on_screen(times: Sequence[Fraction], at: Fraction) -> int:
    """The source frame shown at time ``at``: the last one starting at or before it."""
    return max(i for i, t in enumerate(times) if t <= at + Fraction(1, 1000))


def test_variable_frame_rate_keeps_timing_and_audio(tmp_path: Path) -> None:
    levels = [10 + 17 * i for i in range(len(VFR_TIMES))]
    src = make_video(tmp_path / "vfr.mp4", [_pattern(96, 64, v) for v in levels], times=VFR_TIMES, audio_s=1.0)
    info = probe_video(src)
    assert info.variable_rate and info.fps_fraction == "30/1"
    assert info.duration_s == pytest.approx(float(VFR_TIMES[-1]) + 1 / 30, abs=0.002)

    def level(rgb: Image) -> int:  # the grey level identifies the source frame (H.264 moves it a little)
        return int(np.median(rgb[40:, 40:, 1]))

    def expected(rate: Fraction, count: int) -> list[int]:
        return [levels[_on_screen(VFR_TIMES, k / rate)] for k in range(count)]

    # without --fps: frame k is the one on screen at k/30 s (stalls repeat a frame, the fast part drops some)
    got = [level(rgb) for _, rgb in iter_frames(src)]
    assert len(got) == info.frame_count == count_at(info) == 26
    assert np.abs(np.array(got) - expected(Fraction(30), 26)).max() <= 3
    # with --fps: picked by timestamp too, and the counts every reader uses are exact
    for fps in ("10", "25", "60"):
        picked = [level(rgb) for _, rgb in iter_frames(src, fps)]
        assert len(picked) == count_at(info, fps) == FrameSource(src, float(fps)).count
        assert np.abs(np.array(picked) - expected(Fraction(fps), len(picked))).max() <= 3

    # frames -> video with src's audio: the same duration, frame k still at k/30 s, the audio copied as is
    frames = tmp_path / "frames"
    assert extract_frames(src, frames).frame_count == 26
    out = tmp_path / "out.mp4"
    build_video(frames, out, audio_from=src)
    rebuilt = probe_video(out)
    assert not rebuilt.variable_rate and rebuilt.fps_fraction == "30/1" and rebuilt.frame_count == 26
    assert rebuilt.duration_s == pytest.approx(info.duration_s, abs=1 / 30)
    assert [level(rgb) for _, rgb in iter_frames(out)] == pytest.approx(got, abs=3)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert [bytes(p) for p in a.demux(audio=0) if p.size] == [bytes(p) for p in b.demux(audio=0) if p.size]


def test_constant_rate_video_is_not_resampled(tmp_path: Path) -> None:
    src = make_video(tmp_path / "cfr.mkv", [_pattern(64, 48, 10 * i) for i in range(12)], rate=25)
    info = probe_video(src)  # Matroska's millisecond timestamps round 1/25 s: still constant rate
    assert not info.variable_rate and info.frame_count == 12 and info.fps_fraction == "25/1"


# ---- rotated phone video -----------------------------------------------------------------------------

@pytest.mark.parametrize("rotation", [90, 270, 180])
def test_rotated_video_comes_out_upright_and_stays_so(tmp_path: Path, rotation: int) -> None:
    stored = _pattern(96, 64, 60)  # landscape as stored; the display matrix turns it for the player
    src = make_video(tmp_path / "phone.mp4", [stored] * 3, rotation=rotation, audio_s=0.1)
    with av.open(str(src)) as container:  # the file really carries the matrix a phone writes
        assert next(container.decode(video=0)).rotation == {90: 90, 270: -90, 180: -180}[rotation]
    upright = np.rot90(stored, rotation // 90)  # the picture a player shows (counter-clockwise turns)
    info = probe_video(src)
    assert (info.width, info.height) == (upright.shape[1], upright.shape[0])
    assert info.rotation % 360 == rotation
    for _, rgb in iter_frames(src):
        assert rgb.shape == upright.shape and np.abs(rgb.astype(int) - upright).mean() < 4
    frames = tmp_path / "frames"
    extract_frames(src, frames)
    assert read_image_rgb(list_frames(frames)[0]).shape == upright.shape
    # the result is written upright with no rotation flag: a player shows what it showed for the input
    out = tmp_path / "out.mp4"
    build_video(frames, out, audio_from=src)
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
        assert frame.rotation == 0
        assert np.abs(frame.to_ndarray(format="rgb24").astype(int) - upright).mean() < 4


def test_mirrored_display_matrix_is_refused(tmp_path: Path) -> None:
    src = make_video(tmp_path / "selfie.mp4", [_pattern(64, 48, 60)], rotation=0, hflip=True)
    _refused(src, "mirrors the picture")


# ---- pixel formats, odd and large sizes ----------------------------------------------------------------

@pytest.mark.parametrize(("codec", "pix_fmt"), [("libx264", "yuv420p10le"), ("libx264", "yuv444p"),
                                                ("libx265", "yuv420p10le")])
def test_10bit_and_444_input(tmp_path: Path, codec: str, pix_fmt: str) -> None:
    colours = np.zeros((64, 96, 3), np.uint8)
    colours[:, :32] = (200, 30, 30)
    colours[:, 32:64] = (30, 180, 60)
    colours[:, 64:] = (40, 60, 220)
    src = make_video(tmp_path / "deep.mkv", [colours] * 2, codec=codec, pix_fmt=pix_fmt)
    with av.open(str(src)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == pix_fmt
    frames = [rgb for _, rgb in iter_frames(src)]
    assert len(frames) == 2 and frames[0].dtype == np.uint8 and frames[0].shape == colours.shape
    assert np.abs(frames[0].astype(int) - colours).mean() < 4  # 8-bit RGB, colours right


def test_odd_size(tmp_path: Path) -> None:
    """479 x 361 (4:4:4, as 4:2:0 needs even sizes): read at its size; rebuilt lossless at its size, or as
    4:2:0 H.264 padded by one repeated row and column (4:2:0 cannot hold an odd size)."""
    picture = _pattern(479, 361, 90)
    src = make_video(tmp_path / "odd.mp4", [picture] * 2, pix_fmt="yuv444p")
    info = probe_video(src)
    assert (info.width, info.height) == (479, 361)
    frames = tmp_path / "frames"
    extract_frames(src, frames)
    build_video(frames, tmp_path / "exact.mkv", lossless=True)
    assert (probe_video(tmp_path / "exact.mkv").width, probe_video(tmp_path / "exact.mkv").height) == (479, 361)
    build_video(frames, tmp_path / "padded.mp4")
    padded = next(iter_frames(tmp_path / "padded.mp4"))[1]
    assert padded.shape == (362, 480, 3)
    assert np.abs(padded[:361, :479].astype(int) - picture).mean() < 4


def _peak_while_reading(path: Path) -> tuple[int, int]:
    """(frames read, peak bytes allocated through Python/numpy while reading them one at a time)."""
    tracemalloc.start()
    try:
        count = 0
        for _, rgb in iter_frames(path):
            count += 1
            del rgb
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_4k_frames(tmp_path: Path) -> None:
    src = make_video(tmp_path / "uhd.mp4", [_pattern(3840, 2160, 80)] * 2)
    info = probe_video(src)
    assert (info.width, info.height, info.frame_count) == (3840, 2160, 2)
    count, peak = _peak_while_reading(src)
    frame_bytes = 3840 * 2160 * 3
    assert count == 2 and peak < 2.5 * frame_bytes  # one frame held at a time (plus the one being made)


def test_extraction_holds_a_bounded_number_of_large_frames(tmp_path: Path) -> None:
    from facelab.extract.pipeline import FRAMES_IN_FLIGHT_BYTES, job_backlog

    src = make_video(tmp_path / "uhd.mp4", [_pattern(3840, 2160, 80)])
    source = FrameSource(src)
    assert source.frame_bytes == 3840 * 2160 * 3
    assert job_backlog(8, 1920 * 1080 * 3, 8) == 16  # HD: two runs per worker, as before
    for frame_bytes in (source.frame_bytes, 7680 * 4320 * 3):  # 4K, 8K: fewer runs queued
        backlog = job_backlog(8, frame_bytes, 8)
        assert 1 <= backlog < 16 and backlog * 8 * frame_bytes <= FRAMES_IN_FLIGHT_BYTES
    assert job_backlog(2, 16384 * 16384 * 3, 8) == 1
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "000000.png"), np.zeros((8, 8, 3), np.uint8))
    assert FrameSource(folder).frame_bytes == 0  # folder input: the workers read the files


@pytest.mark.slow
def test_8k_frames_one_at_a_time(tmp_path: Path) -> None:
    src = make_video(tmp_path / "8k.mp4", [_pattern(7680, 4320, 80)] * 2)
    info = probe_video(src)
    assert (info.width, info.height, info.frame_count) == (7680, 4320, 2)
    count, peak = _peak_while_reading(src)
    assert count == 2 and peak < 2.5 * 7680 * 4320 * 3
    frames = tmp_path / "frames"
    extract_frames(src, frames)
    assert read_image_rgb(list_frames(frames)[1]).shape == (4320, 7680, 3)


# ---- decompression bombs and absurd frame sizes --------------------------------------------------------

def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose data is a few rows: a decompression bomb's shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * min(width, 64)) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    png, jpg = tmp_path / "bomb.png", tmp_path / "bomb.jpg"
    png.write_bytes(_png_header_only(60000, 60000))
    jpg.write_bytes(_jpeg_claiming(60000, 60000))
    tracemalloc.start()
    try:
        for path in (png, jpg):
            with pytest.raises(InputError, match=r"claims 60000x60000 pixels .* refused before decoding") as err:
                read_image_rgb(path)
            assert "\n" not in str(err.value) and str(path) in str(err.value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000  # nothing near the 10.8 GB claimed was allocated
    with pytest.raises(InputError, match="claims 60000x60000"):
        decode_image(png.read_bytes(), cv2.IMREAD_GRAYSCALE)  # face files' and masks' decoder
    # under the cap, a header-only PNG is just a damaged image
    small = tmp_path / "small.png"
    small.write_bytes(_png_header_only(300, 200))
    with pytest.raises(InputError, match="unreadable image"):
        read_image_rgb(small)


def test_pixel_cap_is_configurable_and_covers_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "000000.png"
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))
    video = make_video(tmp_path / "clip.mp4", [_pattern(64, 48, 0)])
    monkeypatch.setenv(MAX_PIXELS_ENV, str(64 * 48 - 1))
    with pytest.raises(InputError, match="claims 64x48 pixels"):
        read_image_rgb(image)
    _refused(video, "claims 64x48 pixels", "refused before decoding", MAX_PIXELS_ENV)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(InputError, match=f"{MAX_PIXELS_ENV}='lots' must be a positive whole number"):
        read_image_rgb(image)
    monkeypatch.setenv(MAX_PIXELS_ENV, str(64 * 48))
    assert read_image_rgb(image).shape == (48, 64, 3)
    assert probe_video(video).frame_count == 1


def test_video_claiming_absurd_frame_size(tmp_path: Path) -> None:
    """A Matroska header patched to claim 60000 x 60000 (FFV1 takes the size from the container)."""
    src = make_video(tmp_path / "clip.mkv", [np.zeros((256, 320, 3), np.uint8)], codec="ffv1")
    data = bytearray(src.read_bytes())
    for element, value in ((b"\xb0\x82", 320), (b"\xba\x82", 256)):  # PixelWidth, PixelHeight (2 bytes)
        at = data.find(element + value.to_bytes(2, "big"))
        assert at > 0
        data[at + 2:at + 4] = (60000).to_bytes(2, "big")
    bomb = tmp_path / "bomb.mkv"
    bomb.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        # FFmpeg itself refuses sizes over ~268 megapixels (about facelab's default cap, which
        # test_pixel_cap_is_configurable_and_covers_video checks): nothing is decoded or allocated
        _refused(bomb, "cannot be set up for decoding", "absurd frame size")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


# ---- the command line --------------------------------------------------------------------------------

def test_cli_one_line_errors(tmp_path: Path) -> None:
    whole = make_video(tmp_path / "whole.mp4", _noise_frames(6), faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    bombs = tmp_path / "bombs"
    bombs.mkdir()
    (bombs / "000000.png").write_bytes(_png_header_only(60000, 60000))
    with pytest.raises(InputError, match="claims 60000x60000"):
        build_video(bombs, tmp_path / "o.mp4")
    assert not list(tmp_path.glob("*o.mp4"))
    # one start of the command (it takes seconds): the same errors end as one line and exit code 2
    for args, words in ((["video", "frames", str(cut), "-o", str(tmp_path / "f")], ["truncated"]),):
        res = subprocess.run([sys.executable, "-m", "facelab.cli.main", *args], capture_output=True, text=True,
                             timeout=120, check=False)
        lines = (res.stdout + res.stderr).strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1, res.stdout + res.stderr
        assert "Traceback" not in lines[0] and all(w in lines[0] for w in words), lines[0]

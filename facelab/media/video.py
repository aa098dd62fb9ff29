"""Probe a video and decode its frames as RGB arrays.

Every failure caused by the file itself (missing, not a video, truncated, corrupt) is raised as an
InputError with a one-line message, never as a raw PyAV/FFmpeg exception.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream

from facelab.core.errors import InputError
from facelab.core.types import Image

# What PyAV raises for unreadable input. av.FFmpegError covers FFmpeg's own errors (some of its
# subclasses also derive from OSError or ValueError); plain OSError/ValueError come from the file layer.
AV_ERRORS: tuple[type[Exception], ...] = (av.FFmpegError, OSError, ValueError)

# Demuxers that read a single still image (FFmpeg opens a .jpg or .png as a one-frame "video").
_IMAGE_DEMUXERS = frozenset({"image2"})

# FFmpeg timestamps in container.duration are in units of 1/AV_TIME_BASE seconds.
_AV_TIME_BASE = 1_000_000

# Frame rates are kept as exact fractions; floats are snapped to the nearest fraction with a
# denominator up to this (29.97002997... becomes 30000/1001, 29.97 stays 2997/100).
_MAX_FPS_DENOMINATOR = 100_000


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    fps_fraction: str
    """The exact frame rate as "numerator/denominator", e.g. "30/1" or "30000/1001"."""
    frame_count: int
    duration_s: float
    codec: str
    has_audio: bool
    audio_codec: str | None
    audio_duration_s: float | None


def parse_fps(value: float | str | Fraction) -> Fraction:
    """Parse a frame rate given as a number or a string ("30", "29.97", "30000/1001") into a Fraction."""
    try:
        if isinstance(value, str):
            frac = Fraction(value.strip())
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(value)
        else:
            frac = Fraction(value)
    except (ValueError, ZeroDivisionError, TypeError):
        frac = Fraction(0)
    frac = frac.limit_denominator(_MAX_FPS_DENOMINATOR)
    if not 0 < frac <= 1000:
        raise InputError(f"invalid frame rate {value!r}: expected a positive number like 30, 29.97 or 30000/1001")
    return frac


def fps_to_str(fps: Fraction) -> str:
    """The exact "numerator/denominator" form of a frame rate (30 -> "30/1")."""
    return f"{fps.numerator}/{fps.denominator}"


def one_line(err: BaseException) -> str:
    """A short single-line description of an exception, preferring FFmpeg's own error text."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def _sniff_kind(path: Path) -> str | None:
    """The container family a file's first bytes announce, if it is one we can name."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    if head[4:8] == b"ftyp":
        return "MP4/MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


def _open_error(path: Path, err: Exception) -> InputError:
    detail = one_line(err)
    if isinstance(err, av.error.InvalidDataError | av.error.EOFError):
        kind = _sniff_kind(path)
        if kind is not None:
            return InputError(f"cannot read this {kind} file: it is truncated or corrupt ({detail})", path)
        return InputError(f"not a video file, or a corrupt one (FFmpeg: {detail})", path)
    return InputError(f"cannot open video: {detail}", path)


@contextmanager
def open_media(path: Path | str) -> Iterator[InputContainer]:
    """Open a media file (video or audio) for reading; closes it afterwards."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    if path.is_dir():
        raise InputError("is a folder, not a media file", path)
    try:
        container = av.open(str(path), mode="r")
    except AV_ERRORS as err:
        raise _open_error(path, err) from err
    try:
        yield container
    finally:
        container.close()


@contextmanager
def open_video(path: Path | str) -> Iterator[tuple[InputContainer, VideoStream]]:
    """Open a video for reading and yield (container, first video stream); closes it afterwards."""
    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder, not a video file", path)
    with open_media(path) as container:
        demuxer = container.format.name
        if demuxer in _IMAGE_DEMUXERS or demuxer.endswith("_pipe"):
            raise InputError("is a still image, not a video", path)
        if not container.streams.video:
            raise InputError("has no video stream", path)
        yield container, container.streams.video[0]


def _stream_rate(stream: VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate).limit_denominator(_MAX_FPS_DENOMINATOR)
    return None


def _audio_duration(container: InputContainer) -> float | None:
    """Duration of the first audio stream, from its header or, failing that, from its packets."""
    stream = container.streams.audio[0]
    tb = stream.time_base
    if stream.duration and tb is not None:
        return float(stream.duration * tb)
    start: Fraction | None = None
    end: Fraction | None = None
    for pkt in container.demux(stream):
        if pkt.pts is None or pkt.time_base is None:
            continue
        t0 = pkt.pts * pkt.time_base
        t1 = t0 + (pkt.duration or 0) * pkt.time_base
        start = t0 if start is None else min(start, t0)
        end = t1 if end is None else max(end, t1)
    if start is None or end is None:
        return None
    return float(end - start)


def probe_video(path: Path | str) -> VideoInfo:
    """Read a video's size, frame rate, frame count, duration and audio details.

    The frame count comes from the container when it records one (MP4 does), else by decoding.
    """
    path = Path(path)
    try:
        with open_video(path) as (container, stream):
            ctx = stream.codec_context
            width, height = ctx.width, ctx.height
            codec = ctx.name
            rate = _stream_rate(stream)
            frame_count = stream.frames
            duration: float | None = None
            if stream.duration and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / _AV_TIME_BASE
            has_audio = bool(container.streams.audio)
            audio_codec: str | None = None
            audio_duration: float | None = None
            if has_audio:
                audio_ctx = container.streams.audio[0].codec_context
                audio_codec = audio_ctx.name if audio_ctx is not None else None
                audio_duration = _audio_duration(container)
    except AV_ERRORS as err:
        raise InputError(f"cannot read video: {one_line(err)}", path) from err
    if width <= 0 or height <= 0:
        raise InputError("the video stream has no frame size", path)
    if frame_count <= 0:
        frame_count = sum(1 for _ in iter_frames(path))
    if rate is None:
        if not duration or frame_count <= 0:
            raise InputError("cannot determine the frame rate", path)
        rate = parse_fps(frame_count / duration)
    if duration is None:
        duration = float(frame_count / rate)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=float(rate),
        fps_fraction=fps_to_str(rate),
        frame_count=frame_count,
        duration_s=duration,
        codec=codec,
        has_audio=has_audio,
        audio_codec=audio_codec,
        audio_duration_s=audio_duration,
    )


def _decode_rgb(
    container: InputContainer, stream: VideoStream, path: Path
) -> Iterator[tuple[Fraction | None, Image]]:
    """Yield (presentation time in seconds or None, RGB frame) in display order."""
    frames = container.decode(stream)
    reached = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except AV_ERRORS as err:
            raise InputError(
                f"decoding failed at frame {reached}: file truncated or corrupt ({one_line(err)})", path
            ) from err
        t = frame.pts * frame.time_base if frame.pts is not None and frame.time_base is not None else None
        yield t, np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
        reached += 1


_RESAMPLE_SLACK = Fraction(1, 10)  # of a source frame: absorbs timestamps the container rounded


def resampled_count(frame_count: int, source: Fraction, target: Fraction) -> int:
    """How many frames iter_frames yields when it resamples ``frame_count`` frames at ``source`` fps to
    ``target`` fps (evenly timed frames): the k with k / target + slack < frame_count / source."""
    if frame_count <= 0:
        return 0
    return max(1, math.ceil((frame_count - _RESAMPLE_SLACK) * target / source))


def _resample(
    decoded: Iterator[tuple[Fraction | None, Image]], source: Fraction | None, target: Fraction
) -> Iterator[tuple[int, Image]]:
    """Pick frames at the target rate by timestamp.

    Output frame k is the source frame on screen at time k/target (relative to the first frame): the
    last one that starts at or before it. A tenth of a source frame of slack absorbs timestamps that
    the container rounded. Output stops where the last source frame ends.
    """
    slack = _RESAMPLE_SLACK / source if source else Fraction(0)
    interval = 1 / source if source else 1 / target
    out_index = 0
    origin: Fraction | None = None
    prev: tuple[Fraction, Image] | None = None
    for n, (t, rgb) in enumerate(decoded):
        if t is None:
            t = n * interval
        if origin is None:
            origin = t
        rel = t - origin
        if prev is not None:
            while out_index / target + slack < rel:
                yield out_index, prev[1]
                out_index += 1
            if not source and rel > prev[0]:
                interval = rel - prev[0]
        prev = (rel, rgb)
    if prev is not None:
        end = prev[0] + interval
        while out_index / target + slack < end:
            yield out_index, prev[1]
            out_index += 1


def iter_frames(path: Path | str, fps: float | str | Fraction | None = None) -> Iterator[tuple[int, Image]]:
    """Yield (index, RGB uint8 H x W x 3 frame) for each frame of a video, from index 0.

    With fps, the video is resampled to that rate by timestamp (frames are dropped or repeated).
    A file that fails part-way raises InputError naming the frame reached.
    """
    path = Path(path)
    target = None if fps is None else parse_fps(fps)
    with open_video(path) as (container, stream):
        # Keep FFmpeg's default (slice) threading: with frame threading a truncated file ends early
        # without an error instead of raising.
        decoded = _decode_rgb(container, stream, path)
        if target is None:
            for index, (_, rgb) in enumerate(decoded):
                yield index, rgb
        else:
            yield from _resample(decoded, _stream_rate(stream), target)

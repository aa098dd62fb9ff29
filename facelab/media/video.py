"""Probe a video and decode its frames as upright RGB arrays at a constant rate.

Every failure caused by the file itself (missing, not a video, empty, truncated, corrupt, a frame size
over the pixel cap of facelab.media.limits) is raised as an InputError with a one-line message, never as
a raw PyAV/FFmpeg exception.

Files from the wild, and what reading them gives:
- Rotated phone video (a display matrix: stored landscape, shown portrait): frames come out turned the
  way a player shows them, and VideoInfo's width and height are the displayed ones.
- Variable frame rate (timestamps not k / rate): frames are picked by timestamp at a constant nominal
  rate (the frame on screen at k / rate, repeated over gaps), so that frame k of every reader is shown
  at k / rate and a video rebuilt at that rate keeps the source's timing and its audio in sync.
- Truncated files: an MP4/MOV whose index lists data past the end of the file is refused at once;
  a file that fails to decode part-way raises an error naming the frame reached.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.container import InputContainer
from av.sidedata.sidedata import SideDataContainer
from av.sidedata.sidedata import Type as SideDataType
from av.video.codeccontext import VideoCodecContext
from av.video.stream import VideoStream
from numpy.typing import NDArray

from facelab.core.errors import InputError, printable
from facelab.core.types import Image
from facelab.media.limits import check_pixels

# What PyAV raises for unreadable input. av.FFmpegError covers FFmpeg's own errors (some of its
# subclasses also derive from OSError or ValueError); plain OSError/ValueError come from the file layer.
AV_ERRORS: tuple[type[Exception], ...] = (av.FFmpegError, OSError, ValueError)

# Demuxers that read a single still image (FFmpeg opens a .jpg or .png as a one-frame "video").
_IMAGE_DEMUXERS = frozenset({"image2"})

Ticks = NDArray[np.int64]  # timestamps in a stream's time base

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
    rotation: int = 0
    """Degrees counter-clockwise the stored frames are turned for display (0, 90, 180 or -90); the
    frames iter_frames yields are already turned, and width x height is their (displayed) size."""
    variable_rate: bool = False
    """Whether the timestamps are irregular: frames are then resampled by timestamp at ``fps``."""
    span: Fraction | None = None
    """Variable rate only: seconds from the first frame's start to the last frame's start."""


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
    if path.stat().st_size == 0:
        raise InputError("is an empty file (0 bytes)", path)
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
    """Open a video for reading and yield (container, first video stream); closes it afterwards.

    Refuses, with a one-line InputError, files without a video stream, MP4/MOV files cut short (their
    index lists data past the end of the file) and frame sizes over the pixel cap.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder, not a video file", path)
    with open_media(path) as container:
        demuxer = container.format.name
        if demuxer in _IMAGE_DEMUXERS or demuxer.endswith("_pipe"):
            raise InputError("is a still image, not a video", path)
        if not container.streams.video:
            if container.streams.audio:
                raise InputError("has no video stream (an audio-only file)", path)
            kind = _sniff_kind(path)
            if kind is not None:
                raise InputError(f"this {kind} file holds no video or audio: empty, or truncated in its header", path)
            raise InputError("has no video stream", path)
        _check_not_cut(container, path)
        stream = container.streams.video[0]
        ctx = cast(VideoCodecContext | None, stream.codec_context)  # None when no decoder could be set up
        if ctx is None or ctx.width <= 0 or ctx.height <= 0:
            # FFmpeg leaves the size unset for a header it refuses, frame sizes over ~268 megapixels included
            raise InputError("its video stream cannot be set up for decoding: an unsupported codec, a damaged "
                             "or truncated header, or an absurd frame size", path)
        check_pixels(ctx.width, ctx.height, "the video's frame size", path)
        yield container, stream


def _cut_box(path: Path, size: int) -> tuple[str, int] | None:
    """The first top-level MP4/MOV box whose declared size runs past the end of the file, as (type, end).

    FFmpeg reads a cut index (moov) as far as it goes, which silently loses frames or the audio track.
    A box of size 0 extends to the end of the file by definition (ISO/IEC 14496-12, 4.2).
    """
    pos = 0
    with path.open("rb") as fh:
        while pos + 8 <= size:
            fh.seek(pos)
            head = fh.read(16)
            box_size, kind = struct.unpack(">I4s", head[:8])
            if box_size == 1:  # 64-bit size follows the type
                if len(head) < 16:
                    return kind.decode("latin-1"), pos + 16
                box_size = struct.unpack(">Q", head[8:16])[0]
            elif box_size == 0:
                return None
            if box_size < 8 or pos + box_size > size:
                return kind.decode("latin-1"), pos + max(box_size, 8)
            pos += box_size
    return None


def _check_not_cut(container: InputContainer, path: Path) -> None:
    """Refuse a file cut short: an MP4/MOV top-level box (the index, moov, or the data, mdat) runs past the
    end of the file, or another container's index places data beyond it."""
    size = path.stat().st_size
    if _is_mov(container):
        cut = _cut_box(path, size)
        if cut is not None:
            kind, end = cut
            raise InputError(
                f"truncated: the file ends at byte {size} inside its '{printable(kind)}' box, which runs to byte "
                f"{end} (an incomplete download or copy?)",
                path,
            )
        return  # every box is whole: the index's offsets lie within the file
    for stream in container.streams:  # other containers: their index (e.g. Matroska's cues), if any
        entries = stream.index_entries
        last = max((e.pos + e.size for e in entries if e.pos >= 0), default=0) if entries is not None else 0
        if last > size:
            raise InputError(
                f"truncated: the file ends at byte {size} but its index lists data up to byte {last} "
                "(an incomplete download or copy?)",
                path,
            )


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


def _is_mov(container: InputContainer) -> bool:
    return bool({"mov", "mp4"} & set(container.format.name.split(",")))


def _frame_ticks(container: InputContainer, stream: VideoStream, index: bool = True) -> Ticks:
    """Every frame's time in the stream's time base, sorted: with ``index``, from MP4/MOV's index when it
    lists every frame (no reading; these are decoding times, as regular as the presentation times for
    constant-rate video), else the packets' presentation times (the file read through once, no decoding)."""
    entries = stream.index_entries
    ticks: list[int]
    if index and _is_mov(container) and entries is not None and 0 < stream.frames == len(entries):
        ticks = [e.timestamp for e in entries if not e.is_discard]
    else:
        ticks = []
        for pkt in container.demux(stream):
            t = pkt.pts if pkt.pts is not None else pkt.dts
            if pkt.size and t is not None:
                ticks.append(t)
    return np.sort(np.asarray(ticks, dtype=np.int64))


def _irregular(ticks: Ticks) -> bool:
    """Whether some frame starts more than half a frame from where a constant rate puts it (the rate of
    first-to-last: exact for constant-rate video, whatever its time base's rounding). In integers: with
    n frames over span ticks, frame k's offset from k * span / (n - 1), times (n - 1), against span / 2."""
    n = len(ticks)
    span = int(ticks[-1] - ticks[0]) if n else 0
    if n < 3 or span <= 0:
        return False
    deviation = (ticks - ticks[0]) * (n - 1) - np.arange(n, dtype=np.int64) * span
    return bool(int(np.abs(deviation).max()) * 2 > span)


# Frame rates a variable-rate video's median frame interval is snapped to (the closest, within 3%).
_COMMON_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50",
                                             "60000/1001", "60", "90", "100", "120", "240"))
_MAX_VARIABLE_RATE = Fraction(240)


def _nominal_rate(ticks: Ticks, time_base: Fraction) -> Fraction:
    """The constant rate a variable-rate video is read at: that of its median frame interval."""
    intervals = np.diff(ticks)
    intervals = np.sort(intervals[intervals > 0])
    rate = min(1 / (int(intervals[len(intervals) // 2]) * time_base), _MAX_VARIABLE_RATE)
    common = min(_COMMON_RATES, key=lambda r: abs(rate / r - 1))
    if abs(rate / common - 1) < Fraction(3, 100):  # millisecond timestamps put 30 fps frames 33 or 34 ms apart
        return common
    return parse_fps(rate.limit_denominator(1001))


def _declared_duration(container: InputContainer, stream: VideoStream) -> Fraction | None:
    """The video's duration as its header states it, where the file says it apart from its packets:
    the DURATION tag FFmpeg and mkvmerge write per Matroska track, else the container's duration when the
    video is its only stream."""
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        hours, _, rest = tag.partition(":")
        minutes, _, seconds = rest.partition(":")
        try:
            return Fraction(int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)
        except ValueError:
            return None
    if len(container.streams) == 1 and container.duration:
        return Fraction(container.duration, _AV_TIME_BASE)
    return None


@dataclass(frozen=True)
class _Timing:
    rate: Fraction | None
    count: int
    span: Fraction | None  # variable rate only (see VideoInfo.span)


def _timing(path: Path) -> _Timing:
    """How many frames the video has and whether their timestamps are regular (see _irregular).

    Irregular timestamps make a variable-rate video: it is read at its nominal rate, picking frames by
    timestamp, and count is what that yields. Header-stated durations the frames fall short of (a cut
    Matroska file) are refused.
    """
    with open_video(path) as (container, stream):
        ticks = _frame_ticks(container, stream)
        time_base = Fraction(stream.time_base or 0)
        rate = _stream_rate(stream)
        mov = _is_mov(container)
        declared = None if mov else _declared_duration(container, stream)
    if mov and _irregular(ticks):
        with open_video(path) as (container, stream):  # presentation times, not the index's decoding times
            ticks = _frame_ticks(container, stream, index=False)
    if len(ticks) == 0 or time_base <= 0:
        raise InputError("has a video stream but no video frames (an empty or truncated recording)", path)
    span = int(ticks[-1] - ticks[0]) * time_base
    if declared is not None and len(ticks) >= 2:
        # Matroska & co keep no frame count, but their header's duration shows a cut: the frames must
        # reach it to within a frame
        step = span / (len(ticks) - 1)
        if span + 2 * step < declared:
            raise InputError(
                f"truncated: its header gives the video {float(declared):.2f} s but its frames end at "
                f"{float(span + step):.2f} s (an incomplete download or copy?)",
                path,
            )
    if _irregular(ticks):
        nominal = _nominal_rate(ticks, time_base)
        return _Timing(nominal, math.ceil(span * nominal + 1 - _RESAMPLE_SLACK), span)
    return _Timing(rate, len(ticks), None)


def _turns(frame: av.VideoFrame, path: Path) -> int:
    """Quarter turns counter-clockwise (np.rot90's k) that show a decoded frame the way players do."""
    _check_display_matrix(frame, path)
    rotation = frame.rotation  # FFmpeg's av_display_rotation_get: degrees counter-clockwise
    if rotation % 90:
        raise InputError(f"its display matrix turns frames by {rotation} degrees: only quarter turns are supported",
                         path)
    return (rotation // 90) % 4


def _check_display_matrix(frame: av.VideoFrame, path: Path) -> None:
    """Refuse a mirrored display matrix (a negative determinant): it is not applied, so it is not ignored."""
    sides = cast(SideDataContainer, frame.side_data)  # PyAV's stub types it as a single SideData
    try:
        side = sides[SideDataType.DISPLAYMATRIX]
    except KeyError:
        return
    m = np.frombuffer(bytes(side), dtype="=i4")  # 3 x 3, row major, 16.16 fixed point (FFmpeg's layout)
    if len(m) >= 5 and int(m[0]) * int(m[4]) - int(m[1]) * int(m[3]) < 0:
        raise InputError("its display matrix mirrors the picture: mirrored video is not supported", path)


def _first_frame(path: Path) -> tuple[int, int, int]:
    """(displayed width, height, rotation) of the first frame; InputError when none decodes."""
    with open_video(path) as (container, stream):
        for _, frame in _decoded(container, stream, path):
            turns = _turns(frame, path)
            w, h = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
            return w, h, frame.rotation
    raise InputError("no frame of the video stream can be decoded (an empty or truncated recording)", path)


def probe_video(path: Path | str) -> VideoInfo:
    """Read a video's size (as displayed), frame rate, frame count, duration and audio details.

    The frame count is what iter_frames yields: from the container's index (MP4/MOV) or its packets;
    for a variable-rate video, the frames at its nominal rate. The first frame is decoded (its rotation,
    and a check that the stream decodes at all).
    """
    path = Path(path)
    try:
        with open_video(path) as (container, stream):
            ctx = stream.codec_context
            width, height = ctx.width, ctx.height
            codec = ctx.name
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
        timing = _timing(path)
        width, height, rotation = _first_frame(path)
    except AV_ERRORS as err:
        raise InputError(f"cannot read video: {one_line(err)}", path) from err
    rate, frame_count = timing.rate, timing.count
    if rate is None:
        if not duration:
            raise InputError("cannot determine the frame rate", path)
        rate = parse_fps(frame_count / duration)
    if timing.span is not None:
        duration = float(timing.span + 1 / rate)
    elif duration is None:
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
        rotation=rotation,
        variable_rate=timing.span is not None,
        span=timing.span,
    )


def _decoded(
    container: InputContainer, stream: VideoStream, path: Path
) -> Iterator[tuple[Fraction | None, av.VideoFrame]]:
    """Yield (presentation time in seconds or None, frame) in display order; decoding errors as InputError."""
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
        yield t, frame
        reached += 1


def _decode_rgb(
    container: InputContainer, stream: VideoStream, path: Path
) -> Iterator[tuple[Fraction | None, Image]]:
    """Yield (presentation time in seconds or None, upright RGB frame) in display order.

    Only the frame being converted is held: 8-bit or 10-bit, 4:2:0 or 4:4:4, it becomes one H x W x 3
    uint8 array (turned as the display matrix says, which copies it once more).
    """
    turns: int | None = None
    for t, frame in _decoded(container, stream, path):
        rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
        if turns is None:  # the display matrix is the stream's: every frame carries the same one
            turns = _turns(frame, path)
        if turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, turns))
        yield t, rgb


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


def count_at(info: VideoInfo, fps: float | str | Fraction | None = None) -> int:
    """How many frames iter_frames(info.path, fps) yields (exactly: progress totals and frame names use it)."""
    if fps is None:
        return info.frame_count
    source, target = parse_fps(info.fps_fraction), parse_fps(fps)
    if info.span is None:
        return resampled_count(info.frame_count, source, target)
    end = info.span + 1 / source
    return max(1, math.ceil((end - _RESAMPLE_SLACK / source) * target))


def _exactly(frames: Iterator[tuple[int, Image]], count: int) -> Iterator[tuple[int, Image]]:
    """Exactly ``count`` frames: the last one repeated, or the extra ones dropped. A variable-rate video's
    count comes from its index's decoding timestamps, which may end a frame apart from the decoded ones."""
    last: Image | None = None
    index = -1
    for index, rgb in frames:
        if index >= count:
            return
        last = rgb
        yield index, rgb
    if last is not None:
        for extra in range(index + 1, count):
            yield extra, last


def iter_frames(path: Path | str, fps: float | str | Fraction | None = None) -> Iterator[tuple[int, Image]]:
    """Yield (index, upright RGB uint8 H x W x 3 frame) for each frame of a video, from index 0.

    With fps, the video is resampled to that rate by timestamp (frames are dropped or repeated). A
    variable-rate video is resampled so even without fps, at its nominal rate (probe_video's fps).
    A file that fails part-way raises InputError naming the frame reached.
    """
    path = Path(path)
    target = None if fps is None else parse_fps(fps)
    timing = _timing(path)
    with open_video(path) as (container, stream):
        # Keep FFmpeg's default (slice) threading: with frame threading a truncated file ends early
        # without an error instead of raising.
        decoded = _decode_rgb(container, stream, path)
        if timing.span is not None and timing.rate is not None:
            # variable rate: picked by timestamp at the nominal rate (or at fps), the nominal rate's
            # frame interval standing for the last frame's duration
            picked = _resample(decoded, timing.rate, target or timing.rate)
            end = timing.span + 1 / timing.rate
            goal = target or timing.rate
            yield from _exactly(picked, max(1, math.ceil((end - _RESAMPLE_SLACK / timing.rate) * goal)))
        elif target is None:
            for index, (_, rgb) in enumerate(decoded):
                yield index, rgb
        else:
            yield from _resample(decoded, _stream_rate(stream), target)

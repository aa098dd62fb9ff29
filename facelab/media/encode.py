"""Build a video file from a frame folder, optionally carrying over another video's audio."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from facelab.core.atomic import count_write, fsync_dir, remove_stale_temps, temp_name
from facelab.core.choices import VIDEO_CODECS, VideoCodec
from facelab.core.errors import InputError, storage_error
from facelab.core.types import Image
from facelab.media.frames import ProgressCallback, list_frames, read_frame_info, read_image_rgb
from facelab.media.video import AV_ERRORS, one_line, open_media, parse_fps

DEFAULT_FPS = Fraction(30)

# Containers that take the "faststart" flag (index at the front, so playback can start at once).
_MOV_SUFFIXES = frozenset({".mp4", ".mov", ".m4v"})


@dataclass(frozen=True)
class _EncoderSettings:
    encoder: str
    pix_fmt: str
    options: dict[str, str]

    @property
    def needs_even_size(self) -> bool:
        return self.pix_fmt == "yuv420p"


def _encoder_settings(codec: VideoCodec, crf: int, lossless: bool) -> _EncoderSettings:
    if codec == "h264":
        if lossless:
            # libx264 cannot be lossless in yuv420p (the RGB->YUV conversion already loses detail),
            # so lossless H.264 is encoded straight from RGB by libx264rgb at qp 0.
            return _EncoderSettings("libx264rgb", "rgb24", {"qp": "0"})
        return _EncoderSettings("libx264", "yuv420p", {"crf": str(crf)})
    if lossless:
        # gbrp is planar RGB: no colour conversion, so lossless=1 reproduces the input pixels exactly.
        return _EncoderSettings("libx265", "gbrp", {"x265-params": "lossless=1:log-level=error"})
    return _EncoderSettings("libx265", "yuv420p", {"crf": str(crf), "x265-params": "log-level=error"})


def _resolve_fps(frames_dir: Path, fps: float | str | Fraction | None) -> Fraction:
    if fps is not None:
        return parse_fps(fps)
    info = read_frame_info(frames_dir)
    if info is not None:
        return parse_fps(info["fps_fraction"])
    return DEFAULT_FPS


def _pad_to_even(rgb: Image) -> Image:
    """Repeat the last row/column so both sides are even (yuv420p needs even sizes)."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    padded: Image = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return padded


class _AudioTrack:
    """Carries the first audio stream of a reference video into the output.

    The packets are copied unchanged (stream copy); only when the output container cannot hold the
    source codec is the audio decoded and re-encoded to AAC.
    """

    def __init__(self, source: InputContainer, out: OutputContainer, copy: bool) -> None:
        self._in = source.streams.audio[0]
        self._stream: AudioStream
        if copy:
            self._stream = out.add_stream_from_template(self._in)
        else:
            ctx = self._in.codec_context
            self._stream = out.add_stream("aac", rate=ctx.sample_rate or 48000)
            # AAC takes named layouts only; more than two channels are downmixed by the encoder's resampler.
            self._stream.layout = "mono" if ctx.channels == 1 else "stereo"
        self._packets = self._copy_packets(source) if copy else self._encode_packets(source)
        self._pending: Packet[AudioStream] | None = None
        self._out = out

    def _copy_packets(self, source: InputContainer) -> Iterator[Packet[AudioStream]]:
        for pkt in source.demux(self._in):
            if pkt.dts is None:  # the demuxer's empty end-of-stream packet
                continue
            pkt.stream = self._stream  # muxing rescales its timestamps to the output stream's time base
            yield pkt

    def _encode_packets(self, source: InputContainer) -> Iterator[Packet[AudioStream]]:
        samples = 0
        for frame in source.decode(self._in):
            # A continuous timeline in samples; the encoder resamples to its own format as needed.
            frame.pts = samples
            frame.time_base = Fraction(1, frame.sample_rate)
            samples += frame.samples
            yield from self._stream.encode(frame)
        yield from self._stream.encode(None)

    def mux_until(self, seconds: float | None) -> None:
        """Mux the packets that start before `seconds` (all remaining ones when None)."""
        while True:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    return
            pkt = self._pending
            if (
                seconds is not None
                and pkt.dts is not None
                and pkt.time_base is not None
                and float(pkt.dts * pkt.time_base) >= seconds
            ):
                return
            self._out.mux(pkt)
            self._pending = None


def _open_output(
    path: Path,
    shown: Path,
    size: tuple[int, int],
    fps: Fraction,
    settings: _EncoderSettings,
    audio_source: InputContainer | None,
    copy_audio: bool,
) -> tuple[OutputContainer, VideoStream, _AudioTrack | None]:
    options = {"movflags": "+faststart"} if path.suffix.lower() in _MOV_SUFFIXES else {}
    try:
        out = av.open(str(path), mode="w", container_options=options)
    except AV_ERRORS as err:
        raise storage_error(err, shown) or InputError(
            f"cannot write a video to this file name ({one_line(err)}); use .mp4 or .mkv", shown) from err
    try:
        try:
            stream = out.add_stream(settings.encoder, rate=fps, options=dict(settings.options))
        except AV_ERRORS as err:
            raise InputError(
                f"cannot write {settings.encoder} video to this file type: {one_line(err)}", shown
            ) from err
        if not isinstance(stream, VideoStream):
            raise TypeError(f"{settings.encoder} is not a video encoder")
        stream.width, stream.height = size
        stream.pix_fmt = settings.pix_fmt
        stream.time_base = 1 / fps
        if settings.encoder == "libx265" and path.suffix.lower() in _MOV_SUFFIXES:
            stream.codec_tag = "hvc1"  # the tag Apple players require for H.265 in MP4/MOV
        audio = _AudioTrack(audio_source, out, copy_audio) if audio_source is not None else None
        out.start_encoding()  # opens the encoders and writes the header: fails here, not mid-way
    except BaseException:
        out.close()
        raise
    return out, stream, audio


def build_video(
    frames_dir: Path | str,
    out_path: Path | str,
    fps: float | str | Fraction | None = None,
    audio_from: Path | str | None = None,
    codec: VideoCodec = "h264",
    crf: int = 18,
    lossless: bool = False,
    progress: ProgressCallback | None = None,
) -> None:
    """Encode the images of frames_dir, in frame order, into the video out_path.

    fps defaults to the exact rate in frames_dir/video.json, else 30. With audio_from (a video or an
    audio file), its first audio stream is copied into the output without re-encoding (re-encoded to
    AAC only when the output container cannot hold its codec); a file without audio adds none.
    lossless=True decodes back to the identical RGB pixels (H.264 via libx264rgb, H.265 via libx265
    in planar RGB). The file is written to a temporary name in the same folder and renamed over
    out_path when complete.
    """
    frames_dir, out_path = Path(frames_dir), Path(out_path)
    if codec not in VIDEO_CODECS:
        raise InputError(f"unknown codec {codec!r}: choose one of {', '.join(VIDEO_CODECS)}")
    if not 0 <= crf <= 51:
        raise InputError(f"CRF must be between 0 and 51, got {crf}")
    frames = list_frames(frames_dir)
    rate = _resolve_fps(frames_dir, fps)
    settings = _encoder_settings(codec, crf, lossless)
    first = read_image_rgb(frames[0])
    height, width = first.shape[:2]
    if settings.needs_even_size:
        height, width = height + height % 2, width + width % 2
    if out_path.is_dir():
        raise InputError("is a folder; give a video file name such as out.mp4", out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_path.parent)  # the partial video of a killed run
    # A unique hidden name beside the target, keeping the suffix so FFmpeg picks the same container.
    # (Not mkstemp: FFmpeg creates the file itself, with the usual umask permissions.)
    tmp = temp_name(out_path, secrets.token_hex(6))
    try:
        if audio_from is None:
            _encode(tmp, out_path, frames, first, (width, height), rate, settings, None, progress)
        else:
            with open_media(audio_from) as audio_source:
                _encode(tmp, out_path, frames, first, (width, height), rate, settings, audio_source, progress)
        os.replace(tmp, out_path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        err = storage_error(exc, out_path)  # a full disk: one line naming the video, not its temporary file
        if err is None or err is exc:
            raise
        raise err from exc
    fsync_dir(out_path.parent)
    count_write()


def _encode(
    tmp: Path,
    out_path: Path,
    frames: list[Path],
    first: Image,
    size: tuple[int, int],
    fps: Fraction,
    settings: _EncoderSettings,
    audio_source: InputContainer | None,
    progress: ProgressCallback | None,
) -> None:
    has_audio = audio_source is not None and bool(audio_source.streams.audio)
    source = audio_source if has_audio else None
    try:
        try:
            out, stream, audio = _open_output(tmp, out_path, size, fps, settings, source, copy_audio=True)
        except AV_ERRORS:
            if source is None:
                raise
            # The output container cannot take the source audio codec as it is: re-encode it to AAC.
            out, stream, audio = _open_output(tmp, out_path, size, fps, settings, source, copy_audio=False)
    except AV_ERRORS as err:
        raise storage_error(err, out_path) or InputError(f"cannot write this video: {one_line(err)}", out_path) from err
    try:
        expected = first.shape
        for index, path in enumerate(frames):
            rgb = first if index == 0 else read_image_rgb(path)
            if rgb.shape != expected:
                raise InputError(
                    f"frame size {rgb.shape[1]}x{rgb.shape[0]} differs from the first frame's "
                    f"{expected[1]}x{expected[0]}",
                    path,
                )
            if settings.needs_even_size:
                rgb = _pad_to_even(rgb)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            frame.time_base = 1 / fps
            out.mux(stream.encode(frame))
            if audio is not None:
                audio.mux_until(float((index + 1) / fps))
            if progress is not None:
                progress(index + 1, len(frames))
        out.mux(stream.encode(None))
        if audio is not None:
            audio.mux_until(None)
    except AV_ERRORS as err:
        raise storage_error(err, out_path) or InputError(f"encoding failed: {one_line(err)}", out_path) from err
    finally:
        out.close()


class VideoWriter:
    """A video written frame by frame as the frames come (``facelab live``): encoded into a hidden partial
    file beside ``path`` and renamed over it by ``close``, so ``path`` only ever holds a complete video.

    ``preset``: the x264/x265 speed preset (a live source needs a fast one). Frames are written at a
    constant ``fps``, one after the other. Odd sizes are padded to even for yuv420p.
    """

    def __init__(self, path: Path | str, size: tuple[int, int], fps: float | str | Fraction, codec: VideoCodec = "h264",
                 crf: int = 18, preset: str | None = None) -> None:
        self.path = Path(path)
        if not 0 <= crf <= 51:
            raise InputError(f"CRF must be between 0 and 51, got {crf}")
        if self.path.is_dir():
            raise InputError("is a folder; give a video file name such as out.mp4", self.path)
        self.fps = parse_fps(fps)
        settings = _encoder_settings(codec, crf, False)
        if preset is not None:
            settings = _EncoderSettings(settings.encoder, settings.pix_fmt, {**settings.options, "preset": preset})
        self._settings = settings
        width, height = size
        if settings.needs_even_size:
            width, height = width + width % 2, height + height % 2
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(6)}.partial{self.path.suffix}")
        try:
            self._out, self._stream, _ = _open_output(self._tmp, self.path, (width, height), self.fps, settings,
                                                      None, copy_audio=False)
        except AV_ERRORS as err:
            self._tmp.unlink(missing_ok=True)
            raise InputError(f"cannot write this video: {one_line(err)}", self.path) from err
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self.frames = 0
        self._open = True

    def write(self, rgb: Image) -> None:
        """Encode the next RGB frame (the size given at opening)."""
        pts = self.frames
        if self._settings.needs_even_size:
            rgb = _pad_to_even(rgb)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = pts
        frame.time_base = 1 / self.fps
        try:
            self._out.mux(self._stream.encode(frame))
        except AV_ERRORS as err:
            raise InputError(f"encoding failed: {one_line(err)}", self.path) from err
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder, finish the file and rename it over ``path``."""
        if not self._open:
            return
        self._open = False
        try:
            self._out.mux(self._stream.encode(None))
        finally:
            self._out.close()
        os.replace(self._tmp, self.path)
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Stop without a file: the partial file is removed."""
        if self._open:
            self._open = False
            try:
                self._out.close()
            finally:
                self._tmp.unlink(missing_ok=True)

"""Live inputs: a webcam (OpenCV), a video file (PyAV, played as live at its own frame rate or as fast as
possible) or a network stream (rtsp://, http://..., PyAV).

Every source yields ``Captured`` frames, RGB, numbered from 0 in the source's own frame count, with the
``perf_counter`` time each frame became available (a paced file: the time its frame is due), from which
latency is measured. ``live`` says whether the source keeps going whether or not we keep up (a camera, a
stream, a paced file): the pipeline then drops stale frames instead of queueing them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from facelab.core.errors import InputError
from facelab.core.types import Image
from facelab.media.video import AV_ERRORS, iter_frames, one_line, parse_fps, probe_video

_STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
_DEFAULT_FPS = Fraction(30)


@dataclass(frozen=True)
class Captured:
    index: int  # the frame's number in the source
    t_in: float  # perf_counter when it became available
    image: Image  # RGB uint8
    read_s: float = 0.0  # seconds spent reading and decoding it (not waiting for it)


class Source(Protocol):
    name: str
    fps: Fraction
    size: tuple[int, int]  # width, height
    live: bool

    def frames(self) -> Iterator[Captured]: ...

    def close(self) -> None: ...


class WebcamSource:
    """A camera through OpenCV's VideoCapture (V4L2 on Linux)."""

    live = True

    def __init__(self, index: int) -> None:
        self.name = f"webcam:{index}"
        level = cv2.getLogLevel()
        cv2.setLogLevel(0)  # OpenCV's own warnings about a missing device would add lines to the one-line error
        try:
            cap = cv2.VideoCapture(index)
            ok, first = cap.read() if cap.isOpened() else (False, None)
        finally:
            cv2.setLogLevel(level)
        if not ok or first is None:
            cap.release()
            raise InputError(f"camera {index} not found or cannot be opened (no frame from /dev/video{index}); "
                             "check `ls /dev/video*` and that no other program holds it", self.name)
        self._cap = cap
        self._first: Image | None = np.asarray(first, dtype=np.uint8)
        h, w = self._first.shape[:2]
        self.size = (w, h)
        rate = cap.get(cv2.CAP_PROP_FPS)
        self.fps = parse_fps(rate) if 0 < rate <= 240 else _DEFAULT_FPS

    def frames(self) -> Iterator[Captured]:
        index = 0
        while True:
            if self._first is not None:
                bgr, self._first = self._first, None
            else:
                ok, read = self._cap.read()
                if not ok or read is None:
                    return
                bgr = np.asarray(read, dtype=np.uint8)
            t = time.perf_counter()
            rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            yield Captured(index, t, rgb, time.perf_counter() - t)
            index += 1

    def close(self) -> None:
        self._cap.release()


class VideoFileSource:
    """A video file; ``realtime``: frame k is due k / fps seconds after the start and is skipped when the
    reader is already past its successor's time (the reader never waits on the pipeline), as a camera would."""

    def __init__(self, path: Path, realtime: bool) -> None:
        info = probe_video(path)  # InputError for a missing or unreadable file
        self.name = str(path)
        self.path = path
        self.fps = parse_fps(info.fps_fraction)
        self.size = (info.width, info.height)
        self.live = realtime
        self.frame_count = info.frame_count

    def frames(self) -> Iterator[Captured]:
        start: float | None = None
        period = 1.0 / float(self.fps)
        decoded = iter_frames(self.path)
        while True:
            t0 = time.perf_counter()
            item = next(decoded, None)
            now = time.perf_counter()
            if item is None:
                return
            index, rgb = item
            if not self.live:
                yield Captured(index, now, rgb, now - t0)
                continue
            if start is None:
                start = now
            due = start + index * period
            if now < due:
                time.sleep(due - now)
            elif now > due + period:
                continue  # already late by a whole frame: a camera would have moved on
            yield Captured(index, max(due, now), rgb, now - t0)

    def close(self) -> None:
        pass


class StreamSource:
    """A network stream (RTSP over TCP, HTTP, ...) through PyAV."""

    live = True

    def __init__(self, url: str) -> None:
        import av

        self.name = url
        options = {"rtsp_transport": "tcp"} if url.startswith(("rtsp://", "rtsps://")) else {}
        try:
            self._container = av.open(url, mode="r", options=options, timeout=10.0)
        except AV_ERRORS as err:
            raise InputError(f"cannot open the stream: {one_line(err)}", url) from err
        if not self._container.streams.video:
            self._container.close()
            raise InputError("the stream has no video", url)
        stream = self._container.streams.video[0]
        ctx = stream.codec_context
        self.size = (ctx.width, ctx.height)
        rate = stream.average_rate or stream.guessed_rate
        self.fps = parse_fps(Fraction(rate)) if rate else _DEFAULT_FPS
        self._stream = stream

    def frames(self) -> Iterator[Captured]:
        try:
            for index, frame in enumerate(self._container.decode(self._stream)):
                t = time.perf_counter()
                rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                yield Captured(index, t, rgb, time.perf_counter() - t)
        except AV_ERRORS as err:
            raise InputError(f"the stream failed: {one_line(err)}", self.name) from err

    def close(self) -> None:
        self._container.close()


def open_source(spec: str, realtime: bool = True) -> Source:
    """``webcam:N`` (or a bare camera number), a stream URL, or a video file."""
    if spec.startswith("webcam:") or spec.isdigit():
        number = spec.removeprefix("webcam:")
        if not number.isdigit():
            raise InputError(f"bad camera {spec!r}: give webcam:N with N a camera number, e.g. webcam:0")
        return WebcamSource(int(number))
    if spec.lower().startswith(_STREAM_SCHEMES):
        return StreamSource(spec)
    return VideoFileSource(Path(spec), realtime)

"""Live outputs: a video file (PyAV, with the provenance record and C2PA manifest like every video facelab
writes), a window (Tk, from Python's standard library: no GUI toolkit beyond Tk is needed, and OpenCV's
headless build has none), or a virtual camera (pyvirtualcam: v4l2loopback on Linux, OBS on Windows/macOS)
that video-call programs read as a webcam.

Frames arrive already watermarked (the merge stage marks every output frame); only the window draws the
statistics over its copy of the frame.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2

from facelab.core.errors import InputError
from facelab.core.types import U8
from facelab.live.options import LiveOptions
from facelab.media.encode import VideoWriter
from facelab.provenance.credentials import mime_for
from facelab.provenance.marker import ProvenanceMarker

V4L2_HINT = ("load v4l2loopback first (Debian/Ubuntu: sudo apt install v4l2loopback-dkms; then "
             "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=facelab)")


class Sink(Protocol):
    name: str
    overlay: bool  # whether the statistics are drawn on the frames it shows

    def write(self, rgb: U8, index: int) -> bool:
        """Show or store a frame (``index``: its number in the source); False when the user closed the output."""
        ...

    def close(self, marker: ProvenanceMarker) -> list[str]:
        """Finish (a file: complete, with ``marker``'s record and manifest: the marker whose watermark its frames
        carry); returns notes for the summary."""
        ...


class FileSink:
    overlay = False

    def __init__(self, path: Path, size: tuple[int, int], source_fps: Fraction, opts: LiveOptions,
                 parent: Path | None) -> None:
        self.name = str(path)
        self.path = path
        self.rate = Fraction(opts.fps).limit_denominator(100_000) if opts.fps else source_fps
        self.scale = self.rate / source_fps
        self.parent = parent
        self.writer = VideoWriter(path, size, self.rate, opts.codec, opts.crf, opts.preset)
        self.last: U8 | None = None
        self.repeated = 0

    def write(self, rgb: U8, index: int) -> bool:
        # a constant frame rate at the source's timeline: a frame dropped on the way is filled with the previous
        # frame out (as a screen recorder does), so the file plays as long as the run did and every reader sees
        # the source's rate and frame numbers
        target = round(index * self.scale)
        if self.last is not None:
            for _ in range(self.writer.frames, target):
                self.writer.write(self.last)
                self.repeated += 1
        if target >= self.writer.frames:
            self.writer.write(rgb)
        self.last = rgb
        return True

    def close(self, marker: ProvenanceMarker) -> list[str]:
        if self.writer.frames == 0:
            self.writer.abort()
            return [f"no frame was output: {self.path} not written"]
        self.writer.close()
        marker.finish_video(self.path, parent=self.parent)
        repeats = (f" ({self.repeated} repeat the frame before them, in place of dropped frames)" if self.repeated
                   else "")
        if marker.credentials is None:
            marks = "the provenance record"
        elif mime_for(self.path) is None:
            marks = "the provenance record (C2PA: not possible in this container)"
        else:
            marks = "the provenance record and a signed C2PA manifest"
        return [f"{self.writer.frames} frames{repeats} -> {self.path}, with {marks}"]


class WindowSink:
    """A Tk window showing the frames; closing it (or Esc / q) stops the run."""

    overlay = True

    def __init__(self, size: tuple[int, int], title: str = "facelab live") -> None:
        self.name = "window"
        try:
            import tkinter
        except ImportError:
            raise InputError("--output window needs Tk for Python (Debian/Ubuntu: sudo apt install python3-tk); "
                             "or use --output FILE.mp4 or virtual-cam") from None
        try:
            self.root = tkinter.Tk()
        except tkinter.TclError as err:
            raise InputError(f"--output window needs a display ({err}); on a machine without one use "
                             "--output FILE.mp4 or virtual-cam") from None
        self.root.title(title)
        self.open = True
        self.root.protocol("WM_DELETE_WINDOW", self._closed)
        self.root.bind("<Escape>", lambda _e: self._closed())
        self.root.bind("q", lambda _e: self._closed())
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self._tk = tkinter
        self._image: Any = None

    def _closed(self) -> None:
        self.open = False

    def write(self, rgb: U8, index: int) -> bool:
        if not self.open:
            return False
        h, w = rgb.shape[:2]
        ppm = f"P6 {w} {h} 255 ".encode() + rgb.tobytes()
        self._image = self._tk.PhotoImage(data=ppm, format="PPM")
        self.label.configure(image=self._image)
        self.root.update()
        return self.open

    def close(self, marker: ProvenanceMarker) -> list[str]:
        with contextlib.suppress(self._tk.TclError):
            self.root.destroy()
        return []


class VirtualCamSink:
    overlay = False

    def __init__(self, size: tuple[int, int], fps: float) -> None:
        try:
            import pyvirtualcam
        except ImportError:
            raise InputError("--output virtual-cam needs pyvirtualcam (pip install pyvirtualcam==0.15.0)") from None
        try:
            self.cam = pyvirtualcam.Camera(width=size[0], height=size[1], fps=fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                           print_fps=False)
        except RuntimeError as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InputError(f"no virtual camera device ({first}); {V4L2_HINT}") from None
        self.name = f"virtual-cam {self.cam.device}"

    def write(self, rgb: U8, index: int) -> bool:
        self.cam.send(rgb)
        return True

    def close(self, marker: ProvenanceMarker) -> list[str]:
        self.cam.close()
        return []


def draw_stats(rgb: U8, text: str) -> U8:
    """A copy of the frame with ``text`` drawn in its top-left corner (for the window only)."""
    out = rgb.copy()
    for k, part in enumerate(text.split(" | ")):
        y = 18 + 18 * k
        cv2.putText(out, part, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, part, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


_VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v")


def check_sink(spec: str) -> None:
    """InputError unless ``spec`` names an output (checked before the model and the source are opened)."""
    if spec in ("window", "virtual-cam"):
        return
    path = Path(spec)
    if path.suffix.lower() not in _VIDEO_SUFFIXES:
        raise InputError(f"unknown output {spec!r}: give window, virtual-cam or a video file name such as out.mp4")
    if path.is_dir():
        raise InputError("is a folder; give a video file name such as out.mp4", path)


def open_sink(spec: str, size: tuple[int, int], source_fps: Fraction, opts: LiveOptions, parent: Path | None
              ) -> Sink:
    """``window``, ``virtual-cam`` or a video file name (.mp4, .mkv, .mov)."""
    check_sink(spec)
    if spec == "window":
        return WindowSink(size)
    if spec == "virtual-cam":
        return VirtualCamSink(size, float(opts.fps or source_fps))
    return FileSink(Path(spec), size, source_fps, opts, parent)

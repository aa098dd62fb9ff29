"""Where frames come from: a video file (decoded here) or a folder of frame images (read by workers)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from facelab.core.errors import InputError
from facelab.core.types import Image
from facelab.media.frames import frame_name, list_frames
from facelab.media.video import count_at, iter_frames, probe_video


@dataclass
class FrameTask:
    index: int
    name: str  # the frame's file stem: the key that links faces back to frames in merge
    image: Image | None = None  # decoded pixels (video input)
    path: Path | None = None  # or a file for the worker to read (folder input)


class FrameSource:
    def __init__(self, path: Path, fps: float | None = None) -> None:
        self.path = Path(path)
        self.fps = fps
        if not self.path.exists():
            raise InputError("no such file or folder", self.path)
        self.is_video = self.path.is_file()
        if self.is_video:
            info = probe_video(self.path)
            self.count = count_at(info, fps)
            self.frame_bytes = info.width * info.height * 3  # one decoded RGB frame
            self._files: list[Path] = []
        else:
            self._files = list_frames(self.path)
            self.count = len(self._files)
            self.frame_bytes = 0  # the workers read the files: no pixels pass through here

    def names(self) -> list[str]:
        if self.is_video:
            return [Path(frame_name(i, "png")).stem for i in range(self.count)]
        return [p.stem for p in self._files]

    def tasks(self, skip: set[str]) -> Iterator[FrameTask]:
        """Frames in order, without pixels for those in `skip` (video frames must still be decoded)."""
        if self.is_video:
            for i, img in iter_frames(self.path, self.fps):
                name = Path(frame_name(i, "png")).stem
                if name not in skip:
                    yield FrameTask(i, name, image=img)
        else:
            for i, p in enumerate(self._files):
                if p.stem not in skip:
                    yield FrameTask(i, p.stem, path=p)

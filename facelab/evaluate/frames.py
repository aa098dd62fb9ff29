"""Frames to evaluate: uniformly sampled indices, read from a video or a folder of frames."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from facelab.core.types import Image
from facelab.media.frames import list_frames, read_image_rgb
from facelab.media.video import iter_frames, probe_video


def frame_count(source: Path) -> int:
    """Frames in a video file or a frame folder."""
    return len(list_frames(source)) if source.is_dir() else probe_video(source).frame_count


def frame_size(source: Path) -> tuple[int, int]:
    """(width, height) of a video's or frame folder's frames."""
    if source.is_dir():
        h, w = read_image_rgb(list_frames(source)[0]).shape[:2]
        return w, h
    info = probe_video(source)
    return info.width, info.height


def sample_indices(count: int, n: int) -> list[int]:
    """n frame indices spread evenly over [0, count), first and last included (all frames when n >= count)."""
    if count <= 0 or n <= 0:
        return []
    if n >= count:
        return list(range(count))
    return sorted({round(float(x)) for x in np.linspace(0, count - 1, n)})


def iter_selected(source: Path, indices: Iterable[int]) -> Iterator[tuple[int, Image]]:
    """(index, frame) for the frames at these indices that exist, in order; a video is decoded once."""
    wanted = sorted(set(indices))
    if not wanted:
        return
    if source.is_dir():
        paths = list_frames(source)
        for i in wanted:
            if 0 <= i < len(paths):
                yield i, read_image_rgb(paths[i])
        return
    keep, last = set(wanted), wanted[-1]
    for i, img in iter_frames(source):
        if i in keep:
            yield i, img
        if i >= last:
            return

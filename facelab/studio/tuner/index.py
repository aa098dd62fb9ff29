"""The tuner's view of a workspace's dst side: the frames in order, each frame's faces (as the merge groups
them), the faces' motions and the merge's model batches; reread when the folders change."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from facelab.core.errors import InputError
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import FaceRecord
from facelab.media.frames import list_frames
from facelab.merge.inputs import group_by_frame
from facelab.merge.motion import Motions, face_motions
from facelab.merge.xseg_masks import has_stored_mask
from facelab.studio.layout import Layout
from facelab.studio.tuner.plan import merge_batches


@dataclass(frozen=True)
class FrameIndex:
    frames: list[Path]  # dst frames in frame order
    by_frame: dict[str, list[FaceRecord]]  # only frames of this folder
    motions: Motions
    batches: dict[str, tuple[str, ...]]  # frame stem -> the merge's model batch holding it
    dst_masks: bool  # every dst face carries a stored XSeg mask (xseg-dst works without a model)

    @property
    def stems(self) -> list[str]:
        return [p.stem for p in self.frames]

    def path(self, index: int) -> Path:
        """The frame at ``index`` (0-based); InputError naming the valid range past the end."""
        n = len(self.frames)
        if not 0 <= index < n:
            raise InputError(f"frame {index} is past the end: this workspace has {n} frames (0 to {n - 1})")
        return self.frames[index]

    def faces(self, stem: str) -> list[FaceRecord]:
        return self.by_frame.get(stem, [])


def build_index(layout: Layout) -> FrameIndex:
    if not layout.dst_frames.is_dir():
        raise InputError("no dst frames yet: extract the dst video's frames first (the workspace page's Frames "
                         "step, or facelab video frames)", layout.dst_frames)
    frames = list_frames(layout.dst_frames)
    records = [rec for _, rec in scan_faces(layout.dst_aligned).faces] if layout.dst_aligned.is_dir() else []
    known = {p.stem for p in frames}
    by_frame = {k: v for k, v in group_by_frame(records).items() if k in known}
    order = [p.stem for p in frames]
    batches = merge_batches(order, {k: len(v) for k, v in by_frame.items()})
    return FrameIndex(frames, by_frame, face_motions(by_frame, order), batches,
                      bool(records) and all(has_stored_mask(r) for r in records))


class IndexCache:
    """The FrameIndex of a workspace, built again when the frame or face folder changes (their mtimes)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._index: FrameIndex | None = None

    def _stamp(self) -> tuple[int, int]:
        def mtime(p: Path) -> int:
            try:
                return p.stat().st_mtime_ns
            except OSError:
                return -1
        return mtime(self.layout.dst_frames), mtime(self.layout.dst_aligned)

    def get(self) -> FrameIndex:
        with self._lock:
            key = self._stamp()
            if self._index is None or key != self._key:
                self._index = build_index(self.layout)
                self._key = key
            return self._index

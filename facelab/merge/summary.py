"""The summary of a merge run, written as ``OUT/merge.json`` (a shard: ``merge-shard-I-of-N.json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facelab.core.atomic import write_json_atomic


@dataclass
class MergeSummary:
    frames: int  # frames of this run (shard)
    merged: int  # frames with at least one face, merged now or earlier
    passed_through: int  # frames without faces, copied through
    faces: int  # faces merged
    resumed: int  # frames already done by an earlier run
    model_id: str
    options: dict[str, Any]
    session_frames: int = 0  # frames with per-frame overrides
    shard: list[int] | None = None
    unmatched_faces: int = 0  # faces whose source frame is not in the frame folder
    seconds: float = 0.0  # the whole run: checks, model load, merging, final sync
    frames_per_second: float = 0.0  # frames merged now / seconds
    setup_seconds: float = 0.0  # checks and model load, before the first frame is read
    loop_frames_per_second: float = 0.0  # frames merged now / time from the first frame read to the last written
    model_threads: int = 0  # torch threads the model ran on at the end (ThreadPlan)
    schedule: str = ""  # "overlap" or "lockstep" (ThreadPlan), "probe" when the run ended before choosing
    output: str = ""
    frame_names: list[str] = field(default_factory=list)


def rate(frames: int, seconds: float) -> float:
    """Frames per second, rounded for the summary (0 for no time)."""
    return round(frames / seconds, 2) if seconds > 0 else 0.0


def write_summary(path: Path, summary: MergeSummary, faces_now: int) -> None:
    write_json_atomic(path, {"schema": "facelab.merge_summary", "version": 1} | asdict(summary)
                      | {"faces_now": faces_now})

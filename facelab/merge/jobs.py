"""The worker side of a merge: composite, watermark, encode and write one frame per job.

Jobs run in a bounded pool (facelab.core.pool) of threads (the default: OpenCV and numpy release the
GIL, and nothing is pickled), of processes (``pool="process"``, for many-core machines), or inline for
one worker. Each job writes ``OUT/<frame>.<fmt>`` and ``OUT/masks/<frame>.png``; a frame without faces
is copied through (the file bytes, when the formats match).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facelab.core.atomic import write_bytes_atomic
from facelab.core.errors import InputError
from facelab.core.pool import PoolKind, WorkerPool
from facelab.core.types import U8
from facelab.media.frames import encode_image, frame_number, read_image_rgb
from facelab.merge.compose import FaceInput, merge_frame
from facelab.merge.options import MergeOptions
from facelab.provenance.marker import ProvenanceMarker

MASKS_DIR = "masks"



@dataclass(frozen=True)
class JobContext:
    """What every job of a run shares."""

    out_dir: Path
    face_type: str
    resolution: int
    image_format: str
    marker: ProvenanceMarker | None  # None only when provenance is switched off (tests, benchmarks)


@dataclass(frozen=True)
class Job:
    stem: str
    source: Path
    frame: U8 | None  # decoded frame (frames with faces); None: pass through from the file
    faces: list[FaceInput]
    options: MergeOptions


_CTX: JobContext | None = None


def _init(ctx: JobContext, single_thread: bool) -> None:
    global _CTX
    if single_thread:
        cv2.setNumThreads(1)
    _CTX = ctx


def output_paths(out_dir: Path, stem: str, fmt: str) -> tuple[Path, Path]:
    return out_dir / f"{stem}.{fmt}", out_dir / MASKS_DIR / f"{stem}.png"


def make_pool(ctx: JobContext, workers: int, kind: PoolKind, batch_faces: int) -> WorkerPool[dict[str, Any]]:
    """The pool of compositing jobs, its queue bounded with room for a whole model batch (``batch_faces``)
    besides the jobs running, so the model goes on with the next batch while the workers composite this
    one instead of waiting for them. Worker processes get the context once (``_init``); threads and
    inline jobs get it with each job (``job_context``)."""
    processes = kind == "process" and workers > 1
    return WorkerPool(workers, kind, backlog=2 * workers + batch_faces, initializer=_init if processes else None,
                      initargs=(ctx, True))


def job_context(pool: WorkerPool[dict[str, Any]], ctx: JobContext) -> JobContext | None:
    """The context to pass with each job: None where the jobs run in processes set up by ``_init``."""
    return None if pool.separate_processes else ctx


def run_job(job: Job, ctx: JobContext | None = None) -> dict[str, Any]:
    """Composite, mark, encode and write one frame; the journal entry carries the CPU seconds it took ("cpu").
    ``ctx`` None: the worker process's own (set by ``_init``)."""
    cpu0 = time.thread_time()
    entry = _work_frame(job, ctx or _CTX)
    entry["cpu"] = time.thread_time() - cpu0
    return entry


def _work_frame(job: Job, ctx: JobContext | None) -> dict[str, Any]:
    assert ctx is not None
    img_path, mask_path = output_paths(ctx.out_dir, job.stem, ctx.image_format)
    if job.frame is None:
        _pass_through(job.source, img_path, mask_path, ctx.image_format)
        return {"frame": job.stem, "faces": 0}
    merged, mask8 = merge_frame(job.frame, job.faces, ctx.face_type, ctx.resolution, job.options,
                               rng=np.random.default_rng(int(hashlib.sha1(job.stem.encode()).hexdigest()[:8], 16)))
    if ctx.marker is not None:
        # watermark_region "face": the mark stays where the saved 8-bit mask is nonzero, so "outside the mask"
        # means untouched; "frame": the whole frame
        merged = ctx.marker.mark(merged, region=mask8, inplace=True,  # merged is this job's own array
                                 frame=frame_number(job.stem) or 0, where=job.options.watermark_region)
        _write(img_path, ctx.marker.tag(_encode(merged, ctx.image_format), img_path.name, job.source))
    else:
        _write(img_path, _encode(merged, ctx.image_format))
    _write(mask_path, _encode_mask(mask8))
    return {"frame": job.stem, "faces": len(job.faces)}


def _pass_through(source: Path, img_path: Path, mask_path: Path, fmt: str) -> None:
    """A frame without faces: the frame unchanged (its file bytes when the formats match) and an empty mask."""
    if source.suffix.lower().lstrip(".").replace("jpeg", "jpg") == fmt:
        _write(img_path, source.read_bytes())  # bit-identical copy
        h, w = _image_hw(source)
    else:
        frame = read_image_rgb(source)
        _write(img_path, _encode(frame, fmt))
        h, w = frame.shape[:2]
    _write(mask_path, _encode_mask(np.zeros((h, w), dtype=np.uint8)))


def _encode(rgb: U8, fmt: str) -> bytes:
    return encode_image(rgb, "jpg" if fmt == "jpg" else "png")


def _encode_mask(mask8: U8) -> bytes:
    return encode_image(mask8, "png")


def _write(path: Path, data: bytes) -> None:
    """Frames and masks are written atomically but not fsynced one by one: the run syncs once at the end
    (a killed run still leaves only whole files, and the journal lists only frames whose files exist)."""
    write_bytes_atomic(path, data, durable=False)


def _image_hw(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError("unreadable image", path)
    return int(img.shape[0]), int(img.shape[1])

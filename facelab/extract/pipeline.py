"""`facelab extract`: frames -> aligned faces, in worker processes, resumable, with a summary.

Flow: the main process reads the input (decodes video frames; for a folder of frames the workers read
the files), feeds a bounded queue of frames to a process pool and appends each finished frame to the
journal. With --smooth the work is split in two passes: detection (landmarks only), temporal smoothing
in the main process, then alignment and writing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facelab.core.atomic import remove_stale_temps, write_json_atomic, write_text_atomic
from facelab.core.journal import Journal
from facelab.core.lock import locked
from facelab.core.pool import WorkerPool
from facelab.core.types import Image
from facelab.core.versioned import json_loads
from facelab.extract.analyze import DetectedFace, FrameAnalyzer
from facelab.extract.debug import write_debug
from facelab.extract.faces import face_json, landmarks_to_json, write_faces
from facelab.extract.journal import frame_done, open_journal
from facelab.extract.options import ExtractOptions
from facelab.extract.smooth import smooth_landmarks
from facelab.extract.source import FrameSource, FrameTask
from facelab.face.identity import Embedding
from facelab.face.reference import reference_embedding
from facelab.face.types import FaceBox
from facelab.media.frames import read_image_rgb

STATE_DIR = "_extract"
Progress = Callable[[int], None]


@dataclass
class ExtractSummary:
    input: str
    output: str
    frames: int
    frames_with_faces: int
    faces: int
    frames_without_faces: list[str] = field(default_factory=list)
    seconds: float = 0.0
    frames_per_second: float = 0.0
    resumed_frames: int = 0


# ---- worker side -------------------------------------------------------------------------------

class _Worker:
    def __init__(self, opts: ExtractOptions, reference: Embedding | None, out_dir: Path) -> None:
        cv2.setNumThreads(1)
        self.opts = opts
        self.analyzer = FrameAnalyzer(opts, reference)
        self.out_dir = out_dir
        self.debug_dir = out_dir / STATE_DIR / "debug" if opts.debug else None

    def image(self, task: FrameTask) -> Image:
        if task.image is not None:
            return task.image
        assert task.path is not None
        return read_image_rgb(task.path)

    def _write(self, task: FrameTask, img: Image, faces: list[DetectedFace]) -> dict[str, Any]:
        files = write_faces(img, faces, task.name, task.index, self.out_dir, self.opts)
        if self.debug_dir is not None:
            write_debug(img, faces, task.name, self.debug_dir, self.opts)
        return {"frame": task.name, "index": task.index, "stage": "write",
                "faces": [face_json(f) | {"file": n} for f, n in zip(faces, files, strict=True)]}

    def full(self, run: list[FrameTask]) -> list[dict[str, Any]]:
        images = [self.image(t) for t in run]
        found = self.analyzer.analyze_run(images)
        return [self._write(t, img, faces) for t, img, faces in zip(run, images, found, strict=True)]

    def detect(self, run: list[FrameTask]) -> list[dict[str, Any]]:
        found = self.analyzer.analyze_run([self.image(t) for t in run])
        return [{"frame": t.name, "index": t.index, "stage": "detect", "faces": [face_json(f) for f in faces]}
                for t, faces in zip(run, found, strict=True)]

    def write(self, run: list[FrameTask], faces: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        return [self._write(t, self.image(t), [_face_from_json(f) for f in fs])
                for t, fs in zip(run, faces, strict=True)]


def _face_from_json(d: dict[str, Any]) -> DetectedFace:
    left, top, right, bottom = (float(v) for v in d["rect"])
    box = FaceBox(left, top, right, bottom, float(d["score"]), str(d["detector"]))
    ident = np.array(d["identity"]) if "identity" in d else None
    return DetectedFace(box, np.array(d["landmarks"], dtype=np.float64), str(d["landmarker"]), ident)


_WORKER: _Worker | None = None


def _init(opts_json: str, reference: list[float] | None, out_dir: str) -> None:
    global _WORKER
    ref = None if reference is None else np.array(reference)
    _WORKER = _Worker(ExtractOptions.model_validate_json(opts_json), ref, Path(out_dir))


Job = tuple[list[FrameTask], list[list[dict[str, Any]]] | None]


def _run(kind: str, job: Job) -> list[dict[str, Any]]:
    assert _WORKER is not None
    run, faces = job
    if kind == "full":
        return _WORKER.full(run)
    if kind == "detect":
        return _WORKER.detect(run)
    assert faces is not None
    return _WORKER.write(run, faces)


def runs(tasks: Iterable[FrameTask], length: int) -> Iterator[list[FrameTask]]:
    """Consecutive frames in groups of up to `length` (a gap in the frame numbers starts a new group)."""
    group: list[FrameTask] = []
    for t in tasks:
        if group and (len(group) >= length or t.index != group[-1].index + 1):
            yield group
            group = []
        group.append(t)
    if group:
        yield group


def whole_runs(names: list[str], done: set[str], length: int) -> set[str]:
    """The frames of ``done`` whose whole tracking run (``length`` frames from a multiple of ``length``) is done.

    A resumed job redoes a run it had only partly finished: tracking makes a frame's faces depend on the
    frames before it in its run, so a run must start where an uninterrupted job starts it for the faces
    to come out bit-identical (``runs`` then groups the frames left exactly as a whole job does).
    """
    keep: set[str] = set()
    for start in range(0, len(names), length):
        group = names[start:start + length]
        if all(n in done for n in group):
            keep.update(group)
    return keep


# ---- main side ---------------------------------------------------------------------------------

# Decoded video frames queued or in the workers' hands at once, at most (4K and 8K frames are 25 and 100 MB).
FRAMES_IN_FLIGHT_BYTES = 2 * 1024**3


def job_backlog(workers: int, frame_bytes: int, run_length: int) -> int:
    """How many jobs (runs of up to ``run_length`` decoded frames of ``frame_bytes`` each) may be queued or
    running: two per worker, fewer when that would hold more than FRAMES_IN_FLIGHT_BYTES of frames (at
    least one). Folder input passes no pixels (frame_bytes 0): the workers read the files."""
    backlog = 2 * workers
    if frame_bytes > 0:
        backlog = min(backlog, FRAMES_IN_FLIGHT_BYTES // (frame_bytes * run_length))
    return max(1, backlog)


class _Runner:
    """Runs jobs in worker processes (or in this process for one worker), yielding results as they finish."""

    def __init__(self, opts: ExtractOptions, reference: Embedding | None, out_dir: Path, frame_bytes: int = 0) -> None:
        args = (opts.model_dump_json(), None if reference is None else [float(v) for v in reference], str(out_dir))
        # bounded: frames are decoded only a little ahead of the workers
        self.pool: WorkerPool[list[dict[str, Any]]] = WorkerPool(
            opts.workers, "process", backlog=job_backlog(opts.workers, frame_bytes, opts.track),
            initializer=_init, initargs=args)

    def map(self, kind: str, jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
        """Journal entries of finished frames, in completion order."""
        for job in jobs:
            for entries in self.pool.submit(_run, kind, job):
                yield from entries
        for entries in self.pool.drain():
            yield from entries

    def close(self, cancel: bool = False) -> None:
        self.pool.close(cancel)


@locked("extract", write=("out_dir",), read=("input_path",))
def run_extract(input_path: Path, out_dir: Path, opts: ExtractOptions,
                progress: Progress | None = None, total: Callable[[int], None] | None = None
                ) -> ExtractSummary:
    t0 = time.perf_counter()
    source = FrameSource(input_path, opts.fps)
    reference = reference_embedding(opts.only_like) if opts.only_like is not None else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for folder in (out_dir, out_dir / STATE_DIR):  # what a killed run was writing
        remove_stale_temps(folder)
    settings = opts.model_dump(mode="json", exclude={"workers", "debug"})
    settings["input"] = str(input_path)
    journal = open_journal(out_dir / STATE_DIR / "journal.jsonl", settings)
    written = whole_runs(source.names(), {n for n in source.names() if frame_done(journal, n) is not None},
                         opts.track)
    resumed = len(written)
    if total is not None:
        total(source.count * (2 if opts.smooth else 1))
    if progress is not None and resumed:
        progress(resumed * (2 if opts.smooth else 1))
    runner = _Runner(opts, reference, out_dir, source.frame_bytes)
    try:
        if opts.smooth:
            _two_pass(source, journal, runner, opts, written, progress)
        else:
            jobs = ((run, None) for run in runs(source.tasks(written), opts.track))
            for entry in runner.map("full", jobs):
                journal.append(entry)
                if progress is not None:
                    progress(1)
        runner.close()
    except BaseException:
        runner.close(cancel=True)
        journal.close()
        raise
    journal.close()
    return _summarize(source, journal, out_dir, input_path, time.perf_counter() - t0, resumed)


def _two_pass(source: FrameSource, journal: Journal, runner: _Runner, opts: ExtractOptions,
              written: set[str], progress: Progress | None) -> None:
    detected = whole_runs(source.names(), {n for n in source.names() if frame_done(journal, n, "detect") is not None},
                          opts.track)
    if progress is not None:
        progress(len(detected - written))
    for entry in runner.map("detect", ((run, None) for run in runs(source.tasks(detected), opts.track))):
        journal.append(entry)
        if progress is not None:
            progress(1)
    names = _journal_frames(journal)
    frames = [[np.array(f["landmarks"]) for f in journal.latest[n]["faces"]] for n in names]
    smoothed = smooth_landmarks(frames, opts.smooth)
    by_name = {}
    for n, lms in zip(names, smoothed, strict=True):
        faces = [dict(f) for f in journal.latest[n]["faces"]]
        for f, lm in zip(faces, lms, strict=True):
            f["landmarks"] = landmarks_to_json(lm)
        by_name[n] = faces
    jobs = ((run, [by_name[t.name] for t in run]) for run in runs(source.tasks(written), opts.track))
    for entry in runner.map("write", jobs):
        journal.append(entry)
        if progress is not None:
            progress(1)


def _journal_frames(journal: Journal) -> list[str]:
    """Frame names the journal holds, in frame order (the decoder's count, not the container's claim)."""
    return sorted(journal.latest, key=lambda n: int(journal.latest[n]["index"]))


def _summarize(source: FrameSource, journal: Journal, out_dir: Path, input_path: Path, seconds: float,
               resumed: int) -> ExtractSummary:
    names = _journal_frames(journal)
    without = [n for n in names if not journal.latest[n]["faces"]]
    faces = sum(len(journal.latest[n]["faces"]) for n in names)
    done_now = len(names) - resumed
    summary = ExtractSummary(
        input=str(input_path), output=str(out_dir), frames=len(names),
        frames_with_faces=len(names) - len(without), faces=faces, frames_without_faces=without,
        seconds=round(seconds, 3), frames_per_second=round(done_now / seconds, 2) if seconds > 0 else 0.0,
        resumed_frames=resumed,
    )
    state = out_dir / STATE_DIR
    write_json_atomic(state / "summary.json", {"schema": "facelab.extract_summary", "version": 1} | asdict(summary))
    write_text_atomic(state / "frames_without_faces.txt", "".join(f"{n}\n" for n in without))
    return summary


def load_summary(out_dir: Path) -> dict[str, Any] | None:
    path = Path(out_dir) / STATE_DIR / "summary.json"
    if not path.is_file():
        return None
    try:
        data = json_loads(path.read_bytes())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None

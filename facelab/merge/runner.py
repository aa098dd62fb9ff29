"""Batch merge: every frame of a frame folder, with the faces of an aligned folder swapped by a model.

Flow: the main process reads the frames (decoded ahead in a background thread, merge.prefetch), crops
every face from the frame itself (the record's transform converted to the model's face type and
resolution; the stored aligned image is not used), runs the model on batches of faces (merge.batches:
only the outputs the mask modes use, dst's own mask only for the learned-dst modes), and hands each
frame with its predictions to a pool of workers (merge.jobs) that composite, watermark (provenance),
encode with the provenance record and a signed C2PA manifest (provenance.credentials) and write
``OUT/<frame>.<fmt>`` and ``OUT/masks/<frame>.png``
atomically. ``ThreadPlan`` (merge.schedule) decides whether the model runs alone on every torch thread
between the workers' phases, or on one thread beside them. Threads are the default pool, since OpenCV
and numpy release the GIL and nothing is pickled; ``pool="process"`` remains for many-core machines
(docs/merge.md has the measurements). Frames without faces are copied through unchanged (the file
bytes, when the formats match). Every check (merge.inputs) runs before any output is written. A journal
(``OUT/_merge/journal.jsonl``) makes the run resumable: a frame is skipped when the journal lists it as
done with the same model and options and both outputs exist.

Sharding (merge.shard): ``shard=(I, N)`` processes only the frames whose position in the frame folder
(0-based, frame order) satisfies ``position % N == I``, so N machines can split one video and write into
one folder (each shard keeps its own journal and summary, ``merge-shard-I-of-N.json``; a full run writes
``merge.json``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from facelab.core.atomic import remove_stale_temps, sync_all
from facelab.core.errors import InputError
from facelab.core.journal import Journal
from facelab.core.lock import LOCK_NAME, Want, locked
from facelab.core.pool import PoolKind, WorkerPool
from facelab.core.types import U8
from facelab.media.frames import read_image_rgb
from facelab.merge.batches import BATCH_FACES, Batcher
from facelab.merge.inputs import MergeInputs, load_inputs
from facelab.merge.jobs import MASKS_DIR, Job, JobContext, job_context, make_pool, output_paths, run_job
from facelab.merge.motion import Motions, face_motions
from facelab.merge.options import EXECUTION_KEYS, MergeOptions
from facelab.merge.prefetch import prefetch
from facelab.merge.schedule import ThreadPlan
from facelab.merge.session import MergeSession
from facelab.merge.shard import Shard, check_shard, shard_frames, shard_suffix
from facelab.merge.summary import MergeSummary, rate, write_summary
from facelab.provenance.credentials import ContentCredentials
from facelab.provenance.marker import marker_for, phase_sample

STATE_DIR = "_merge"
JOURNAL_NAME = "facelab.merge"

Progress = Callable[[int], None]


def _merge_wants(arguments: Mapping[str, Any]) -> list[Want]:
    """The output folder: a whole merge holds it alone; shards share it, each holding its own shard's
    lock (two runs of one shard collide, N shards run side by side). The inputs are read (shared)."""
    out, shard = Path(arguments["out_dir"]), arguments["shard"]
    own = [Want(out)] if shard is None else [
        Want(out, shared=True), Want(out, name=LOCK_NAME.replace(".lock", f"{shard_suffix(shard)}.lock"))]
    return own + [Want(Path(arguments[name]), shared=True) for name in ("frames_dir", "aligned_dir")]


@locked("merge", wants=_merge_wants)
def run_merge(
    model_dir: Path,  # a model folder, or an ONNX file (.dfm or facelab's own): facelab.export.load
    frames_dir: Path,
    aligned_dir: Path,
    out_dir: Path,
    options: MergeOptions | MergeSession | None = None,
    workers: int | None = None,
    shard: Shard | None = None,
    progress: Progress | None = None,
    total: Callable[[int], None] | None = None,
    provenance: bool = True,
    pool: PoolKind = "thread",
    device: str = "auto",
    credentials: ContentCredentials | None = None,
) -> MergeSummary:
    """Merge every frame (of the shard) into out_dir; see the module docstring. Returns the summary.

    Every check (model weights, frames, faces, face types, options) runs before any output is written.
    Merged frames carry the invisible watermark and the provenance record (facelab.provenance); frames
    without faces are copied unchanged. Each merged frame is signed with C2PA ``credentials`` (default:
    facelab's own key, made on first use), naming its dst frame as the parent ingredient.
    ``provenance=False`` exists for benchmarks and tests only.
    """
    t0 = time.perf_counter()
    session = options if isinstance(options, MergeSession) else MergeSession(options or MergeOptions())
    n_workers = workers if workers is not None else session.options.workers
    if n_workers < 1:
        raise InputError(f"workers must be >= 1, got {n_workers}")
    if shard is not None:
        shard = check_shard(shard)
    frames_dir, aligned_dir, out_dir = Path(frames_dir), Path(aligned_dir), Path(out_dir)
    inputs = load_inputs(Path(model_dir), frames_dir, aligned_dir, out_dir, session, device)

    mine = shard_frames(inputs.frames, shard)
    for folder in (out_dir, out_dir / STATE_DIR):  # what a killed run was writing
        remove_stale_temps(folder)
    suffix = shard_suffix(shard)
    journal = _open_journal(out_dir / STATE_DIR / f"journal{suffix}.jsonl", session, inputs, frames_dir,
                            aligned_dir)
    fmt = session.options.image_format
    done = {p.stem for p in mine if _finished(journal, out_dir, p.stem, fmt)}
    todo = [p for group in _batch_groups(mine, inputs.by_frame) if not all(p.stem in done for p in group)
            for p in group]
    resumed = len(mine) - len(todo)
    if total is not None:
        total(len(mine))
    if progress is not None and resumed:
        progress(resumed)

    (out_dir / MASKS_DIR).mkdir(parents=True, exist_ok=True)
    marker = None
    if provenance:
        credentials = credentials or ContentCredentials()
        credentials.identity()  # the key and certificate: made or checked before any output is written
        marker = marker_for(inputs.model.model_id, {"frames": frames_dir.name}, credentials)
        marker = marker.placed(phase_sample(inputs.frames, inputs.by_frame))
    ctx = JobContext(out_dir, inputs.model.face_type, inputs.model.resolution, fmt, marker)
    try:
        loop = _merge_frames(todo, inputs, session, ctx, n_workers, pool, journal, progress)
    finally:
        sync_all()  # the frames and masks, written without one fsync each
        journal.close()

    summary = _summary(inputs, session, mine, shard, resumed, len(todo), loop, t0, out_dir)
    write_summary(out_dir / f"merge{suffix}.json", summary, loop.faces_now)
    if marker is not None:
        marker.finish_folder(out_dir)
    return summary


def _open_journal(path: Path, session: MergeSession, inputs: MergeInputs, frames_dir: Path,
                  aligned_dir: Path) -> Journal:
    """The run's journal; its entries count only under the same settings (model, options, inputs): with
    others every frame is merged again. Options that do not change the output are left out."""
    session_json = session.to_json()
    for key in EXECUTION_KEYS:
        session_json["options"].pop(key, None)
    settings: dict[str, Any] = {"model_id": inputs.model.model_id, "session": session_json,
                                "frames": str(frames_dir.resolve()), "aligned": str(aligned_dir.resolve()),
                                "faces": inputs.faces}
    return Journal(path, JOURNAL_NAME, settings)


def _finished(journal: Journal, out_dir: Path, stem: str, fmt: str) -> bool:
    img, msk = output_paths(out_dir, stem, fmt)
    return stem in journal and img.is_file() and msk.is_file()


def _batch_groups(frames: list[Path], by_frame: dict[str, list[Any]]) -> list[list[Path]]:
    """The frames in the groups whose faces go through the model together (``Batcher``: a batch ends at
    BATCH_FACES faces) in a run over all of ``frames``. A resumed run redoes a group it had only partly
    done: the model's output for a face can differ in its last bits with the other faces of its batch,
    so a batch must hold the faces an uninterrupted run gives it for the frames to come out bit-identical."""
    groups: list[list[Path]] = [[]]
    faces = 0
    for p in frames:
        groups[-1].append(p)
        faces += len(by_frame.get(p.stem) or [])
        if faces >= BATCH_FACES:
            groups.append([])
            faces = 0
    return [g for g in groups if g]


def _motions(session: MergeSession, inputs: MergeInputs) -> Motions:
    """The faces' motions, when the base options or a range's or frame's overrides use motion blur."""
    if any(o.motion_blur > 0 for o in session.variants()):
        return face_motions(inputs.by_frame, inputs.order)
    return {}


class _Workers:
    """The compositing pool of a run: jobs in; each finished frame recorded in the journal, in the
    ThreadPlan's measure of the workers' CPU time (its decoding included) and in the progress."""

    def __init__(self, pool: WorkerPool[dict[str, Any]], ctx: JobContext, plan: ThreadPlan, journal: Journal,
                 progress: Progress | None) -> None:
        self.pool = pool
        self.ctx = job_context(pool, ctx)
        self.plan = plan
        self.journal = journal
        self.progress = progress
        self.decode_cpu: dict[str, float] = {}

    def load(self, path: Path) -> U8:
        """Decode a frame (in the prefetch thread), keeping the CPU seconds it took."""
        cpu0 = time.thread_time()
        frame = read_image_rgb(path)
        self.decode_cpu[path.stem] = time.thread_time() - cpu0
        return frame

    def submit(self, job: Job) -> None:
        self._record(self.pool.submit(run_job, job, self.ctx))

    def drain(self) -> None:
        self._record(self.pool.drain())

    def _record(self, entries: Iterator[dict[str, Any]]) -> None:
        for entry in entries:
            self.plan.work(entry.pop("cpu") + self.decode_cpu.pop(str(entry["frame"]), 0.0))
            self.journal.append(entry)
            if self.progress is not None:
                self.progress(1)


@dataclass(frozen=True)
class _Loop:
    faces_now: int  # faces merged by this run
    started: float  # perf_counter when the first frame was read
    seconds: float  # from the first frame read to the last written
    plan: ThreadPlan


def _merge_frames(todo: list[Path], inputs: MergeInputs, session: MergeSession, ctx: JobContext, n_workers: int,
                  kind: PoolKind, journal: Journal, progress: Progress | None) -> _Loop:
    """Decode ahead, batch the faces through the model and composite in the pool, recording each frame."""
    torch_threads = torch.get_num_threads()
    pool = make_pool(ctx, n_workers, kind, BATCH_FACES)
    plan = ThreadPlan(torch_threads, active=n_workers > 1)
    workers = _Workers(pool, ctx, plan, journal, progress)
    batcher = Batcher(inputs.model, session, inputs.xseg, _motions(session, inputs), plan, workers.submit,
                      workers.drain)
    by_frame = inputs.by_frame
    started = time.perf_counter()
    try:
        for path, frame in prefetch(todo, lambda q: by_frame.get(q.stem) is not None, workers.load,
                                    ahead=2 * BATCH_FACES):
            if frame is None:
                workers.submit(Job(path.stem, path, None, [], session.options_for(path.stem)))
            else:
                batcher.add(path.stem, path, frame, by_frame.get(path.stem, []))
        batcher.flush()
        workers.drain()
        pool.close()
        seconds = time.perf_counter() - started
    except BaseException:
        pool.close(cancel=True)
        raise
    finally:
        torch.set_num_threads(torch_threads)
    return _Loop(batcher.faces_done, started, seconds, plan)


def _summary(inputs: MergeInputs, session: MergeSession, mine: list[Path], shard: Shard | None, resumed: int,
             merged_now: int, loop: _Loop, t0: float, out_dir: Path) -> MergeSummary:
    seconds = time.perf_counter() - t0
    by_frame = inputs.by_frame
    with_faces = sum(1 for p in mine if by_frame.get(p.stem))
    return MergeSummary(
        frames=len(mine), merged=with_faces, passed_through=len(mine) - with_faces,
        faces=sum(len(by_frame.get(p.stem, [])) for p in mine), resumed=resumed, model_id=inputs.model.model_id,
        options=session.options.model_dump(mode="json"), session_frames=len(session.frames),
        shard=None if shard is None else list(shard), unmatched_faces=inputs.unmatched, seconds=round(seconds, 3),
        frames_per_second=rate(merged_now, seconds), setup_seconds=round(loop.started - t0, 3),
        loop_frames_per_second=rate(merged_now, loop.seconds), model_threads=loop.plan.threads,
        schedule=loop.plan.schedule, output=str(out_dir), frame_names=[p.stem for p in mine],
    )

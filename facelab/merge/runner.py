"""Batch merge: every frame of a frame folder, with the faces of an aligned folder swapped by a model.

Flow: the main process reads the frames, crops every face from the frame itself (the record's transform
converted to the model's face type and resolution; the stored aligned image is not used), runs the model
on batches of faces (only the outputs the mask modes use: dst's own mask is predicted only for the
learned-dst modes), and hands each frame with its predictions to a pool of workers (threads or processes)
that composite, watermark (provenance), encode with the provenance record and write ``OUT/<frame>.<fmt>``
and ``OUT/masks/<frame>.png`` atomically. ``_ThreadPlan`` decides whether the model runs alone on every
torch thread between the workers' phases, or on one thread beside them. Threads are the default pool:
on 2 CPU cores they measured faster than processes (8.9 vs 6.3 frames/s, overlay+rct, 480x480 frames),
since OpenCV and numpy release the GIL and nothing is pickled; ``pool="process"`` remains for many-core
machines. Frames without faces are copied through unchanged (the file bytes, when the formats match). A
journal (``OUT/_merge/journal.jsonl``) makes the run resumable: a frame is skipped when the journal lists it as
done with the same model and options and both outputs exist.

Sharding: ``shard=(I, N)`` processes only the frames whose position in the frame folder (0-based, frame
order) satisfies ``position % N == I``, so N machines can split one video and write into one folder
(each shard keeps its own journal and summary, ``merge-shard-I-of-N.json``; a full run writes
``merge.json``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from facelab.core.atomic import sync_all, write_bytes_atomic, write_json_atomic
from facelab.core.errors import InputError
from facelab.core.journal import Journal
from facelab.core.pool import PoolKind, WorkerPool
from facelab.face.align import FACE_TYPE_ORDER
from facelab.faceset.folder import scan_faces
from facelab.faceset.record import FaceRecord
from facelab.media.frames import encode_image, list_frames, read_image_rgb
from facelab.merge.compose import FaceInput, Prediction, crop_face, merge_frame, model_transform
from facelab.merge.masks import LEARNED_DST_MODES
from facelab.merge.options import MergeOptions, check_supported
from facelab.merge.session import MergeSession
from facelab.merge.xseg_masks import has_stored_mask, with_xseg
from facelab.provenance.marker import ProvenanceMarker, marker_for
from facelab.train.inference import SwapModel, load_swap_model
from facelab.xseg.infer import load_xseg

STATE_DIR = "_merge"
MASKS_DIR = "masks"
JOURNAL_NAME = "facelab.merge"
BATCH_FACES = 16  # faces per model call

U8 = NDArray[np.uint8]
Progress = Callable[[int], None]


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
    model_threads: int = 0  # torch threads the model ran on at the end (_ThreadPlan)
    schedule: str = ""  # "overlap" or "lockstep" (_ThreadPlan), "probe" when the run ended before choosing
    output: str = ""
    frame_names: list[str] = field(default_factory=list)


# ---- checks ------------------------------------------------------------------------------------

def parse_shard(text: str | None) -> tuple[int, int] | None:
    """"I/N" -> (I, N) with 0 <= I < N."""
    if text is None:
        return None
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise InputError(f"--shard must look like I/N (e.g. 0/2), got {text!r}") from None
    return check_shard((i, n))


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise InputError(f"shard {i}/{n}: need N >= 1 and 0 <= I < N")
    return i, n


def _check_face_types(faces: Sequence[tuple[Path, FaceRecord]], model_type: str) -> None:
    need = FACE_TYPE_ORDER.index(model_type)
    for path, rec in faces:
        if FACE_TYPE_ORDER.index(rec.face_type) < need:
            raise InputError(f"face extracted as {rec.face_type}, but the model sees {model_type} faces (a larger "
                             f"crop): extract the dst faces again with --face-type {model_type}", path)


def _check_options(session: MergeSession, model: SwapModel, dst_masks: bool) -> None:
    check_supported(session.options, dst_masks)
    for stem in session.frames:
        check_supported(session.options_for(stem), dst_masks)
    if session.options.direction == "dst2src":
        r = model.resolution
        model.swap_reverse(torch.zeros(1, 3, r, r))  # raises InputError for models without a reverse path


# ---- worker side -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Context:
    out_dir: Path
    face_type: str
    resolution: int
    image_format: str
    marker: ProvenanceMarker | None  # None only when provenance is switched off (tests, benchmarks)


@dataclass(frozen=True)
class _Job:
    stem: str
    source: Path
    frame: U8 | None  # decoded frame (frames with faces); None: pass through from the file
    faces: list[FaceInput]
    options: MergeOptions


_CTX: _Context | None = None


def _init(ctx: _Context, single_thread: bool) -> None:
    global _CTX
    if single_thread:
        cv2.setNumThreads(1)
    _CTX = ctx


def _encode(rgb: U8, fmt: str) -> bytes:
    return encode_image(rgb, "jpg" if fmt == "jpg" else "png")


def _encode_mask(mask8: U8) -> bytes:
    return encode_image(mask8, "png")


def _write(path: Path, data: bytes) -> None:
    """Frames and masks are written atomically but not fsynced one by one: the run syncs once at the end
    (a killed run still leaves only whole files, and the journal lists only frames whose files exist)."""
    write_bytes_atomic(path, data, durable=False)


def output_paths(out_dir: Path, stem: str, fmt: str) -> tuple[Path, Path]:
    return out_dir / f"{stem}.{fmt}", out_dir / MASKS_DIR / f"{stem}.png"


def _work(job: _Job, ctx: _Context | None = None) -> dict[str, Any]:
    """Composite, mark, encode and write one frame; the entry carries the CPU seconds it took ("cpu").
    ``ctx`` None: the worker process's own (set by ``_init``)."""
    cpu0 = time.thread_time()
    entry = _work_frame(job, ctx or _CTX)
    entry["cpu"] = time.thread_time() - cpu0
    return entry


def _work_frame(job: _Job, ctx: _Context | None) -> dict[str, Any]:
    assert ctx is not None
    img_path, mask_path = output_paths(ctx.out_dir, job.stem, ctx.image_format)
    if job.frame is None:
        same_format = job.source.suffix.lower().lstrip(".").replace("jpeg", "jpg") == ctx.image_format
        if same_format:
            _write(img_path, job.source.read_bytes())  # bit-identical copy
            h, w = _image_hw(job.source)
        else:
            frame = read_image_rgb(job.source)
            _write(img_path, _encode(frame, ctx.image_format))
            h, w = frame.shape[:2]
        _write(mask_path, _encode_mask(np.zeros((h, w), dtype=np.uint8)))
        return {"frame": job.stem, "faces": 0}
    merged, mask8 = merge_frame(job.frame, job.faces, ctx.face_type, ctx.resolution, job.options,
                               rng=np.random.default_rng(int(hashlib.sha1(job.stem.encode()).hexdigest()[:8], 16)))
    if ctx.marker is not None:
        # the mark stays where the saved 8-bit mask is nonzero, so "outside the mask" means untouched
        merged = ctx.marker.mark(merged, region=mask8, inplace=True)  # merged is this job's own array
        _write(img_path, ctx.marker.tag(_encode(merged, ctx.image_format)))
    else:
        _write(img_path, _encode(merged, ctx.image_format))
    _write(mask_path, _encode_mask(mask8))
    return {"frame": job.stem, "faces": len(job.faces)}


def _image_hw(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError("unreadable image", path)
    return int(img.shape[0]), int(img.shape[1])


def _pool(ctx: _Context, workers: int, kind: PoolKind) -> WorkerPool[dict[str, Any]]:
    """Compositing jobs in worker threads (or processes), or inline for one worker; bounded queue with room
    for a whole batch of the model's faces besides the jobs running: the model goes on with the next batch
    while the workers composite this one (with room for 2 per worker only, it waited for the workers after
    every few frames, and they sat idle while it predicted)."""
    processes = kind == "process" and workers > 1  # threads and inline jobs get the context with each job
    return WorkerPool(workers, kind, backlog=2 * workers + BATCH_FACES, initializer=_init if processes else None,
                      initargs=(ctx, True))


# ---- main side ---------------------------------------------------------------------------------

def _face_centre(rec: FaceRecord) -> NDArray[np.float64]:
    inv = rec.inverse_affine()
    c = rec.size / 2.0
    out: NDArray[np.float64] = inv @ np.array([c, c, 1.0])
    return out


def _motions(by_frame: dict[str, list[FaceRecord]], order: list[str]) -> dict[tuple[str, int], tuple[float, float]]:
    """Per (frame, face index): the face centre's motion in frame pixels per frame (central difference)."""
    centres = {(stem, r.face_index): _face_centre(r) for stem, recs in by_frame.items() for r in recs}
    out: dict[tuple[str, int], tuple[float, float]] = {}
    for i, stem in enumerate(order):
        for r in by_frame.get(stem, []):
            prev = centres.get((order[i - 1], r.face_index)) if i > 0 else None
            nxt = centres.get((order[i + 1], r.face_index)) if i + 1 < len(order) else None
            here = centres[(stem, r.face_index)]
            if prev is not None and nxt is not None:
                v = (nxt - prev) / 2.0
            elif prev is not None:
                v = here - prev
            elif nxt is not None:
                v = nxt - here
            else:
                continue
            out[(stem, r.face_index)] = (float(v[0]), float(v[1]))
    return out


def _prefetch(items: Sequence[Path], wanted: Callable[[Path], bool], load: Callable[[Path], U8],
              ahead: int) -> Iterator[tuple[Path, U8 | None]]:
    """(item, load(item)) in order, loading up to ``ahead`` wanted items in a background thread while the
    caller runs the model (decoding releases the GIL); items not wanted come with None."""
    with ThreadPoolExecutor(1) as pool:
        queue: list[tuple[Path, Future[U8] | None]] = []
        it = iter(items)
        for item in it:
            queue.append((item, pool.submit(load, item) if wanted(item) else None))
            if len(queue) >= ahead:
                break
        while queue:
            item, fut = queue.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(load, nxt) if wanted(nxt) else None))
            yield item, None if fut is None else fut.result()


def _predict(model: SwapModel, crops: list[U8], direction: str, dst_mask: bool) -> list[Prediction]:
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    face, mask, own = model.swap(x, dst_mask) if direction == "src2dst" else model.swap_reverse(x, dst_mask)
    f = face.clamp_(0, 1).permute(0, 2, 3, 1).contiguous().numpy()
    m = mask[:, 0].contiguous().numpy()
    d = None if own is None else own[:, 0].contiguous().numpy()
    return [Prediction(f[i], m[i], None if d is None else d[i]) for i in range(len(crops))]


def needs_dst_mask(session: MergeSession) -> bool:
    """Whether any frame's mask mode uses the model's own mask of the dst face."""
    modes = [session.options.mask_mode, *(session.options_for(stem).mask_mode for stem in session.frames)]
    return any(m in LEARNED_DST_MODES for m in modes)


class _ThreadPlan:
    """How the model shares the CPU with the compositing workers: one of two schedules, chosen by measuring.

    - "lockstep": before each batch the workers finish their frames, then the model runs alone on every
      torch thread. A multi-threaded model sharing the cores with busy workers loses more than overlapping
      gains, since its threads wait for each other whenever one is preempted (2 cores: quick96 42 frames/s
      in lockstep against 38 overlapped on two threads, and at most 27 on one, where the model alone takes
      37 ms a frame; saehd 19.7 against 17.4).
    - "overlap": the model runs on one torch thread while the workers composite earlier frames on the
      other cores; it can win when the model is cheap next to the per-frame work (the demo model on 2
      cores: 173-188 frames/s against 163-173 in lockstep).

    The first two batches run in lockstep: batch 0 warms up, batch 1 measures the model on all ``cores``
    threads (mc, seconds per frame) and the workers' phase after it (d); the workers report their CPU
    seconds per frame (w, decoding included). One thread would take m1 = 0.87 cores mc (torch's parallel
    efficiency on this model size, measured here: 2 x 1.8 ms vs 2.8-3.2 ms for the demo model, 2 x 18.6 vs
    35-39 ms for quick96). Overlap is taken when 1.1 max(m1, (m1 + w) / cores) < mc + d; 1.1 is what
    running side by side cost the demo model here.
    """

    PARALLEL_EFFICIENCY = 0.87
    OVERLAP_PENALTY = 1.1

    def __init__(self, cores: int, active: bool) -> None:
        self.cores = cores
        self.schedule = "probe" if active and cores > 1 else "lockstep"
        self.threads = cores
        self.batches = 0
        self.mc = 0.0
        self._frames = 0
        self._phase_start = 0.0
        self.work_s = 0.0
        self.work_frames = 0

    def work(self, cpu_seconds: float) -> None:
        self.work_s += cpu_seconds
        self.work_frames += 1

    def before_predict(self, drain: Callable[[], None]) -> None:
        """Set the threads for the next batch; in lockstep, let the workers finish first."""
        if self.schedule != "overlap":
            drain()
        if self.schedule == "probe" and self.batches == 2:
            d = (time.perf_counter() - self._phase_start) / self._frames
            w = self.work_s / max(self.work_frames, 1)
            m1 = self.PARALLEL_EFFICIENCY * self.cores * self.mc
            overlap = self.OVERLAP_PENALTY * max(m1, (m1 + w) / self.cores)
            self.schedule = "overlap" if overlap < self.mc + d else "lockstep"
        self.threads = 1 if self.schedule == "overlap" else self.cores
        torch.set_num_threads(self.threads)

    def after_predict(self, seconds: float, frames: int) -> None:
        if self.schedule == "probe" and self.batches == 1:
            self.mc = seconds / frames
        self.batches += 1
        self._frames = frames
        self._phase_start = time.perf_counter()


def run_merge(
    model_dir: Path,
    frames_dir: Path,
    aligned_dir: Path,
    out_dir: Path,
    options: MergeOptions | MergeSession | None = None,
    workers: int | None = None,
    shard: tuple[int, int] | None = None,
    progress: Progress | None = None,
    total: Callable[[int], None] | None = None,
    provenance: bool = True,
    pool: PoolKind = "thread",
    device: str = "auto",
) -> MergeSummary:
    """Merge every frame (of the shard) into out_dir; see the module docstring. Returns the summary.

    Every check (model weights, frames, faces, face types, options) runs before any output is written.
    Merged frames carry the invisible watermark and the provenance record (facelab.provenance); frames
    without faces are copied unchanged. ``provenance=False`` exists for benchmarks and tests only.
    """
    t0 = time.perf_counter()
    session = options if isinstance(options, MergeSession) else MergeSession(options or MergeOptions())
    base = session.options
    n_workers = workers if workers is not None else base.workers
    if n_workers < 1:
        raise InputError(f"workers must be >= 1, got {n_workers}")
    if shard is not None:
        shard = check_shard(shard)
    frames_dir, aligned_dir, out_dir = Path(frames_dir), Path(aligned_dir), Path(out_dir)

    # -- checks, before any work --
    frames = list_frames(frames_dir)
    model = load_swap_model(Path(model_dir), device)
    face_type, res = model.options.face_type, model.resolution
    scan = scan_faces(aligned_dir)
    if not scan.faces:
        raise InputError("no aligned faces in this folder: extract the dst faces first (facelab extract)",
                         aligned_dir)
    _check_face_types(scan.faces, face_type)
    _check_options(session, model, all(has_stored_mask(r) for _, r in scan.faces))
    xseg = load_xseg(base.xseg_model) if base.xseg_model is not None else None
    by_frame: dict[str, list[FaceRecord]] = {}
    for _, rec in scan.faces:
        by_frame.setdefault(rec.source.frame, []).append(rec)
    for recs in by_frame.values():
        recs.sort(key=lambda r: r.face_index)
    order = [p.stem for p in frames]
    known = set(order)
    unmatched = sum(len(v) for k, v in by_frame.items() if k not in known)
    if unmatched == len(scan.faces):
        raise InputError(f"none of the {len(scan.faces)} faces in {aligned_dir} comes from a frame of this folder "
                         "(were they extracted from another video?)", frames_dir)
    if out_dir.resolve() == frames_dir.resolve():
        raise InputError("the output folder must not be the frame folder", out_dir)

    mine = [(i, p) for i, p in enumerate(frames) if shard is None or i % shard[1] == shard[0]]
    suffix = "" if shard is None else f"-shard-{shard[0]}-of-{shard[1]}"
    session_json = session.to_json()
    session_json["options"].pop("workers", None)  # does not change the output
    settings: dict[str, Any] = {"model_id": model.model_id, "session": session_json,
                                "frames": str(frames_dir.resolve()), "aligned": str(aligned_dir.resolve()),
                                "faces": len(scan.faces)}
    # entries count only under the same settings (model, options): others merge every frame again
    journal = Journal(out_dir / STATE_DIR / f"journal{suffix}.jsonl", JOURNAL_NAME, settings)
    fmt = base.image_format

    def finished(stem: str) -> bool:
        img, msk = output_paths(out_dir, stem, fmt)
        return stem in journal and img.is_file() and msk.is_file()

    todo = [(i, p) for i, p in mine if not finished(p.stem)]
    resumed = len(mine) - len(todo)
    if total is not None:
        total(len(mine))
    if progress is not None and resumed:
        progress(resumed)
    need_motion = base.motion_blur > 0 or any("motion_blur" in o for o in session.frames.values())
    motions = _motions(by_frame, order) if need_motion else {}
    dst_mask = needs_dst_mask(session)

    (out_dir / MASKS_DIR).mkdir(parents=True, exist_ok=True)
    torch_threads = torch.get_num_threads()
    marker = marker_for(model.model_id, {"frames": frames_dir.name}) if provenance else None
    ctx = _Context(out_dir, face_type, res, fmt, marker)
    runner = _pool(ctx, n_workers, pool)
    job_ctx = None if runner.separate_processes else ctx
    plan = _ThreadPlan(torch_threads, active=n_workers > 1)
    decode_cpu: dict[str, float] = {}
    faces_now = 0
    t_loop = time.perf_counter()
    try:
        def record(entries: Iterator[dict[str, Any]]) -> None:
            for entry in entries:
                plan.work(entry.pop("cpu") + decode_cpu.pop(str(entry["frame"]), 0.0))
                journal.append(entry)
                if progress is not None:
                    progress(1)

        batch: list[tuple[str, Path, U8, list[FaceRecord]]] = []
        n_faces = 0

        def flush() -> None:
            nonlocal n_faces, faces_now
            if not batch:
                return
            crops: list[U8] = []
            for _stem, _, frame, recs in batch:
                crops.extend(crop_face(frame, model_transform(r, face_type, res), res) for r in recs)
            plan.before_predict(lambda: record(runner.drain()))
            t_model = time.perf_counter()
            preds = _predict(model, crops, base.direction, dst_mask)
            plan.after_predict(time.perf_counter() - t_model, len(batch))
            modes = [session.options_for(stem).mask_mode for stem, _, _, recs in batch for _ in recs]
            recs_flat = [r for _, _, _, recs in batch for r in recs]
            preds = with_xseg(preds, crops, recs_flat, modes, xseg, face_type, res)
            k = 0
            for stem, path, frame, recs in batch:
                inputs = [FaceInput(r, preds[k + j], motions.get((stem, r.face_index))) for j, r in enumerate(recs)]
                k += len(recs)
                faces_now += len(recs)
                record(runner.submit(_work, _Job(stem, path, frame, inputs, session.options_for(stem)), job_ctx))
            batch.clear()
            n_faces = 0

        def load(path: Path) -> U8:
            cpu0 = time.thread_time()
            frame = read_image_rgb(path)
            decode_cpu[path.stem] = time.thread_time() - cpu0
            return frame

        for path, frame in _prefetch([p for _, p in todo], lambda q: by_frame.get(q.stem) is not None,
                                     load, ahead=2 * BATCH_FACES):
            recs = by_frame.get(path.stem, [])
            if frame is None:
                record(runner.submit(_work, _Job(path.stem, path, None, [], session.options_for(path.stem)), job_ctx))
                continue
            batch.append((path.stem, path, frame, recs))
            n_faces += len(recs)
            if n_faces >= BATCH_FACES:
                flush()
        flush()
        record(runner.drain())
        runner.close()
        loop_seconds = time.perf_counter() - t_loop
    except BaseException:
        runner.close(cancel=True)
        sync_all()
        journal.close()
        raise
    finally:
        torch.set_num_threads(torch_threads)
    sync_all()  # the frames and masks, written without one fsync each
    journal.close()

    seconds = time.perf_counter() - t0
    with_faces = sum(1 for _, p in mine if by_frame.get(p.stem))
    summary = MergeSummary(
        frames=len(mine), merged=with_faces, passed_through=len(mine) - with_faces,
        faces=sum(len(by_frame.get(p.stem, [])) for _, p in mine), resumed=resumed, model_id=model.model_id,
        options=base.model_dump(mode="json"), session_frames=len(session.frames),
        shard=None if shard is None else list(shard), unmatched_faces=unmatched, seconds=round(seconds, 3),
        frames_per_second=round(len(todo) / seconds, 2) if seconds > 0 else 0.0,
        setup_seconds=round(t_loop - t0, 3),
        loop_frames_per_second=round(len(todo) / loop_seconds, 2) if loop_seconds > 0 else 0.0,
        model_threads=plan.threads, schedule=plan.schedule, output=str(out_dir),
        frame_names=[p.stem for _, p in mine],
    )
    write_json_atomic(out_dir / f"merge{suffix}.json",
                      {"schema": "facelab.merge_summary", "version": 1} | asdict(summary) | {"faces_now": faces_now})
    if marker is not None:
        marker.finish_folder(out_dir)
    return summary


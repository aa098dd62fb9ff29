"""The live pipeline: capture -> detect (and track) -> align -> swap -> merge (and watermark) -> output,
as in DeepFaceLive, each group of stages in its own thread so they overlap.

Threads: capture; detect + align; swap (the model: ``swap_workers`` threads from a live source, frames side
by side, a frame overtaken by a later one dropped at the merge); merge + watermark; output in the calling thread
(a Tk window must live in the main thread, and Ctrl+C arrives there). Stages hand frames on through
``Channel``s of one frame, and a stage takes its next frame only when the next stage has room for the
result: the slowest stage sets the pace, no frame queues up behind it, and the frame the model gets is the
newest the detection stage could prepare. From a live source the detection stage also starts just in time
(``pace_detection``): not as soon as the model took the previous frame, but when the model is due to be free
less the detection's own usual time, so the frame it takes is fresher by about the model's time. From a live
source (camera, stream, a file played at its frame rate) the capture channel keeps only the newest frame:
a frame still waiting when the next arrives is dropped, so latency never builds up; from a file played as
fast as possible nothing is dropped. The detection stage also overlaps its work with the model's.

OpenCV, dlib, numpy and PyTorch release the GIL in their heavy calls, so threads overlap on several
cores; the model's own threads are ``model_threads``. Ctrl+C (SIGINT) sets the stop flag: every stage
leaves at its next hand-over, the threads are joined, and the output is finished (a complete, marked
video file). A second Ctrl+C interrupts at once.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Generic, TypeVar

import torch

from facelab.core.types import U8
from facelab.export.load import FaceSwapper
from facelab.live.capture import Captured, Source
from facelab.live.faces import AlignedFace, align_faces, composite, cpu_bf16, freeze_model, needs_dst_mask, predict
from facelab.live.options import LiveOptions
from facelab.live.outputs import Sink, draw_stats
from facelab.live.stats import LiveStats, LiveSummary
from facelab.live.track import FaceTracker
from facelab.merge.compose import Prediction
from facelab.provenance.marker import ProvenanceMarker

T = TypeVar("T")
_JOIN_S = 5.0  # a stage still busy after this (a camera read that never returns) is left behind (daemon)
_PACE_WEIGHT = 0.2  # of the newest frame in a stage's running mean duration
_PACE_MARGIN = 0.25  # of the detection's usual time, plus _PACE_MARGIN_S: slack so the model never waits for it
_PACE_MARGIN_S = 0.002


class _End:
    """The end of the stream, handed down the stages."""


END = _End()


class Channel(Generic[T]):
    """A hand-over of at most ``size`` items between two stages; ``latest``: a put never waits, it replaces
    the oldest waiting item (counted in ``replaced``). Both ends return at once when ``stop`` is set."""

    def __init__(self, stop: threading.Event, size: int = 1, latest: bool = False) -> None:
        self.items: deque[T | _End] = deque()
        self.size = size
        self.latest = latest
        self.stop = stop
        self.cond = threading.Condition()
        self.replaced = 0
        self.busy: dict[int, float] = {}  # consumer thread -> when it took the item it is working on (see ``done``)

    def put(self, item: T | _End) -> None:
        with self.cond:
            if self.latest and not isinstance(item, _End):
                while len(self.items) >= self.size:
                    self.items.popleft()
                    self.replaced += 1
            else:
                while len(self.items) >= self.size and not self.stop.is_set():
                    self.cond.wait(0.1)
            self.items.append(item)
            self.cond.notify_all()

    def wait_room(self) -> None:
        """Wait until a put would not wait (or stop)."""
        with self.cond:
            while len(self.items) >= self.size and not self.stop.is_set():
                self.cond.wait(0.1)

    def get(self) -> T | _End:
        """The next item; the end of the stream stays in the channel, so that every consumer gets it."""
        with self.cond:
            while not self.items:
                if self.stop.is_set():
                    return END
                self.cond.wait(0.1)
            if isinstance(self.items[0], _End):
                return END
            item = self.items.popleft()
            self.busy[threading.get_ident()] = time.perf_counter()
            self.cond.notify_all()
            return item

    def done(self) -> None:
        """The calling consumer is done with the item it took."""
        with self.cond:
            self.busy.pop(threading.get_ident(), None)

    def busy_since(self) -> list[float]:
        """When each consumer still working on an item took it."""
        with self.cond:
            return list(self.busy.values())

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()


def detection_wait(busy_since: list[float], workers: int, swap_s: float, detect_s: float, now: float) -> float:
    """Seconds the detection stage waits before taking its next frame: until the first of the ``workers`` swap
    workers is due to be free (it took its frame at ``busy_since``, a swap takes ``swap_s``) less the
    detection's own ``detect_s`` and a margin; 0 while a worker is free."""
    if len(busy_since) < workers:
        return 0.0
    due = min(busy_since) + swap_s - detect_s * (1 + _PACE_MARGIN) - _PACE_MARGIN_S
    return max(0.0, due - now)


def _mean(usual: float, seconds: float) -> float:
    return seconds if usual == 0 else (1 - _PACE_WEIGHT) * usual + _PACE_WEIGHT * seconds


@dataclass
class Work:
    """One frame on its way through the stages."""

    cap: Captured
    faces: list[AlignedFace] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    out: U8 | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # per stage: wall-clock time
    cpu: dict[str, float] = field(default_factory=dict)  # per stage: CPU time of the stage's thread
    skip: bool = False  # dropped on the way (a stale frame)


class _Workers:
    """The workers of one stage, counting down as they end."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.lock = threading.Lock()

    def last_out(self) -> bool:
        """Called by each worker as it ends: whether it is the last one."""
        with self.lock:
            self.left -= 1
            return self.left == 0


@contextmanager
def _timed(work: Work, stage: str) -> Iterator[None]:
    t0, c0 = time.perf_counter(), time.thread_time()
    yield
    work.seconds[stage] = time.perf_counter() - t0
    work.cpu[stage] = time.thread_time() - c0


class _Stopper:
    """Ctrl+C sets the stop flag (once); a second one raises KeyboardInterrupt. Only in the main thread."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: Any = None
        self.installed = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> _Stopper:
        if self.installed:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)


class LivePipeline:
    def __init__(self, model: FaceSwapper, source: Source, sink: Sink, opts: LiveOptions, marker: ProvenanceMarker,
                 report: Callable[[str], None] | None = None) -> None:
        self.model = model
        self.source = source
        self.sink = sink
        self.opts = opts
        self.merge_opts = opts.merge_options()
        self.dst_mask = needs_dst_mask(self.merge_opts)
        self.bf16 = cpu_bf16(model, opts.precision)
        torch.set_num_threads(opts.model_threads)
        self.runtime = freeze_model(model, opts.trace, self.dst_mask, self.bf16)  # what runs the model
        self.marker = marker  # its watermark phase is chosen on the first frame with a face (``_merge``)
        self.placed = False
        self.report = report
        self.tracker = FaceTracker(opts, float(source.fps))
        self.swap_usual = 0.0  # the swap stage's usual seconds a frame (a running mean)
        self.detect_usual = {True: 0.0, False: 0.0}  # the detect + align stage's usual seconds: detection, tracking
        self.paced = opts.pace_detection and source.live
        # frames from several swap workers may come out of order: the merge stage drops a stale one, which only
        # a live source may do (a file swapped as fast as possible keeps every frame: one worker)
        self.swap_workers = opts.swap_workers if source.live else 1
        self.last_merged = -1
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.stats = LiveStats()
        self.notes: list[str] = []
        self.interrupted = False

    # ---- stages ----------------------------------------------------------------------------------

    def _capture(self, out: Channel[Work]) -> None:
        frames = self.source.frames()
        while not self.stop.is_set():
            c0 = time.thread_time()  # a paced source's sleep takes no CPU time
            cap = next(frames, None)
            if cap is None:
                break
            work = Work(cap)
            work.seconds["capture"] = cap.read_s
            work.cpu["capture"] = time.thread_time() - c0
            out.put(work)
        out.put(END)

    def _just_in_time(self, aligned: Channel[Work]) -> None:
        """Wait (a live source's detection stage, once a swap worker took its previous frame, before this
        stage takes the next) until the first swap worker is due to be free (the time it took its frame plus
        the usual swap time) less this stage's usual time and a margin: the frame this stage then takes waits
        the least. No wait while a swap worker is free."""
        if not self.paced:
            return
        wait = detection_wait(aligned.busy_since(), self.swap_workers, self.swap_usual,
                              self.detect_usual[self.tracker.will_detect()], time.perf_counter())
        if wait > 0:
            self.stop.wait(wait)

    def _detect_align(self, work: Work) -> None:
        full = self.tracker.will_detect()
        t0 = time.perf_counter()
        with _timed(work, "detect"):
            faces = self.tracker.update(work.cap.image, work.cap.index)
        with _timed(work, "align"):
            work.faces = align_faces(work.cap.image, faces, work.cap.index, self.model.face_type,
                                     self.model.resolution)
        self.detect_usual[full] = _mean(self.detect_usual[full], time.perf_counter() - t0)

    def _swap(self, work: Work) -> None:
        with _timed(work, "swap"):
            work.predictions = predict(self.model, [f.crop for f in work.faces], self.dst_mask, self.bf16)
        self.swap_usual = _mean(self.swap_usual, work.seconds["swap"])

    def _merge(self, work: Work) -> None:
        if work.cap.index <= self.last_merged:  # overtaken by a later frame on another swap worker: stale
            work.skip = True
            return
        self.last_merged = work.cap.index
        with _timed(work, "merge"):
            frame = work.cap.image
            if work.faces:
                merged, mask8 = composite(frame, work.faces, work.predictions, self.model.face_type,
                                          self.model.resolution, self.merge_opts)
                if not self.placed:
                    # the tiling's phase, chosen as `facelab merge` chooses it but on the one frame there is (no
                    # frames ahead of time): the first with a face (a camera's scene changes little); every frame
                    # after, and the file's record, use it
                    self.marker = self.marker.placed([merged])
                    self.placed = True
                # the mark goes where the faces changed the frame, as in `facelab merge`; its layout follows the
                # frame's number in the source (the output file's timeline)
                frame = self.marker.mark(merged, region=mask8, inplace=True, frame=work.cap.index,
                                         where=self.merge_opts.watermark_region)
            if self.sink.overlay:
                frame = draw_stats(frame, self.stats.line())
            work.out = frame

    def _stage(self, fn: Callable[[Work], None], inp: Channel[Work], out: Channel[Work],
               before: Callable[[Channel[Work]], None] | None = None, workers: _Workers | None = None) -> None:
        """One worker of a stage (``workers``: the stage's workers, of which the last to end passes the end
        of the stream on)."""
        while True:
            # a stage takes its next frame only when the next stage can take the result at once: a frame is
            # never processed early only to wait (growing stale) while the next stage is busy
            out.wait_room()
            if before is not None:
                before(out)
            item = inp.get()
            if isinstance(item, _End):
                if workers is None or workers.last_out():
                    out.put(END)
                return
            fn(item)
            inp.done()
            if not item.skip:
                out.put(item)

    def _guard(self, target: Callable[..., None], *args: Any) -> Callable[[], None]:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                if self.stop.is_set():  # while stopping (or after another error): the output is already complete
                    self.notes.append(f"while stopping, {threading.current_thread().name}: {exc}")
                else:
                    self.errors.append(exc)
                    self.stop.set()
        return run

    # ---- the run ---------------------------------------------------------------------------------

    def run(self) -> LiveSummary:
        """Run until the source ends, ``max_frames`` are out, the window closes, Ctrl+C or an error (raised
        here after the threads are joined and the output finished)."""
        torch.set_num_threads(self.opts.model_threads)
        from facelab.provenance.kernels import warm_up

        warm_up()  # the watermark's compiled kernels loaded now, not as a stall on the first marked frame
        stop = self.stop
        captured: Channel[Work] = Channel(stop, latest=self.source.live)
        aligned: Channel[Work] = Channel(stop)
        swapped: Channel[Work] = Channel(stop, size=self.swap_workers)
        merged: Channel[Work] = Channel(stop)
        workers = _Workers(self.swap_workers)
        swappers = [threading.Thread(target=self._guard(self._stage, self._swap, aligned, swapped, None, workers),
                                     name=f"live-swap-{k}", daemon=True) for k in range(self.swap_workers)]
        threads = [
            threading.Thread(target=self._guard(self._capture, captured), name="live-capture", daemon=True),
            threading.Thread(target=self._guard(self._stage, self._detect_align, captured, aligned, self._just_in_time),
                             name="live-detect", daemon=True),
            *swappers,
            threading.Thread(target=self._guard(self._stage, self._merge, swapped, merged), name="live-merge",
                             daemon=True),
        ]
        self.stats = LiveStats()
        with _Stopper(stop):
            for t in threads:
                t.start()
            try:
                self._output(merged)
            finally:
                stop.set()
                for ch in (captured, aligned, swapped, merged):
                    ch.wake()
                for t in threads:
                    t.join(_JOIN_S)
                self.notes.extend(self._close_sink())
        if self.errors:
            raise self.errors[0]
        if captured.replaced:
            self.notes.append(f"{captured.replaced} frames dropped while the pipeline was busy (live source)")
        return self.stats.summary(self.source.name, self.sink.name, self.tracker.detections, self.notes, self.runtime)

    def _close_sink(self) -> list[str]:
        try:
            return self.sink.close(self.marker)
        except BaseException as exc:
            self.errors.append(exc)
            return []

    def _output(self, merged: Channel[Work]) -> None:
        last_report = time.perf_counter()
        for work in self._until_end(merged):
            assert work.out is not None
            with _timed(work, "output"):
                keep_going = self.sink.write(work.out, work.cap.index)
            self.stats.frame_done(work.cap.index, work.cap.t_in, work.seconds, work.cpu, len(work.faces))
            if not keep_going or (self.opts.max_frames and self.stats.frames_out >= self.opts.max_frames):
                break
            now = time.perf_counter()
            if self.report is not None and self.opts.stats_every > 0 and now - last_report >= self.opts.stats_every:
                self.report(self.stats.line())
                last_report = now
        if self.stop.is_set() and not self.errors:
            self.interrupted = True
            self.notes.append("stopped by Ctrl+C")

    def _until_end(self, merged: Channel[Work]) -> Iterator[Work]:
        while True:
            item = merged.get()
            if isinstance(item, _End):
                return
            yield item

"""Background warm-up: predict the model batches the user has not visited yet, nearest first.

Once the tuner is used (its first render request, or the page asking for the frames list), one background
thread predicts, batch by batch, the batches not cached yet, in the batches the batch merge uses (``plan``,
so every frame stays bit-identical with ``facelab merge``), starting from the batch of the frame the user is
on and moving outward (forward first on a tie). It yields to the user: every model call goes through the
predictor's ``ModelGate``, where a render request waiting for the model goes before the warm-up's next batch
(it waits at most for the batch in progress), and a request for a cached frame does not touch the gate at
all. The warm-up's predictions go into the cache as its least recently used entries and it stops when the
next batch would evict anything ("full"), so it never pushes out what the user looked at. When the cache is
full it still predicts the next batch when the user is within ``PREFETCH_WITHIN`` frames of the end of the
current one (the previous behaviour: stepping forward does not wait). New weights or new frames drop the
cache (``Predictor``), and the warm-up starts again at the next request or status poll.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from facelab.core.errors import FacelabError
from facelab.studio.tuner.index import FrameIndex, IndexCache
from facelab.studio.tuner.predictor import PREFETCH_WITHIN, Predictor

log = logging.getLogger(__name__)

Batch = tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """The model batches of one FrameIndex in frame order, and each frame's position."""

    index: FrameIndex
    batches: list[Batch]
    pos: dict[str, int]


def make_plan(index: FrameIndex) -> Plan:
    stems = index.stems
    batches = [b for s in stems if (b := index.batches.get(s)) is not None and b[0] == s]
    return Plan(index, batches, {s: i for i, s in enumerate(stems)})


def nearest_first(plan: Plan, batches: list[Batch], focus: int) -> list[Batch]:
    """``batches`` ordered by their distance in frames from frame position ``focus`` (forward first on a tie)."""
    def key(b: Batch) -> tuple[int, int]:
        a, z = plan.pos[b[0]], plan.pos[b[-1]]
        if a <= focus <= z:
            return 0, 0
        return (a - focus, 0) if a > focus else (focus - z, 1)
    return sorted(batches, key=key)


class Warmup:
    """The tuner's background warm-up thread (one per Tuner; started by ``start``, woken by ``poke``)."""

    def __init__(self, predictor: Predictor, index: IndexCache, enabled: bool = True) -> None:
        self.predictor = predictor
        self.index = index
        self.enabled = enabled
        self.state = "idle"  # idle | loading | running | done | full | unavailable | error
        self.message = ""
        self.batches_done = 0  # batches predicted by the warm-up (since start)
        self._cond = threading.Condition()
        self._focus: tuple[str | None, str] = (None, "src2dst")
        self._poked = False
        self._busy = False  # the thread is looking for work or predicting
        self._closed = False
        self._thread: threading.Thread | None = None
        self._plan: Plan | None = None

    # ---- control -----------------------------------------------------------------------------------

    def start(self, force: bool = False) -> None:
        """Start the thread (when enabled, or ``force``) and have it look for work."""
        with self._cond:
            if self._thread is None and (self.enabled or force) and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="tuner-warmup", daemon=True)
                self._thread.start()
        self.poke()

    def focus(self, stem: str, direction: str) -> None:
        """The frame the user is on (the warm-up moves outward from it) and the direction asked for."""
        with self._cond:
            self._focus = (stem, direction)
        self.start()

    def poke(self) -> None:
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def wait(self, states: tuple[str, ...] = ("done", "full", "unavailable", "error"),
             timeout: float = 300.0) -> str:
        """Wait until the warm-up has nothing left to do (tests, benchmarks); its state."""
        with self._cond:
            self._cond.wait_for(lambda: self.state in states and not self._poked and not self._busy, timeout)
            return self.state

    # ---- progress ----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``{state, cached, total, ...}``: model batches cached for the loaded model and the user's direction,
        of all the clip's batches (``cached`` is 0 before the model is loaded)."""
        try:
            index = self.index.get()
        except FacelabError as exc:
            return {"state": "unavailable", "message": str(exc).splitlines()[0], "cached": 0, "total": 0}
        plan = self._plan_of(index)
        gen = self.predictor.sync(index)
        model = self.predictor.loaded
        direction = self._focus[1]
        cached = 0 if model is None else sum(
            1 for b in plan.batches if self.predictor.has_batch(model.model_id, direction, gen, b))
        cache = self.predictor.cache
        return {"state": self.state, "message": self.message, "cached": cached, "total": len(plan.batches),
                "cache_bytes": cache.nbytes, "cache_max_bytes": cache.max_bytes}

    # ---- the thread --------------------------------------------------------------------------------

    def _set(self, state: str, message: str = "") -> None:
        with self._cond:
            self.state, self.message = state, message
            self._cond.notify_all()

    def _plan_of(self, index: FrameIndex) -> Plan:
        plan = self._plan
        if plan is None or plan.index is not index:
            plan = self._plan = make_plan(index)
        return plan

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._poked and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                self._poked = False
                self._busy = True
            try:
                self._run()
            except FacelabError as exc:
                self._set("unavailable", " ".join(str(exc).split()))
            except Exception as exc:  # a background thread: report it in the status, keep serving
                log.exception("tuner warm-up failed")
                self._set("error", f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _run(self) -> None:
        p = self.predictor
        while not self._closed:
            index = self.index.get()
            gen = p.sync(index)
            if p.loaded is None:
                self._set("loading")
            model = p.model()
            stem, direction = self._focus
            if direction == "dst2src":
                model.check_reverse()
            plan = self._plan_of(index)
            todo = [b for b in plan.batches if not p.has_batch(model.model_id, direction, gen, b)]
            if not todo:
                self._set("done")
                return
            focus = plan.pos.get(stem, 0) if stem is not None else 0
            batch = nearest_first(plan, todo, focus)[0]
            need = p.batch_bytes(model.model_id, index, batch)
            cold = need <= p.cache.room if need is not None else len(p.cache) == 0
            if not cold:
                ahead = self._next_batch(plan, stem, set(todo))
                if ahead is None:
                    self._set("full")
                    return
                batch = ahead
            self._set("running")
            if p.warm_batch(model, index, gen, batch, direction, cold):
                self.batches_done += 1
                if not p.has_batch(model.model_id, direction, gen, batch):  # larger than thought: stop there
                    self._set("full")
                    return

    def _next_batch(self, plan: Plan, stem: str | None, todo: set[Batch]) -> Batch | None:
        """The batch after the user's when the user is near the end of it and it is not cached."""
        batch = plan.index.batches.get(stem) if stem is not None else None
        if batch is None or len(batch) - batch.index(stem or "") > PREFETCH_WITHIN:
            return None
        i = plan.batches.index(batch)
        if i + 1 < len(plan.batches) and plan.batches[i + 1] in todo:
            return plan.batches[i + 1]
        return None

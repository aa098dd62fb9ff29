"""The bounded worker pool of a long job: extraction and merging hand it one job at a time and take results
as they finish, so the main process reads its input only a little ahead of the workers.

``kind="process"``: worker processes (spawned; ``initializer(*initargs)`` runs once in each), for work that
holds the GIL. ``kind="thread"``: worker threads, for work that releases it (OpenCV, numpy, codecs) and
whose inputs are too large to pickle cheaply. One worker runs every job inline, in the caller. With
threads or inline, ``initializer`` runs once, here, before the first job (threads share its globals).
At most ``backlog`` jobs are queued or running; ``submit`` blocks while the queue is full and yields
the results of the jobs that finished meanwhile, in completion order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

R = TypeVar("R")
PoolKind = Literal["process", "thread"]


class WorkerPool(Generic[R]):
    def __init__(self, workers: int, kind: PoolKind = "process", *, backlog: int | None = None,
                 initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.kind = kind
        self.backlog = backlog if backlog is not None else 2 * workers
        self.pending: set[Future[R]] = set()
        self.executor: Executor | None = None
        if workers > 1 and kind == "process":
            ctx = multiprocessing.get_context("spawn")
            self.executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
        else:
            if initializer is not None:
                initializer(*initargs)
            if workers > 1:
                self.executor = ThreadPoolExecutor(workers)

    @property
    def separate_processes(self) -> bool:
        """Whether jobs run in other processes (their arguments are pickled, globals are not shared)."""
        return isinstance(self.executor, ProcessPoolExecutor)

    def submit(self, fn: Callable[..., R], *args: Any) -> Iterator[R]:
        """Queue ``fn(*args)``; yields the results of jobs that finished meanwhile (blocks while the queue is
        full). Inline (one worker), the job runs now and its result is yielded."""
        if self.executor is None:
            yield fn(*args)
            return
        self.pending.add(self.executor.submit(fn, *args))
        while len(self.pending) >= self.backlog:
            yield from self._finished()

    def drain(self) -> Iterator[R]:
        """The results of every job still queued or running, in completion order."""
        while self.pending:
            yield from self._finished()

    def _finished(self) -> Iterator[R]:
        done, self.pending = wait(self.pending, return_when=FIRST_COMPLETED)
        for fut in done:
            yield fut.result()

    def map(self, fn: Callable[..., R], *iterables: Iterable[Any], chunksize: int = 1) -> Iterator[R]:
        """``fn`` over the items, results in input order (chunks of ``chunksize`` per process task)."""
        if self.executor is None:
            yield from map(fn, *iterables)
            return
        yield from self.executor.map(fn, *iterables, chunksize=chunksize)

    def close(self, cancel: bool = False) -> None:
        """Wait for the workers (``cancel``: drop the queued jobs first) and release them."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=cancel)
            self.executor = None

    def __enter__(self) -> WorkerPool[R]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(cancel=exc_type is not None)

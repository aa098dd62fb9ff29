"""Frames decoded ahead in a background thread while the model runs (decoding releases the GIL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch(items: Sequence[T], wanted: Callable[[T], bool], load: Callable[[T], R],
             ahead: int) -> Iterator[tuple[T, R | None]]:
    """(item, load(item)) in order, loading up to ``ahead`` wanted items in a background thread while the
    caller works on earlier ones; items not wanted come with None."""
    with ThreadPoolExecutor(1) as pool:
        queue: list[tuple[T, Future[R] | None]] = []
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

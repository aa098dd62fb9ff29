"""The studio's event bus: topics published from any thread, read by the pages over server-sent events.

``publish(topic, data)`` is thread-safe (job reader threads, the training watcher, request handlers);
``subscribe(topics)`` is an async iterator of ``{"topic": ..., "data": {...}}`` used by ``/api/events``.
A slow subscriber loses its oldest events rather than growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

QUEUE_LIMIT = 1000
Event = dict[str, Any]


@dataclass(eq=False)
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Event | None]
    topics: frozenset[str]
    dropped: int = field(default=0)


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: set[_Subscriber] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Send ``data`` to every subscriber of ``topic``; callable from any thread, never blocks."""
        event: Event = {"topic": topic, "data": data}
        with self._lock:
            subs = [s for s in self._subs if topic in s.topics or "*" in s.topics]
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(_put, sub, event)
            except RuntimeError:  # the subscriber's loop is closed
                self._remove(sub)

    def _remove(self, sub: _Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)

    async def subscribe(self, topics: Iterable[str], first: Iterable[Event] = (),
                        keepalive_s: float = 15.0) -> AsyncIterator[Event | None]:
        """Events of ``topics`` (``first`` before them); None every ``keepalive_s`` without one (a keepalive).

        Ends when the bus closes (server shutdown).
        """
        q: asyncio.Queue[Event | None] = asyncio.Queue()
        sub = _Subscriber(asyncio.get_running_loop(), q, frozenset(topics))
        with self._lock:
            if self._closed:
                return
            self._subs.add(sub)
        try:
            for initial in first:
                yield initial
            while True:
                try:
                    got = await asyncio.wait_for(q.get(), timeout=keepalive_s)
                except TimeoutError:
                    yield None
                    continue
                if got is None or self._closed:
                    return
                yield got
        finally:
            self._remove(sub)

    def close(self) -> None:
        """End every subscription (their streams finish), so the server can shut down."""
        with self._lock:
            self._closed = True
            subs = list(self._subs)
        for sub in subs:
            with contextlib.suppress(RuntimeError):
                sub.loop.call_soon_threadsafe(sub.queue.put_nowait, None)


def _put(sub: _Subscriber, event: Event) -> None:
    if sub.queue.qsize() >= QUEUE_LIMIT:
        sub.queue.get_nowait()
        sub.dropped += 1
    sub.queue.put_nowait(event)

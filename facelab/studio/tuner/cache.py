"""A least-recently-used cache bounded by the bytes its values hold."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ByteLRU(Generic[V]):
    """Values with their size in bytes; the least recently used go when the total passes ``max_bytes``
    (the newest value always stays, even when larger). A value put ``cold`` (a background warm-up's) goes
    in as the least recently used, so it is the first to go, before anything the user looked at."""

    def __init__(self, max_bytes: int, size: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` is held (without counting a hit or making it recent)."""
        with self._lock:
            return key in self._items

    def put(self, key: Hashable, value: V, cold: bool = False) -> None:
        n = self._size(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, n)
            if cold:
                self._items.move_to_end(key, last=False)
            self._bytes += n
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size
                self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def room(self) -> int:
        """Bytes that can still be put without evicting anything."""
        return self.max_bytes - self._bytes

    def __len__(self) -> int:
        return len(self._items)

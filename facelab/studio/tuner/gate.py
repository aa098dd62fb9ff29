"""One model call at a time, the user's first: a lock with two kinds of holders.

A render request that needs the model (``user``) waits only for the call in progress; the background
warm-up (``background``) takes the model only when no request holds it or waits for it, so between two of
its batches every waiting request goes first."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ModelGate:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._users_waiting = 0

    @contextmanager
    def user(self) -> Iterator[None]:
        with self._cond:
            self._users_waiting += 1
            try:
                while self._busy:
                    self._cond.wait()
            finally:
                self._users_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def background(self) -> Iterator[None]:
        with self._cond:
            while self._busy or self._users_waiting:
                self._cond.wait()
            self._busy = True
        try:
            yield
        finally:
            self._release()

    @property
    def users_waiting(self) -> int:
        with self._cond:
            return self._users_waiting

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._busy

    def _release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

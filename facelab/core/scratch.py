"""Scratch arrays: a per-frame function's large temporaries, kept with the calling thread for its next call.

A long job (merging, live swapping) allocates and frees the same large temporaries once a frame. glibc's malloc
serves a request above its mmap threshold with a fresh mapping, and gives the top of a heap back to the system
once enough of it is free; every page of such a block is then faulted in again by the next frame. Measured on the
project's 2-core VM (docs/provenance.md, session 18): the watermark's embed, run in two worker threads on 480p
frames, took 600-800 page faults a frame, about 2.6 microseconds each: 3.6-3.9 ms of CPU a frame, against
2.1-2.3 ms (and 0-10 faults) with its three full-size planes kept here.

A function takes its temporaries from ``scratch`` and writes them through OpenCV's ``dst=`` (or numpy's
``out=``); the arrays stay with the thread, one per name, replaced when the shape or dtype changes, and are freed
when the thread ends: a long-lived thread (the studio server's, the live pipeline's) keeps them, up to MOST_BYTES
(the watermark's three planes: 16 MB at 1080p).
"""

from __future__ import annotations

import threading
from typing import TypeVar

import numpy as np
import numpy.typing as npt

MOST_BYTES = 64 << 20  # the most bytes of scratch arrays one thread keeps; beyond it, fresh arrays

_THREAD = threading.local()
S = TypeVar("S", bound=np.generic)


def scratch(name: str, shape: tuple[int, ...], dtype: type[S]) -> npt.NDArray[S]:
    """An uninitialised array for a temporary, kept with the calling thread under ``name`` and handed out again
    to the next call asking for the same name, shape and dtype (another shape replaces it). Its contents last
    until the thread's next ``scratch(name, ...)``: never return one, or keep it. A fresh array when the thread's
    scratch arrays would pass MOST_BYTES (a 4K frame's planes)."""
    kept: dict[str, npt.NDArray[np.generic]] | None = getattr(_THREAD, "arrays", None)
    if kept is None:
        kept = _THREAD.arrays = {}
    old = kept.pop(name, None)
    if old is not None and old.shape == shape and old.dtype == dtype:
        kept[name] = old
        return old  # type: ignore[return-value]  # of the dtype asked for (checked above)
    arr: npt.NDArray[S] = np.empty(shape, dtype=dtype)
    if arr.nbytes + sum(a.nbytes for a in kept.values()) <= MOST_BYTES:
        kept[name] = arr
    return arr

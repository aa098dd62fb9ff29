"""Rich progress bars for long jobs, on stderr, driven by the library's progress callbacks.

With ``FACELAB_PROGRESS=json`` in the environment (the studio sets it for its jobs) every bar also writes
machine-readable lines to stderr, ``facelab-progress {"description": ..., "done": N, "total": M}``, at most
about five a second plus the first and the last.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
PROGRESS_PREFIX = "facelab-progress "
PROGRESS_INTERVAL_S = 0.2


def progress_json_enabled() -> bool:
    return os.environ.get("FACELAB_PROGRESS", "").lower() == "json"


def emit_progress(description: str, done: float, total: float | None) -> None:
    """One machine-readable progress line on stderr (for FACELAB_PROGRESS=json)."""
    line = json.dumps({"description": description, "done": done, "total": total})
    sys.stderr.write(PROGRESS_PREFIX + line + "\n")
    sys.stderr.flush()


class Bar:
    """One progress bar; the library reports either increments or (done, total)."""

    def __init__(self, progress: Progress, task: TaskID, description: str = "", total: int | None = None) -> None:
        self._p, self._t = progress, task
        self._description, self._done, self._total = description, 0, total
        self._json, self._last = progress_json_enabled(), 0.0

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._t, n)
        self._done += n
        self._report()

    def set_total(self, total: int) -> None:
        self._p.update(self._t, total=total)
        self._total = total
        self._report(force=True)

    def update(self, done: int, total: int) -> None:
        self._p.update(self._t, completed=done, total=total)
        self._done, self._total = done, total
        self._report()

    def _report(self, force: bool = False) -> None:
        if not self._json:
            return
        now = time.monotonic()
        if force or self._done == self._total or now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            emit_progress(self._description, self._done, self._total)


@contextmanager
def progress_bar(description: str, total: int | None = None, **kwargs: Any) -> Iterator[Bar]:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, **kwargs) as progress:
        yield Bar(progress, progress.add_task(description, total=total), description, total)

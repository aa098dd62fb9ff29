"""Rich progress bars for long jobs, on stderr, driven by the library's progress callbacks."""

from __future__ import annotations

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


class Bar:
    """One progress bar; the library reports either increments or (done, total)."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._p, self._t = progress, task

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._t, n)

    def set_total(self, total: int) -> None:
        self._p.update(self._t, total=total)

    def update(self, done: int, total: int) -> None:
        self._p.update(self._t, completed=done, total=total)


@contextmanager
def progress_bar(description: str, total: int | None = None, **kwargs: Any) -> Iterator[Bar]:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, **kwargs) as progress:
        yield Bar(progress, progress.add_task(description, total=total))

"""The studio's per-app context: the workspace layout and the job manager, on ``app.state.studio``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from fastapi import Request

from facelab.studio.layout import Layout

if TYPE_CHECKING:
    from facelab.studio.events import EventBus
    from facelab.studio.jobs import JobManager


@dataclass
class StudioContext:
    layout: Layout
    token: str
    jobs: JobManager
    events: EventBus


def get_context(request: Request) -> StudioContext:
    """FastAPI dependency: ``ctx: Annotated[StudioContext, Depends(get_context)]``."""
    ctx: StudioContext = request.app.state.studio
    return ctx


T = TypeVar("T")
_services = threading.Lock()


def app_service(request: Request, name: str, make: Callable[[StudioContext], T]) -> T:
    """A page's service (the tuner, the face fixer, ...): one per app, made on first use from the context
    and kept on ``app.state.<name>`` (the app's shutdown closes what needs closing)."""
    state = request.app.state
    with _services:
        service: T | None = getattr(state, name, None)
        if service is None:
            service = make(state.studio)
            setattr(state, name, service)
        return service

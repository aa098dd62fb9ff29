"""The studio's per-app context: the workspace layout and the job manager, on ``app.state.studio``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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

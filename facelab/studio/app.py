"""The studio's FastAPI app: pages, static files, the three page APIs, server-sent events, security."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from facelab.core.errors import FacelabError, printable, validation_message
from facelab.studio.context import StudioContext, get_context
from facelab.studio.events import EventBus
from facelab.studio.jobs import JobBusy, JobManager, JobRefused
from facelab.studio.layout import Layout
from facelab.studio.pages import PAGES
from facelab.studio.routes import faces, training, tuner, workspace, xseg
from facelab.studio.security import SecurityMiddleware
from facelab.studio.training import start_watcher

STATIC = Path(__file__).resolve().parent / "static"


def create_app(layout: Layout, token: str, *, host_allowed: Sequence[str] = ()) -> FastAPI:
    """The studio app over ``layout``; ``token`` guards every request; ``host_allowed``: extra Host names."""
    events = EventBus()
    jobs = JobManager(layout, events)
    ctx = StudioContext(layout=layout, token=token, jobs=jobs, events=events)

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        jobs.open()
        watcher = start_watcher(ctx)  # publishes `training` events when the model folder changes
        try:
            yield
        finally:
            watcher.cancel()
            events.close()
            jobs.close()
            tuner = getattr(app_.state, "tuner", None)  # the merge tuner's background warm-up, if it started
            if tuner is not None:
                tuner.close()

    app = FastAPI(title="facelab studio", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.studio = ctx
    app.add_middleware(SecurityMiddleware, token=token, host_allowed=tuple(host_allowed))
    app.include_router(workspace.router)
    app.include_router(training.router)
    app.include_router(tuner.router)
    app.include_router(xseg.router)
    app.include_router(faces.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(JobBusy)
    @app.exception_handler(JobRefused)
    async def busy(_: Request, exc: FacelabError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(FacelabError)
    async def user_error(_: Request, exc: FacelabError) -> JSONResponse:
        return JSONResponse({"detail": printable(" ".join(str(exc).split()), 400)}, status_code=400)

    @app.exception_handler(ValidationError)
    async def option_error(_: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": f"invalid option {validation_message(exc)}"}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        msg = f"{loc}: {first.get('msg', 'invalid')}" if loc else str(first.get("msg", "invalid"))
        return JSONResponse({"detail": printable(msg, 300)}, status_code=422)

    def page(name: str) -> FileResponse | JSONResponse:
        if not (STATIC / name).is_file():
            return JSONResponse({"detail": f"page {name} is not part of this build"}, status_code=404)
        return FileResponse(STATIC / name, headers={"cache-control": "no-store"})

    for route, name in PAGES.items():
        app.add_api_route(route, lambda name=name: page(name), methods=["GET"], include_in_schema=False)

    @app.get("/api/events")
    async def sse(request: Request, ctx: Annotated[StudioContext, Depends(get_context)],
                  topics: Annotated[str, Query(max_length=200)] = "job") -> StreamingResponse:
        """Server-sent events: one ``data: {"topic", "data"}`` per event of the comma-separated topics."""
        wanted = [t.strip() for t in topics.split(",") if t.strip()]
        job = ctx.jobs.last()
        first = [{"topic": "job", "data": {**job.to_json(), "line": None}}] if job is not None and "job" in wanted \
            else []

        async def stream() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            async for event in ctx.events.subscribe(wanted, first):
                if await request.is_disconnected():
                    return
                yield ": keepalive\n\n" if event is None else f"data: {json.dumps(event, default=str)}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    return app

"""Studio routes: the workspace page API (under /api/workspace).

    GET  /api/workspace/status        what the workspace holds, each step's state, the next step, the job
    POST /api/workspace/steps/{step}  start a step as the background job (JSON body: the step's options)
    POST /api/workspace/stop          stop the running job (SIGINT, like Ctrl+C: training saves)
    GET  /api/workspace/jobs          the job history (newest first)
    GET  /api/workspace/jobs/{id}/log the tail of a job's log (text)
    GET  /api/workspace/file?path=REL a file of the workspace (previews, the result video), confined to it
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.responses import FileResponse, PlainTextResponse

from facelab.studio.context import StudioContext, get_context
from facelab.studio.security import confine
from facelab.studio.workspace import STEPS, step_command, workspace_status

router = APIRouter(prefix="/api/workspace")
Ctx = Annotated[StudioContext, Depends(get_context)]


def _job_json(ctx: StudioContext) -> dict[str, Any] | None:
    job = ctx.jobs.last()
    return None if job is None else job.to_json()


@router.get("/status")
def status(ctx: Ctx) -> dict[str, Any]:
    out = workspace_status(ctx.layout)
    out["job"] = _job_json(ctx)
    out["read_only"] = ctx.jobs.read_only
    out["lock_message"] = ctx.jobs.lock_message()
    return out


@router.post("/steps/{step}")
def start_step(step: str, ctx: Ctx, body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    if step not in STEPS:
        raise HTTPException(404, f"unknown step {step!r}; steps: {', '.join(STEPS)}")
    args = step_command(ctx.layout, step, body or {})
    return ctx.jobs.start(step, args).to_json()


@router.post("/stop")
def stop(ctx: Ctx) -> dict[str, Any]:
    job = ctx.jobs.stop()
    return {"stopping": job is not None, "job": None if job is None else job.to_json()}


@router.get("/jobs")
def jobs(ctx: Ctx) -> list[dict[str, Any]]:
    return [j.to_json() for j in ctx.jobs.history()]


@router.get("/jobs/{job_id}/log", response_class=PlainTextResponse)
def job_log(job_id: str, ctx: Ctx, tail: Annotated[int, Query(ge=1, le=100_000)] = 400) -> str:
    path = ctx.jobs.log_path(job_id)
    if path is None:
        raise HTTPException(404, f"no log for job {job_id!r}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-tail:]) + "\n"


@router.get("/file")
def workspace_file(ctx: Ctx, path: Annotated[str, Query(max_length=1000)]) -> FileResponse:
    """A file inside the workspace (403 outside it: '..', absolute paths, symlinks leading out; 404 missing)."""
    found = confine(ctx.layout, path)
    if not found.is_file():
        raise HTTPException(404, f"not a file: {path}")
    return FileResponse(found, headers={"cache-control": "no-store"})

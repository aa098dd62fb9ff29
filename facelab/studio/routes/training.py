"""Studio routes: the training page API (under /api/training).

    GET  status[?target=N]             iterations, newest losses, rates, ETA, the live run, preview, backups
    GET  metrics[?start=&end=&points=] the loss series in an iteration range, downsampled, with resume marks
    GET  preview[?path=]               the newest preview grid (or another PNG under model/previews)
    GET  options / PUT options         the options for the next start ({"options": {name: value}})
    POST start {"iterations", "minutes"}, POST stop, POST backup
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.responses import FileResponse

from facelab.core.errors import InputError
from facelab.studio.context import StudioContext, get_context
from facelab.studio.jobs import JobBusy, JobRefused
from facelab.studio.security import confine
from facelab.studio.training import MAX_POINTS, training_for

router = APIRouter(prefix="/api/training")

Ctx = Annotated[StudioContext, Depends(get_context)]


def _bad(exc: Exception, code: int = 422) -> HTTPException:
    return HTTPException(code, detail=" ".join(str(exc).split()))


def _job(ctx: StudioContext) -> dict[str, Any] | None:
    job = ctx.jobs.current()
    if job is None or job.kind != "train":
        return None
    return {"id": job.id, "state": job.state}


@router.get("/status")
def status(ctx: Ctx, target: Annotated[int | None, Query(ge=0)] = None) -> dict[str, Any]:
    try:
        out = training_for(ctx.layout).status(target)
    except InputError as exc:
        raise _bad(exc, 400) from None
    out["job"] = _job(ctx)
    return out


@router.get("/metrics")
def metrics(ctx: Ctx, start: Annotated[int | None, Query()] = None, end: Annotated[int | None, Query()] = None,
            points: Annotated[int, Query(ge=16, le=MAX_POINTS)] = 1500) -> dict[str, Any]:
    if start is not None and end is not None and end < start:
        raise HTTPException(400, detail="end is before start")
    return training_for(ctx.layout).series(start, end, points)


@router.get("/preview")
def preview(ctx: Ctx, path: str = "model/previews/latest.png") -> FileResponse:
    file = confine(ctx.layout, path)
    model_previews = (ctx.layout.model / "previews").resolve()
    if file.suffix.lower() != ".png" or file.parent != model_previews:
        raise HTTPException(403, detail="only the model's preview images are served here")
    if not file.is_file():
        raise HTTPException(404, detail="no preview yet")
    return FileResponse(file, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/options")
def get_options(ctx: Ctx) -> dict[str, Any]:
    try:
        return training_for(ctx.layout).options()
    except InputError as exc:
        raise _bad(exc, 400) from None


@router.put("/options")
def put_options(ctx: Ctx, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    values = body.get("options")
    if not isinstance(values, dict):
        raise HTTPException(422, detail='expected {"options": {name: value, ...}}')
    try:  # a running trainer read its options when it started: a change applies to the next start
        return training_for(ctx.layout).set_options(values)
    except InputError as exc:
        raise _bad(exc) from None


def _positive(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
        raise HTTPException(422, detail=f"{key} must be a {'whole ' if kind is int else ''}number")
    if value <= 0:
        raise HTTPException(422, detail=f"{key} must be greater than 0")
    return kind(value)


@router.post("/start")
def start(ctx: Ctx, body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    """Start (or resume: the CLI resumes an existing model) a training run as the workspace's job."""
    body = body or {}
    iterations = _positive(body, "iterations", int)
    minutes = _positive(body, "minutes", float)
    view = training_for(ctx.layout)
    run = view.status()["run"]
    if run is not None:
        raise HTTPException(409, detail=f"a training run is already going on this model (pid {run['pid']})")
    if not ctx.layout.src_aligned.is_dir() or not ctx.layout.dst_aligned.is_dir():
        raise HTTPException(409, detail="extract the src and dst faces first (src/aligned, dst/aligned)")
    args = view.start_args(iterations, minutes)
    try:
        job = ctx.jobs.start("train", args)
    except (JobBusy, JobRefused) as exc:
        raise _bad(exc, 409) from None
    return {"job": {"id": job.id, "state": job.state}, "args": args}


@router.post("/stop")
def stop(ctx: Ctx) -> dict[str, Any]:
    """Stop the run (SIGINT: the trainer saves a checkpoint, then exits), whoever started it."""
    if _job(ctx) is not None:
        job = ctx.jobs.stop()
        return {"stopped": "job", "job": None if job is None else {"id": job.id, "state": job.state}}
    run = training_for(ctx.layout).stop_external()
    if run is None:
        raise HTTPException(409, detail="no training run is going on")
    return {"stopped": "process", "pid": run["pid"]}


@router.post("/backup")
def make_backup(ctx: Ctx) -> dict[str, Any]:
    try:
        return {"backup": training_for(ctx.layout).make_backup()}
    except InputError as exc:
        raise _bad(exc, 409) from None

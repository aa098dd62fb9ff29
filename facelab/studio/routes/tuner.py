"""Studio routes: the merge tuner page API (under /api/tuner).

    GET  /api/tuner/frames                  the dst frames in order ({count, stems, faces, without_face, warmup});
                                            starts the background warm-up (model batches predicted ahead)
    GET  /api/tuner/warmup                  the warm-up's progress ({state, cached, total, ...}: batches cached)
    GET  /api/tuner/schema                  the merge options' JSON schema with the per-frame / per-run split
    GET  /api/tuner/frames/{i}/original     frame i as extracted
    GET  /api/tuner/frames/{i}/merged       frame i merged: query = options (any MergeOptions key; missing ones
                                            come from the saved session for that frame), fmt=jpg|png,
                                            client + seq (a newer seq of the same client cancels this one: 409)
    GET  /api/tuner/session                 the saved session ({exists, session, error}: error when unreadable)
    PUT  /api/tuner/session                 save {session, overwrite} atomically (never over an unreadable file
                                            without overwrite: 409)
    POST /api/tuner/session/apply           {session, scope: frame|range|all, options, frame | first + last}
                                            -> {session}: the draft with the options applied (nothing written)
    POST /api/tuner/merge                   start the batch merge ({"video": true}: and the video) as the job

Bad input (an option out of range, a frame past the end, an unreadable session) is a 400/404/422 with a
one-line ``detail``; nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from facelab.core.errors import InputError
from facelab.merge.options import MergeOptions
from facelab.merge.session import MergeSession, parse_session
from facelab.studio.context import StudioContext, app_service, get_context
from facelab.studio.security import confine
from facelab.studio.tuner.latest import Superseded
from facelab.studio.tuner.render import FORMATS
from facelab.studio.tuner.schema import options_schema
from facelab.studio.tuner.service import Tuner
from facelab.studio.tuner.sessions import SessionFileInvalid, apply
from facelab.studio.workspace import relative_args, step_command

router = APIRouter(prefix="/api/tuner")
Ctx = Annotated[StudioContext, Depends(get_context)]
_RESERVED = frozenset({"fmt", "client", "seq"})


def get_tuner(request: Request) -> Tuner:
    """The app's Tuner (made on first use; it holds the model and the prediction cache)."""
    return app_service(request, "tuner", lambda ctx: Tuner(ctx.layout))


TunerDep = Annotated[Tuner, Depends(get_tuner)]


def _index(tuner: Tuner, i: int) -> Path:
    try:
        return tuner.frame_path(i)
    except InputError as exc:
        if "past the end" in str(exc):
            raise HTTPException(404, str(exc)) from None
        raise


def _paths_from_browser(ctx: StudioContext, tuner: Tuner, options: dict[str, Any]) -> dict[str, Any]:
    """Options with the XSeg model folder confined to the workspace (the value already in the saved session
    file is kept as it is)."""
    value = options.get("xseg_model")
    if value in (None, ""):
        return options | ({"xseg_model": None} if "xseg_model" in options else {})
    saved = tuner.sessions.read_or_none()
    if saved is not None and saved.options.xseg_model is not None and str(saved.options.xseg_model) == value:
        return options
    return options | {"xseg_model": str(confine(ctx.layout, str(value)))}


@router.get("/frames")
def frames(tuner: TunerDep) -> dict[str, Any]:
    out = tuner.frames()
    tuner.warmup.start()  # the page opened: predict the batches ahead in the background
    return out | {"warmup": tuner.warmup_status()}


@router.get("/warmup")
def warmup(tuner: TunerDep) -> dict[str, Any]:
    """Progress of the background warm-up; a poll also wakes it (new weights or frames start it again)."""
    if tuner.warmup.state not in ("idle",):
        tuner.warmup.poke()
    return tuner.warmup_status()


@router.get("/schema")
def schema() -> dict[str, Any]:
    return options_schema()


@router.get("/frames/{i}/original")
def original(i: int, tuner: TunerDep) -> FileResponse:
    return FileResponse(_index(tuner, i), headers={"cache-control": "no-store"})


@router.get("/frames/{i}/merged")
def merged(i: int, request: Request, ctx: Ctx, tuner: TunerDep) -> Response:
    q = request.query_params
    fmt = q.get("fmt", "jpg")
    if fmt not in FORMATS:
        raise InputError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    try:
        seq = int(q.get("seq", "0"))
    except ValueError:
        raise InputError("seq must be an integer") from None
    given = {k: v for k, v in q.items() if k not in _RESERVED}
    unknown = sorted(set(given) - set(MergeOptions.model_fields))
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r}")
    stem = _index(tuner, i).stem
    base: dict[str, Any] = {}
    if set(MergeOptions.model_fields) - set(given) - {"workers"}:  # some options come from the saved session
        saved = tuner.sessions.read()
        base = (saved or MergeSession()).options_for(stem).model_dump()
    opts = MergeOptions.model_validate(base | _paths_from_browser(ctx, tuner, given))  # 422 when out of range
    try:
        ticket = tuner.latest.begin(q.get("client", ""), seq) if "client" in q else None
        out = tuner.render(i, opts, fmt, ticket.check if ticket is not None else lambda: None)
    except Superseded as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)
    return Response(out.data, media_type="image/png" if fmt == "png" else "image/jpeg", headers={
        "cache-control": "no-store", "x-frame-stem": out.stem, "x-faces": str(out.faces),
        "x-predict-ms": f"{out.predict_ms:.1f}", "x-render-ms": f"{out.total_ms:.1f}"})


@router.get("/session")
def get_session(tuner: TunerDep, ctx: Ctx) -> dict[str, Any]:
    """The saved session; an unreadable file gives ``error`` (its one-line message) and the defaults."""
    try:
        saved = tuner.sessions.read()
    except InputError as exc:
        message = " ".join(str(exc).replace(f"{ctx.layout.root}/", "").split())
        return {"exists": True, "error": message, "session": MergeSession().to_json()}
    return {"exists": saved is not None, "error": None, "session": (saved or MergeSession()).to_json()}


class SaveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session: dict[str, Any]
    overwrite: bool = False


@router.put("/session")
def put_session(req: SaveRequest, tuner: TunerDep, ctx: Ctx) -> dict[str, Any]:
    draft = parse_session(req.session)
    _check_xseg(ctx, tuner, draft)
    try:
        saved = tuner.sessions.save(draft.to_json(), overwrite=req.overwrite)
    except SessionFileInvalid as exc:
        raise HTTPException(409, str(exc)) from None
    return {"saved": ctx.layout.session.name, "session": saved.to_json()}


def _check_xseg(ctx: StudioContext, tuner: TunerDep, draft: MergeSession) -> None:
    if draft.options.xseg_model is not None:
        _paths_from_browser(ctx, tuner, {"xseg_model": str(draft.options.xseg_model)})


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session: dict[str, Any]
    scope: Literal["frame", "range", "all"]
    options: dict[str, Any]
    frame: str | None = Field(None, max_length=200)
    first: str | None = Field(None, max_length=200)
    last: str | None = Field(None, max_length=200)


@router.post("/session/apply")
def apply_options(req: ApplyRequest, tuner: TunerDep, ctx: Ctx) -> dict[str, Any]:
    draft = parse_session(req.session)
    options = _paths_from_browser(ctx, tuner, {str(k).replace("-", "_"): v for k, v in req.options.items()})
    stems = tuner.frames()["stems"]
    out = apply(draft, req.scope, options, stems, frame=req.frame, first=req.first, last=req.last)
    return {"session": out.to_json()}


@router.post("/merge")
def start_merge(ctx: Ctx, tuner: TunerDep, body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    """The batch merge (and with {"video": true} the video) of the saved session, as the workspace's job."""
    video = bool((body or {}).get("video", False))
    tuner.sessions.read()  # an unreadable session file: a clear 400 now, not a failed job
    step = "video" if video else "merge"
    job = ctx.jobs.start(step, step_command(ctx.layout, step, {}))
    return {**job.to_json(), "shown": "facelab " + " ".join(relative_args(ctx.layout, job.args))}

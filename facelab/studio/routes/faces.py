"""Studio routes: the face fixing page API (under /api/faces).

    GET    /api/faces/frames                     {count, stems, faces (per frame), no_face, suspicious, options}
    GET    /api/faces/frames/{i}                 frame i's faces (box, 68 landmarks in the frame, score, files)
    GET    /api/faces/frames/{i}/image           frame i's image
    GET    /api/faces/aligned?path=dst/aligned/F an aligned face file (confined to the workspace's dst/aligned)
    POST   /api/faces/frames/{i}/fit             {box} -> the landmark model's points in the box (nothing written)
    POST   /api/faces/frames/{i}/track           {source, face_index} -> that face followed into frame i
    POST   /api/faces/frames/{i}/save            {face_index|null, box, landmarks|null, detector?, score?,
                                                 landmarker?} -> writes the face through facelab.extract.manual
    DELETE /api/faces/frames/{i}/faces/{k}       removes face k of frame i (a false detection)

Bad input (a box outside the frame, a frame past the end, a face that is not there) is a 400/404/422 with a
one-line ``detail``; nothing is written. Changes are refused (409) while a dst extraction job runs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from facelab.extract.manual import MANUAL
from facelab.face.detect import DETECTORS
from facelab.studio.context import StudioContext, app_service, get_context
from facelab.studio.face_fix.service import FaceFixer, FramePastEnd
from facelab.studio.security import confine

router = APIRouter(prefix="/api/faces")
Ctx = Annotated[StudioContext, Depends(get_context)]
_NAME = re.compile(r"^[a-z0-9_+\-]{1,40}$")


def get_fixer(request: Request) -> FaceFixer:
    return app_service(request, "face_fixer", lambda ctx: FaceFixer(ctx.layout))


Fixer = Annotated[FaceFixer, Depends(get_fixer)]
Box = tuple[float, float, float, float]


def _past_end(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except FramePastEnd as exc:
        raise HTTPException(404, str(exc)) from None


def _no_extraction(ctx: StudioContext) -> None:
    job = ctx.jobs.current()
    if job is not None and job.state == "running" and job.kind == "extract_dst":
        raise HTTPException(409, "the dst extraction is running: wait for it (or stop it) before fixing faces")


@router.get("/frames")
def frames(fixer: Fixer) -> dict[str, Any]:
    return fixer.overview()


@router.get("/frames/{i}")
def frame(i: int, fixer: Fixer) -> dict[str, Any]:
    out: dict[str, Any] = _past_end(fixer.frame, i)
    return out


@router.get("/frames/{i}/image")
def frame_image(i: int, fixer: Fixer) -> FileResponse:
    return FileResponse(_past_end(fixer.frame_path, i), headers={"cache-control": "no-store"})


@router.get("/aligned")
def aligned(ctx: Ctx, path: Annotated[str, Query(max_length=500)]) -> FileResponse:
    """An aligned dst face (the page's thumbnails); the path is confined to the workspace's dst/aligned."""
    resolved = confine(ctx.layout, path)
    if not resolved.is_file() or resolved.parent != ctx.layout.dst_aligned.resolve():
        raise HTTPException(403, "path refused: only the dst faces (dst/aligned/...) are served here")
    return FileResponse(resolved, headers={"cache-control": "no-store"})


class FitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    box: Box


class TrackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: int
    face_index: int = Field(0, ge=0)


class SaveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    face_index: int | None = Field(None, ge=0)
    box: Box
    landmarks: list[tuple[float, float]] | None = Field(None, max_length=68)
    detector: str | None = None
    score: float | None = None
    landmarker: str | None = None

    @field_validator("detector")
    @classmethod
    def _detector(cls, value: str | None) -> str | None:
        if value is not None and value != MANUAL and value not in DETECTORS.names():
            raise ValueError(f"unknown detector {value!r}")
        return value

    @field_validator("landmarker")
    @classmethod
    def _landmarker(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError("a landmark model name is lowercase letters, digits, '_', '+' or '-'")
        return value


@router.post("/frames/{i}/fit")
def fit(i: int, req: FitRequest, fixer: Fixer) -> dict[str, Any]:
    out: dict[str, Any] = _past_end(fixer.fit, i, req.box)
    return out


@router.post("/frames/{i}/track")
def track(i: int, req: TrackRequest, fixer: Fixer) -> dict[str, Any]:
    out: dict[str, Any] = _past_end(fixer.track, i, req.source, req.face_index)
    return out


@router.post("/frames/{i}/save")
def save(i: int, req: SaveRequest, fixer: Fixer, ctx: Ctx) -> dict[str, Any]:
    _no_extraction(ctx)
    out: dict[str, Any] = _past_end(fixer.save, i, req.face_index, req.box, req.landmarks, req.detector, req.score,
                                    req.landmarker)
    ctx.events.publish("faces", {"frame": i, "stem": out["stem"], "faces": len(out["faces"])})
    return out


@router.delete("/frames/{i}/faces/{k}")
def delete(i: int, k: int, fixer: Fixer, ctx: Ctx) -> dict[str, Any]:
    _no_extraction(ctx)
    out: dict[str, Any] = _past_end(fixer.delete, i, k)
    ctx.events.publish("faces", {"frame": i, "stem": out["stem"], "faces": len(out["faces"])})
    return out

"""Studio routes: the XSeg editor's API (under /api/xseg). Every path from the page goes through ``confine``;
a face is named by its file name, which must be one of the faceset's faces.

    GET  /facesets                         the workspace's facesets (folders, read-only packs) and XSeg models
    GET  /faces?set=REL&filter=&sort=&desc= the faces of a faceset, filtered and sorted, with counts
    GET  /face?set=REL&name=N              one face's record: size, polygons, stored mask?, source frame
    GET  /image?set=REL&name=N[&thumb=1]   the aligned face's pixels (a thumbnail: JPEG, 96 px)
    GET  /mask?set=REL&name=N&source=stored|model[&model=REL]  the stored or predicted mask (8-bit PNG)
    PUT  /polygons {set, name, polygons}   save the polygons into the face file's record (atomic)
    POST /seed {set, name, model}          polygons traced from the model's predicted mask (not saved)
    POST /copy {set, name, from}           another face's polygons mapped into this face (not saved)
    GET  /schema                           XSegOptions' JSON schema and its fixed fields
    GET  /model?model=REL                  a model folder's state (iteration, loss, options, preview)
    GET  /preview?model=REL                its training preview (previews/latest.png)
    POST /train {faces: [REL], model, iterations?, minutes?, options}   `facelab xseg train` as the job
    POST /apply {set, model}               `facelab xseg apply` as the job
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response

from facelab.core.errors import InputError
from facelab.faceset.record import read_face
from facelab.faceset.xseg_mask import decode_mask
from facelab.media.metadata import detect_format
from facelab.studio.context import StudioContext, get_context
from facelab.studio.security import confine
from facelab.studio.xseg_editor import models
from facelab.studio.xseg_editor.facesets import (
    PACK_NOTE,
    Faceset,
    FacesetCache,
    Filter,
    Sort,
    face_summary,
    find_facesets,
    list_faces,
    save_polygons,
)
from facelab.studio.xseg_editor.polygons import map_polygons, parse_polygons, polygons_json, seed_from_mask

router = APIRouter(prefix="/api/xseg")
Ctx = Annotated[StudioContext, Depends(get_context)]
SetQ = Annotated[str, Query(alias="set", max_length=1000)]
NameQ = Annotated[str, Query(max_length=255)]
ModelQ = Annotated[str, Query(max_length=1000)]
THUMB = 96


def _state(request: Request) -> tuple[FacesetCache, models.ModelCache]:
    st = request.app.state
    if getattr(st, "xseg_facesets", None) is None:
        st.xseg_facesets, st.xseg_models = FacesetCache(), models.ModelCache()
    return st.xseg_facesets, st.xseg_models


def _faceset(request: Request, ctx: StudioContext, rel: str) -> Faceset:
    path = confine(ctx.layout, rel)
    if path == ctx.layout.root.resolve():
        raise HTTPException(400, "choose a faceset folder inside the workspace, not the workspace itself")
    return _state(request)[0].open(path)


def _face(fs: Faceset, name: str) -> str:
    if name not in fs.records:
        raise HTTPException(404, f"no face named {name!r} in this faceset")
    return name


def _model_dir(ctx: StudioContext, rel: str, must_exist: bool = True) -> Path:
    path = confine(ctx.layout, rel or models.DEFAULT_MODEL, must_exist=must_exist)
    if path == ctx.layout.root.resolve():
        raise HTTPException(400, "the XSeg model folder must be a folder inside the workspace (e.g. xseg)")
    return path


def _face_image(fs: Faceset, name: str) -> np.ndarray[Any, Any]:
    if fs.pack is None:
        return read_face(fs.file(name))[0]
    data = fs.read_bytes(name)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError("cannot decode the face's pixels", fs.path / name)
    return np.asarray(img, dtype=np.uint8)


@router.get("/facesets")
def facesets(ctx: Ctx) -> dict[str, Any]:
    root = ctx.layout.root.resolve()
    return {"facesets": find_facesets(root), "models": models.find_models(root), "default_model": models.DEFAULT_MODEL,
            "pack_note": PACK_NOTE, "read_only": ctx.jobs.read_only}


@router.get("/faces")
def faces(request: Request, ctx: Ctx, set_: SetQ, filter_: Annotated[Filter, Query(alias="filter")] = "all",
          sort: Sort = "name", desc: bool = False) -> dict[str, Any]:
    fs = _faceset(request, ctx, set_)
    records = fs.records.values()
    return {
        "set": set_, "read_only": fs.read_only, "note": PACK_NOTE if fs.read_only else "",
        "total": len(fs.names), "labelled": sum(bool(r.xseg_polygons) for r in records),
        "masked": sum(r.xseg_mask is not None for r in records),
        "invalid": [{"name": n, "reason": r} for n, r in fs.invalid],
        "faces": list_faces(fs, filter_, sort, desc),
    }


@router.get("/face")
def face(request: Request, ctx: Ctx, set_: SetQ, name: NameQ) -> dict[str, Any]:
    fs = _faceset(request, ctx, set_)
    rec = fs.record(_face(fs, name))
    return {**face_summary(name, rec), "size": rec.size, "face_type": rec.face_type, "read_only": fs.read_only,
            "polygons": polygons_json(rec.xseg_polygons)}


@router.get("/image")
def image(request: Request, ctx: Ctx, set_: SetQ, name: NameQ, thumb: bool = False) -> Response:
    fs = _faceset(request, ctx, set_)
    data = fs.read_bytes(_face(fs, name))
    headers = {"cache-control": "no-store"}
    if thumb:
        img = _face_image(fs, name)
        small = cv2.resize(img, (THUMB, THUMB), interpolation=cv2.INTER_AREA) if img.shape[0] > THUMB else img
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise InputError("cannot encode the thumbnail")
        return Response(buf.tobytes(), media_type="image/jpeg", headers=headers)
    kind = detect_format(data)
    return Response(data, media_type="image/png" if kind == "png" else "image/jpeg", headers=headers)


@router.get("/mask")
def mask(request: Request, ctx: Ctx, set_: SetQ, name: NameQ,
         source: Literal["stored", "model"] = "stored", model: ModelQ = "") -> Response:
    fs = _faceset(request, ctx, set_)
    rec = fs.record(_face(fs, name))
    if source == "stored":
        m = decode_mask(rec, fs.path / name)
        if m is None:
            raise HTTPException(404, "this face has no stored XSeg mask (apply a model to the faceset first)")
        if m.shape != (rec.size, rec.size):
            m = np.asarray(cv2.resize(m, (rec.size, rec.size), interpolation=cv2.INTER_LINEAR), np.float32)
    else:
        xseg = _state(request)[1].get(_model_dir(ctx, model))
        m = xseg.predict([_face_image(fs, name)], face_types=[rec.face_type])[0]
    png = np.clip(np.asarray(m, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", png)
    if not ok:
        raise InputError("cannot encode the mask")
    return Response(buf.tobytes(), media_type="image/png", headers={"cache-control": "no-store"})


def _body_str(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise HTTPException(422, f"{key}: a string is required")
    return value


@router.put("/polygons")
def put_polygons(request: Request, ctx: Ctx, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    fs = _faceset(request, ctx, _body_str(body, "set"))
    name = _face(fs, _body_str(body, "name"))
    if fs.read_only:
        raise HTTPException(400, PACK_NOTE)
    polys = parse_polygons(body.get("polygons"), fs.record(name).size)
    saved = save_polygons(fs, name, polys)
    return {**face_summary(name, saved), "size": saved.size, "polygons": polygons_json(saved.xseg_polygons),
            "saved": True}


@router.post("/seed")
def seed(request: Request, ctx: Ctx, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    fs = _faceset(request, ctx, _body_str(body, "set"))
    name = _face(fs, _body_str(body, "name"))
    rec = fs.record(name)
    xseg = _state(request)[1].get(_model_dir(ctx, _body_str(body, "model", models.DEFAULT_MODEL)))
    predicted = xseg.predict([_face_image(fs, name)], face_types=[rec.face_type])[0]
    result = seed_from_mask(predicted)
    return {"polygons": polygons_json(result.polygons), "iou": round(result.iou, 4),
            "epsilon": round(result.epsilon, 3), "points": sum(len(p.points) for p in result.polygons),
            "model_iteration": xseg.iteration}


@router.post("/copy")
def copy(request: Request, ctx: Ctx, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    fs = _faceset(request, ctx, _body_str(body, "set"))
    name, other = _face(fs, _body_str(body, "name")), _face(fs, _body_str(body, "from"))
    src, dst = fs.record(other), fs.record(name)
    # the page may send the other face's unsaved polygons; else the saved ones
    polys = parse_polygons(body["polygons"], src.size) if "polygons" in body else list(src.xseg_polygons)
    if not polys:
        raise HTTPException(400, f"{other} has no polygons to copy")
    return {"polygons": polygons_json(map_polygons(polys, src, dst)), "from": other}


@router.get("/schema")
def options_schema() -> dict[str, Any]:
    return models.schema()


@router.get("/model")
def model_state(ctx: Ctx, model: ModelQ = models.DEFAULT_MODEL) -> dict[str, Any]:
    folder = _model_dir(ctx, model, must_exist=False)
    out = models.model_status(folder)
    out["model"] = folder.relative_to(ctx.layout.root.resolve()).as_posix()
    return out


@router.get("/preview")
def preview(ctx: Ctx, model: ModelQ = models.DEFAULT_MODEL) -> FileResponse:
    folder = _model_dir(ctx, model)
    path = confine(ctx.layout, (folder / "previews" / "latest.png").relative_to(ctx.layout.root.resolve()).as_posix())
    return FileResponse(path, media_type="image/png", headers={"cache-control": "no-store"})


def _number(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise HTTPException(422, f"{key}: a number is required") from None


@router.post("/train")
def train(ctx: Ctx, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    sets = body.get("faces")
    if not isinstance(sets, list) or not sets or not all(isinstance(s, str) for s in sets):
        raise HTTPException(422, "faces: a list of faceset folders is required")
    folders = [confine(ctx.layout, s) for s in sets]
    for rel, folder in zip(sets, folders, strict=True):
        if not folder.is_dir():
            raise HTTPException(400, f"{rel}: XSeg trains on faceset folders (a pack cannot hold labels)")
    model = _model_dir(ctx, _body_str(body, "model", models.DEFAULT_MODEL), must_exist=False)
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise HTTPException(422, "options: an object of XSeg options is required")
    args = models.train_args(folders, model, _number(body, "iterations", int), _number(body, "minutes", float),
                             options)
    return ctx.jobs.start("xseg-train", args).to_json()


@router.post("/apply")
def apply(ctx: Ctx, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    rel = _body_str(body, "set")
    folder = confine(ctx.layout, rel)
    if not folder.is_dir():
        raise HTTPException(400, PACK_NOTE)
    model = _model_dir(ctx, _body_str(body, "model", models.DEFAULT_MODEL))
    return ctx.jobs.start("xseg-apply", models.apply_args(folder, model)).to_json()

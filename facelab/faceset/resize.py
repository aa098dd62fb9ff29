"""`faceset resize`: a faceset at another size and/or a smaller face type, re-warped from the stored faces.

The stored aligned image was warped from its frame by ``image_to_face``; a face type is a square window
in canonical units (see ``facelab.face.align``), so going to another size or a smaller face type is one
scale-and-shift ``M`` of the stored pixels (``convert_transform`` of the identity). The new image is the
stored one warped by ``M`` (first shrunk with INTER_AREA when ``M`` scales down, so nothing aliases); the
record follows: ``image_to_face`` becomes ``M`` after it, the landmarks and XSeg polygons are mapped by
``M``, an XSeg mask is re-warped, the sharpness is measured again; frame-level fields are unchanged.
A larger face type would need frame pixels the stored face does not have, so it is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facelab.core.atomic import remove_stale_temps, write_bytes_atomic, write_json_atomic
from facelab.core.choices import FaceType
from facelab.core.errors import InputError, MetadataError
from facelab.core.geometry import affine_scale, invert_affine, transform_points
from facelab.core.lock import Want, locked
from facelab.core.types import U8, FloatArray
from facelab.face.align import FACE_TYPE_ORDER, check_size, compose, convert_transform
from facelab.face.masks import face_hull_mask
from facelab.face.quality import sharpness
from facelab.faceset.folder import list_face_files
from facelab.faceset.pack import is_pack_path, write_pack
from facelab.faceset.record import FaceRecord, XSegPolygon, record_from_bytes
from facelab.faceset.store import open_store
from facelab.media.metadata import embed_json

_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def resize_matrix(from_type: FaceType, from_size: int, to_type: FaceType, to_size: int) -> FloatArray:
    """2x3 affine from the stored face's pixels to the resized face's pixels."""
    if FACE_TYPE_ORDER.index(to_type) > FACE_TYPE_ORDER.index(from_type):
        raise InputError(
            f"cannot make {to_type} faces from {from_type} faces: a larger face type needs the frames "
            "(extract again); resize can only keep the face type or pick a smaller one"
        )
    check_size(to_size)
    return convert_transform(_IDENTITY, from_type, from_size, to_type, to_size)


def _rescale(from_size: int, to_size: int) -> FloatArray:
    k = to_size / from_size  # cv2.resize's pixel-centre mapping
    return np.array([[k, 0.0, 0.5 * k - 0.5], [0.0, k, 0.5 * k - 0.5]])


def warp_resized(image: U8, mat: FloatArray, size: int) -> U8:
    """``image`` (square) seen through ``mat`` at ``size`` x ``size``: area-shrunk first when ``mat`` shrinks."""
    src = image
    scale = affine_scale(mat)
    if scale < 1.0:
        n = image.shape[0]
        k = max(8, round(n * scale))
        src = np.asarray(cv2.resize(image, (k, k), interpolation=cv2.INTER_AREA))
        mat = compose(mat, invert_affine(_rescale(n, k)))
    out = cv2.warpAffine(src, mat, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=image.dtype)


def _resize_mask(encoded: str, from_size: int, mat: FloatArray, size: int, path: Path) -> str:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise MetadataError("xseg_mask is not valid base64", path) from None
    mask = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if mask is None or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise MetadataError("xseg_mask is not a square grayscale image", path)
    to_stored = invert_affine(_rescale(from_size, mask.shape[0]))  # mask px -> stored px
    warped = warp_resized(np.asarray(mask, dtype=np.uint8), compose(mat, to_stored), size)
    ok, png = cv2.imencode(".png", warped)
    if not ok:
        raise MetadataError("cannot encode the resized xseg_mask", path)
    return base64.b64encode(png.tobytes()).decode("ascii")


def resize_record(record: FaceRecord, mat: FloatArray, to_type: FaceType, size: int,
                  image_rgb: U8 | None, path: Path) -> FaceRecord:
    """``record`` for the face warped by ``mat`` (stored px -> new px); ``image_rgb``: the new pixels."""
    landmarks = transform_points(record.landmarks_array(), mat)
    polygons = [XSegPolygon(kind=p.kind, points=transform_points(np.asarray(p.points, dtype=np.float64), mat))
                for p in record.xseg_polygons]
    update: dict[str, object] = {
        "face_type": to_type,
        "size": size,
        "landmarks": landmarks,
        "image_to_face": compose(mat, record.affine()),
        "xseg_polygons": polygons,
    }
    if record.xseg_mask is not None:
        update["xseg_mask"] = _resize_mask(record.xseg_mask, record.size, mat, size, path)
    if record.sharpness is not None and image_rgb is not None:
        update["sharpness"] = sharpness(image_rgb, face_hull_mask(landmarks, (size, size), "full"))
    return FaceRecord.model_validate({**record.to_payload(), **_plain(update)})


def _plain(update: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in update.items():
        if isinstance(value, np.ndarray):
            out[key] = value.tolist()
        elif key == "xseg_polygons":
            out[key] = [p.model_dump(mode="json") for p in value]  # type: ignore[attr-defined]
        else:
            out[key] = value
    return out


def resize_face_bytes(data: bytes, name: str, path: Path, to_type: FaceType | None, size: int | None,
                      jpeg_quality: int = 95) -> tuple[bytes, FaceRecord]:
    """A face file's bytes -> the resized face file's bytes (same format, new record embedded) and record."""
    record = record_from_bytes(data, path)
    new_type: FaceType = to_type or record.face_type
    new_size = size or record.size
    mat = resize_matrix(record.face_type, record.size, new_type, new_size)
    stored = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if stored is None:
        raise MetadataError("cannot decode the image pixels", path)
    bgr = warp_resized(np.asarray(stored, dtype=np.uint8), mat, new_size)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    new_record = resize_record(record, mat, new_type, new_size, rgb, path)
    ext = Path(name).suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(".png" if ext == ".png" else ".jpg", bgr, params)
    if not ok:
        raise MetadataError("cannot encode the resized face", path)
    return embed_json(encoded.tobytes(), new_record.to_payload()), new_record


@dataclass
class ResizeResult:
    count: int = 0
    foreign: list[Path] = field(default_factory=list)
    invalid: list[tuple[Path, str]] = field(default_factory=list)


WORK_DIR = "_resize"
SETTINGS_SCHEMA = "facelab.resize"


def _resumable(out: Path, settings: dict[str, object]) -> bool:
    """Whether ``out`` is a folder an earlier resize with the same settings was writing (then the faces
    already there are kept and the others written: a killed resize resumes)."""
    path = out / WORK_DIR / "settings.json"
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (isinstance(old, dict) and old.get("schema") == SETTINGS_SCHEMA and old.get("version") == 1
            and {k: old.get(k) for k in settings} == settings)


def _resize_wants(arguments: Mapping[str, Any]) -> list[Want]:
    """The output folder held alone (a pack is one file, written atomically), the source folder shared."""
    out = Path(arguments["out"])
    return [Want(Path(arguments["source"]), shared=True)] + ([] if is_pack_path(out) else [Want(out)])


@locked("faceset resize", wants=_resize_wants)
def resize_faceset(source: Path, out: Path, size: int | None = None, face_type: FaceType | None = None,
                   jpeg_quality: int = 95, progress: Callable[[int, int], None] | None = None) -> ResizeResult:
    """Resize every face of ``source`` (folder or pack) into ``out``: a new folder, or a pack (``.fpack``).

    Names and image formats are kept. Foreign images and malformed faces of a folder are skipped (listed
    in the result). Raises InputError for a larger face type, a size out of range, or an ``out`` that
    already holds faces (unless an interrupted resize with the same settings wrote them: it resumes;
    ``out/_resize/settings.json`` records them).
    """
    source, out = Path(source), Path(out)
    if size is None and face_type is None:
        raise InputError("nothing to do: give a new size and/or a smaller face type")
    if size is not None:
        check_size(size)
    if not 1 <= jpeg_quality <= 100:
        raise InputError(f"jpeg quality must be 1..100, got {jpeg_quality}")
    if source.resolve() == out.resolve():
        raise InputError("the output must differ from the input (resize never overwrites faces)", out)
    to_pack = is_pack_path(out)
    if to_pack and out.exists():
        raise InputError("already exists", out)
    settings: dict[str, object] = {"source": str(source.resolve()), "size": size, "face_type": face_type,
                                   "jpeg_quality": jpeg_quality}
    resuming = not to_pack and _resumable(out, settings)
    if not to_pack and not resuming and out.exists() and (not out.is_dir() or list_face_files(out)):
        raise InputError("already holds face files (or is not a folder): give a new or empty folder", out)
    for folder in (out.parent,) if to_pack else (out, out / WORK_DIR):  # what a killed run was writing
        remove_stale_temps(folder)
    store = open_store(source)
    result = ResizeResult(foreign=list(store.foreign), invalid=list(store.invalid))
    if len(store) and face_type is not None:
        for code in np.unique(store.type_codes):  # refuse before writing anything
            resize_matrix(FACE_TYPE_ORDER[int(code)], 256, face_type, 256)  # type: ignore[arg-type]
    total = len(store)
    try:
        if to_pack:
            with write_pack(out) as writer:
                for i in range(total):
                    data, record = resize_face_bytes(store.read_bytes(i), store.names[i], store.paths[i],
                                                     face_type, size, jpeg_quality)
                    writer.add(store.names[i], data, record)
                    if progress is not None:
                        progress(i + 1, total)
        else:
            if not resuming:
                write_json_atomic(out / WORK_DIR / "settings.json", {"schema": SETTINGS_SCHEMA, "version": 1,
                                                                     **settings})
            for i in range(total):
                if resuming and (out / store.names[i]).is_file():  # written atomically: whole
                    if progress is not None:
                        progress(i + 1, total)
                    continue
                data, _ = resize_face_bytes(store.read_bytes(i), store.names[i], store.paths[i], face_type, size,
                                            jpeg_quality)
                try:
                    write_bytes_atomic(out / store.names[i], data)
                except OSError as exc:
                    raise InputError(f"cannot write: {exc.strerror or exc}", out / store.names[i]) from None
                if progress is not None:
                    progress(i + 1, total)
    finally:
        store.close()
    result.count = total
    return result

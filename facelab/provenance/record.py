"""The provenance record of a merged image or video, and where it is stored.

A ``ProvenanceRecord`` says which tool made the file, with which model, when, and that its faces are
synthetic. It travels three ways:

* images (PNG/JPEG): embedded with ``facelab.media.metadata`` (PNG iTXt / JPEG APP11 keyword
  ``facelab``). That slot is the one face files use for their ``facelab.face`` metadata, and
  re-embedding replaces it, so a file holds either a face record or a provenance record, never both;
  merged frames are whole frames, not aligned faces, so they never need both. The ``schema`` field
  tells the two apart, and ``read_image_record`` ignores a face record.
* videos: the record's JSON is the container's ``comment`` tag (MP4/MOV ``©cmt``, Matroska
  ``COMMENT``) and the human-readable statement its ``description`` tag; ``write_video_record``
  remuxes the file (stream copy, no re-encoding) into a temporary file and renames it over the original.
* any file: a sidecar ``<file>.provenance.json`` beside it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import av
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from facelab import TOOL_NAME, __version__
from facelab.core.atomic import count_write, fsync_dir, temp_name, write_bytes_atomic, write_json_atomic
from facelab.core.errors import InputError, MetadataError, storage_error, validation_message
from facelab.core.versioned import json_loads, read_json_file
from facelab.media.metadata import detect_format, embed_json, extract_json
from facelab.media.video import AV_ERRORS, one_line, open_media
from facelab.provenance import syncmark
from facelab.provenance import watermark as wm

SCHEMA = "facelab.provenance"
VERSION = 1
STATEMENT = "This media was generated or altered by facelab, a face-swapping tool; faces in it are synthetic."
SIDECAR_SUFFIX = ".provenance.json"
VIDEO_RECORD_TAG = "comment"
VIDEO_STATEMENT_TAG = "description"

_MOV_SUFFIXES = frozenset({".mp4", ".mov", ".m4v"})
# Tags the muxer writes itself; copying them from the input would be wrong or pointless.
_MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})
_MODEL_ID = re.compile(r"^(sha256:)?[0-9a-f]{64}$")


class ProvenanceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal["facelab.provenance"] = Field(default="facelab.provenance", alias="schema")
    version: Literal[1] = 1
    tool: Literal["facelab"] = "facelab"
    tool_version: str
    model_id: str
    """The sha256 (64 lowercase hex digits) of the model's weights."""
    created: str
    """ISO 8601 UTC time, e.g. 2026-01-31T12:00:00Z."""
    synthetic: Literal[True] = True
    statement: str = STATEMENT
    source: dict[str, Any] | None = None
    watermark: dict[str, Any]
    """{"scheme": ..., "version": ..., "payload": 16 hex digits} of the invisible watermark."""

    @field_validator("model_id")
    @classmethod
    def _check_model_id(cls, value: str) -> str:
        if not _MODEL_ID.match(value):
            raise ValueError("model_id must be a sha256 hex digest (64 lowercase hex digits)")
        return value

    @field_validator("created")
    @classmethod
    def _check_created(cls, value: str) -> str:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"created must be an ISO 8601 time, got {value!r}") from None
        if when.utcoffset() is None or when.utcoffset() != UTC.utcoffset(None):
            raise ValueError("created must be a UTC time (ending in Z or +00:00)")
        return value

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def now_utc() -> str:
    """The current time as ISO 8601 UTC with second precision, e.g. 2026-01-31T12:00:00Z."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def make_record(model_id: str, source: dict[str, Any] | None = None, created: str | None = None) -> ProvenanceRecord:
    """A record for media made with ``model_id``, naming the watermark payload that goes with it."""
    payload = syncmark.make_payload(model_id)
    return ProvenanceRecord(
        tool=TOOL_NAME,
        tool_version=__version__,
        model_id=model_id,
        created=created or now_utc(),
        source=source,
        watermark={"scheme": syncmark.SCHEME, "version": syncmark.SCHEME_VERSION, "payload": wm.payload_hex(payload)},
    )


def parse_record(obj: Any) -> ProvenanceRecord | None:
    """The record in a JSON object; None when the object is not a provenance record at all.

    Raises MetadataError when it claims the provenance schema but does not validate.
    """
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        return None
    try:
        return ProvenanceRecord.model_validate(obj)
    except ValidationError as exc:
        raise MetadataError(f"invalid provenance record: {validation_message(exc, 'record')}") from None


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise InputError("no such file", path)
    if path.is_dir():
        raise InputError("is a folder, not a file", path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path) from exc


# ----------------------------------------------------------------------------------------------------
# images


def write_image_record(path: Path | str, record: ProvenanceRecord) -> None:
    """Embed the record into an existing PNG or JPEG file (replacing any facelab metadata), atomically."""
    path = Path(path)
    data = _read_bytes(path)
    if detect_format(data) is None:
        raise InputError("not a PNG or JPEG image: cannot embed a provenance record", path)
    try:
        new = embed_json(data, record.to_json())
    except MetadataError as exc:
        raise InputError(str(exc), path) from exc
    write_bytes_atomic(path, new)


def read_image_record(path: Path | str) -> ProvenanceRecord | None:
    """The provenance record embedded in a PNG/JPEG; None when there is none (or it is a face record)."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        obj = extract_json(data)
    except MetadataError as exc:
        raise InputError(str(exc), path) from exc
    return parse_record(obj)


# ----------------------------------------------------------------------------------------------------
# videos


def write_video_record(path: Path | str, record: ProvenanceRecord) -> None:
    """Put the record into a video's container metadata by remuxing it (no re-encoding), atomically.

    Every stream is copied packet for packet; the input's other container tags are kept.
    """
    path = Path(path)
    tmp = temp_name(path, secrets.token_hex(6))
    options = {"movflags": "+faststart"} if path.suffix.lower() in _MOV_SUFFIXES else {}
    try:
        with open_media(path) as src:
            if not src.streams.video:
                raise InputError("has no video stream", path)
            try:
                out = av.open(str(tmp), mode="w", container_options=options)
            except AV_ERRORS as err:
                raise InputError(f"cannot write this container type: {one_line(err)}", path) from err
            try:
                for key, value in src.metadata.items():
                    if key not in _MUXER_TAGS:
                        out.metadata[key] = value
                out.metadata[VIDEO_RECORD_TAG] = json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":"))
                out.metadata[VIDEO_STATEMENT_TAG] = record.statement
                mapping = {}
                for stream in src.streams:
                    if stream.type not in ("video", "audio", "subtitle"):
                        continue
                    copy = out.add_stream_from_template(stream)
                    for key, value in stream.metadata.items():
                        copy.metadata[key] = value
                    mapping[stream.index] = copy
                for packet in src.demux(*[src.streams[i] for i in mapping]):
                    if packet.size == 0:  # the demuxer's empty end-of-stream packet (Matroska can leave dts unset)
                        continue
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
            except AV_ERRORS as err:
                raise storage_error(err, path) or InputError(f"cannot remux the video: {one_line(err)}", path) from err
            finally:
                out.close()
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = storage_error(exc, path)  # a full disk: one line naming the video, not its temporary file
        if full is None or full is exc:
            raise
        raise full from exc
    fsync_dir(path.parent)
    count_write()


def read_video_record(path: Path | str) -> ProvenanceRecord | None:
    """The provenance record in a video's container metadata; None when there is none."""
    path = Path(path)
    with open_media(path) as container:
        tags = dict(container.metadata)
    tags = {key.lower(): value for key, value in tags.items()}  # Matroska tags are upper case
    for key in (VIDEO_RECORD_TAG, VIDEO_STATEMENT_TAG):
        text = tags.get(key)
        if not text or not text.lstrip().startswith("{"):
            continue
        try:
            obj = json_loads(text)
        except json.JSONDecodeError:
            continue
        record = parse_record(obj)
        if record is not None:
            return record
    return None


# ----------------------------------------------------------------------------------------------------
# sidecar


def sidecar_path(path: Path | str) -> Path:
    """``<file>.provenance.json`` beside the file (the full file name is kept: out.mp4.provenance.json)."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_sidecar(path: Path | str, record: ProvenanceRecord) -> Path:
    """Write the record beside the media file; returns the sidecar's path."""
    side = sidecar_path(path)
    write_json_atomic(side, record.to_json())
    return side


def read_sidecar(path: Path | str) -> ProvenanceRecord | None:
    """The record in the media file's sidecar; None when there is no sidecar."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    record = parse_record(read_json_file(side, "provenance sidecar"))
    if record is None:
        raise InputError(f"not a provenance record (schema is not {SCHEMA!r})", side)
    return record

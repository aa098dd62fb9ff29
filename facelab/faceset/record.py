"""FaceRecord: the metadata of one aligned face, and the face-file I/O that embeds it in the image.

A face file is an ordinary JPEG or PNG (the aligned face) whose metadata travels inside it as JSON
(see ``facelab.media.metadata``), so the file name carries no information and files can be renamed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationError,
    field_validator,
)

from facelab.core.atomic import write_bytes_atomic
from facelab.core.choices import FaceType
from facelab.core.errors import InputError, MetadataError, printable, validation_message
from facelab.core.types import F64, U8
from facelab.media.limits import decode_image
from facelab.media.metadata import (
    PNG_SIGNATURE,
    check_complete,
    detect_format,
    embed_json,
    extract_json,
    image_size,
)

SCHEMA = "facelab.face"
VERSION = 1
LANDMARK_COUNT = 68
IDENTITY_DIM = 128
MIN_SIZE = 64
MAX_SIZE = 1024

Point = tuple[FiniteFloat, FiniteFloat]
Landmarks68 = Annotated[list[Point], Field(min_length=LANDMARK_COUNT, max_length=LANDMARK_COUNT)]
AffineRow = Annotated[list[FiniteFloat], Field(min_length=3, max_length=3)]
Affine2x3 = Annotated[list[AffineRow], Field(min_length=2, max_length=2)]
Identity = Annotated[list[FiniteFloat], Field(min_length=IDENTITY_DIM, max_length=IDENTITY_DIM)]


class NotAFaceError(MetadataError):
    """The file is an image (or not even that) without facelab face metadata: not an aligned face."""


def _plain(value: Any) -> Any:
    """numpy arrays and scalars (also inside lists/tuples) to plain Python, so records accept numpy input."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _accept_numpy(cls, value: Any) -> Any:
        return _plain(value)


class SourceInfo(_Model):
    """Where the face came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame: str = Field(min_length=1, max_length=255)  # file stem of the source frame, e.g. "000123"
    index: int = Field(ge=0)  # frame number
    width: int = Field(gt=0)
    height: int = Field(gt=0)

    @field_validator("frame")
    @classmethod
    def _stem_only(cls, value: str) -> str:
        if "/" in value or "\\" in value or "\x00" in value:
            raise ValueError("must be a file stem, not a path")
        return value


class Pose(_Model):
    """Head pose in degrees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    yaw: FiniteFloat
    pitch: FiniteFloat
    roll: FiniteFloat


class XSegPolygon(_Model):
    """A hand-drawn mask polygon in aligned-face pixels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["include", "exclude"]
    points: Annotated[list[Point], Field(min_length=3)]


class FaceRecord(_Model):
    """Metadata of one aligned face. Serialised with ``model_dump(mode="json")``; the key is "schema"."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
    )

    # "schema" would shadow BaseModel.schema(), so the attribute is schema_name and the key is "schema".
    schema_name: Literal["facelab.face"] = Field(default="facelab.face", alias="schema")
    version: Literal[1] = 1
    face_type: FaceType
    size: int = Field(ge=MIN_SIZE, le=MAX_SIZE)  # the aligned image is size x size
    face_index: int = Field(ge=0)  # index of the face within its frame
    landmarks: Landmarks68  # in the aligned image
    source: SourceInfo
    rect: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat]  # detector box (l, t, r, b) in the frame
    source_landmarks: Landmarks68  # in the source frame
    image_to_face: Affine2x3  # source-frame pixels -> aligned pixels
    pose: Pose | None = None
    identity: Identity | None = None
    sharpness: FiniteFloat | None = None
    detector: str = Field(min_length=1)
    landmarker: str = Field(min_length=1)
    xseg_polygons: list[XSegPolygon] = Field(default_factory=list)
    xseg_mask: str | None = None  # base64 PNG, reserved
    tool_version: str = Field(min_length=1)

    @field_validator("rect")
    @classmethod
    def _rect_ordered(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        left, top, right, bottom = value
        if not (right > left and bottom > top):
            raise ValueError("must be (left, top, right, bottom) with right > left and bottom > top")
        return value

    @field_validator("image_to_face")
    @classmethod
    def _invertible(cls, value: list[list[float]]) -> list[list[float]]:
        det = value[0][0] * value[1][1] - value[0][1] * value[1][0]
        if not math.isfinite(det) or abs(det) < 1e-12:
            raise ValueError("affine matrix is not invertible")
        return value

    def landmarks_array(self) -> F64:
        """Aligned-image landmarks, shape (68, 2)."""
        return np.array(self.landmarks, dtype=np.float64).reshape(LANDMARK_COUNT, 2)

    def source_landmarks_array(self) -> F64:
        """Source-frame landmarks, shape (68, 2)."""
        return np.array(self.source_landmarks, dtype=np.float64).reshape(LANDMARK_COUNT, 2)

    def affine(self) -> F64:
        """Source frame -> aligned face, shape (2, 3)."""
        return np.array(self.image_to_face, dtype=np.float64).reshape(2, 3)

    def inverse_affine(self) -> F64:
        """Aligned face -> source frame, shape (2, 3)."""
        return np.array(cv2.invertAffineTransform(self.affine()), dtype=np.float64).reshape(2, 3)

    def to_payload(self) -> dict[str, Any]:
        """The JSON object embedded in the file."""
        return self.model_dump(mode="json")


# ----------------------------------------------------------------------------------------------------
# decoding metadata


def parse_record(payload: dict[str, Any], path: Path | str) -> FaceRecord:
    """Validate an extracted metadata object. Raises MetadataError naming ``path``."""
    schema = payload.get("schema")
    if schema != SCHEMA:
        shown = printable(repr(schema), 60)
        raise MetadataError(f"unknown metadata schema {shown} (expected {SCHEMA!r})", path)
    version = payload.get("version")
    if type(version) is not int or version != VERSION:
        shown = printable(repr(version), 60)
        raise MetadataError(
            f"unsupported face metadata version {shown} (this facelab reads version {VERSION})", path
        )
    try:
        return FaceRecord.model_validate(payload, by_alias=True, by_name=False)
    except ValidationError as exc:
        summary = validation_message(exc, "record", count_more=True, limit=160)
        raise MetadataError(f"invalid face metadata: {summary}", path) from None


def record_from_bytes(data: bytes, path: Path | str) -> FaceRecord:
    """The record embedded in a face file's bytes; checks the file is complete and its size matches.

    Raises NotAFaceError (no facelab metadata) or MetadataError (malformed), naming ``path``.
    """
    try:
        payload = extract_json(data)
    except MetadataError as exc:
        raise MetadataError(str(exc), path) from None
    if payload is None:
        if not data:
            raise MetadataError("empty file", path)
        if len(data) < len(PNG_SIGNATURE) and (PNG_SIGNATURE.startswith(data) or data == b"\xff"):
            raise MetadataError("truncated image file", path)
        if detect_format(data) is None:
            raise NotAFaceError("not a JPEG or PNG image (not an aligned face?)", path)
        raise NotAFaceError("no facelab face metadata (not an aligned face?)", path)
    record = parse_record(payload, path)
    dims = _complete_dims(data, path)
    if dims is not None and dims != (record.size, record.size):
        raise MetadataError(
            f"image is {dims[0]}x{dims[1]} but its metadata says {record.size}x{record.size}", path
        )
    return record


def _complete_dims(data: bytes, path: Path | str) -> tuple[int, int] | None:
    """The (width, height) of a complete JPEG/PNG file; MetadataError naming the file when it is cut short."""
    try:
        check_complete(data)
        return image_size(data)
    except MetadataError as exc:
        raise MetadataError(str(exc), path) from None


# ----------------------------------------------------------------------------------------------------
# file I/O


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a face image", path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None


def _write(path: Path, data: bytes) -> None:
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path) from None


def _encoding_for(path: Path, jpeg_quality: int) -> tuple[str, list[int]]:
    ext = path.suffix.lower()
    if ext in (".jpg", ".jpeg"):
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
        return ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    if ext == ".png":
        return ".png", []
    raise InputError(f"unsupported face image extension {ext or '(none)'!r}: use .jpg, .jpeg or .png", path)


def write_face(
    path: Path, image_bgr: U8, record: FaceRecord, jpeg_quality: int = 95
) -> None:
    """Encode ``image_bgr`` (size x size x 3 uint8) by the extension, embed ``record``, write atomically.

    Raises InputError for an unsupported extension or an unwritable path, ValueError when the image is
    not a uint8 BGR image of ``record.size`` x ``record.size``.
    """
    path = Path(path)
    ext, params = _encoding_for(path, jpeg_quality)
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8:
        raise ValueError("image_bgr must be a uint8 numpy array")
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"image_bgr must be H x W x 3 (BGR), got shape {image_bgr.shape}")
    if image_bgr.shape[:2] != (record.size, record.size):
        raise ValueError(f"image is {image_bgr.shape[1]}x{image_bgr.shape[0]}, record.size is {record.size}")
    ok, encoded = cv2.imencode(ext, image_bgr, params)
    if not ok:
        raise InputError(f"cannot encode the image as {ext}", path)
    data = embed_json(np.asarray(encoded, dtype=np.uint8).tobytes(), record.to_payload())
    _write(path, data)


def read_record(path: Path) -> FaceRecord:
    """The face metadata only: reads the bytes, no pixel decoding.

    Raises InputError (missing/unreadable file), NotAFaceError (no facelab metadata) or MetadataError.
    """
    path = Path(path)
    return record_from_bytes(_read_bytes(path), path)


def read_face(path: Path) -> tuple[U8, FaceRecord]:
    """The aligned image (BGR uint8, size x size x 3) and its record. Errors as ``read_record``."""
    path = Path(path)
    data = _read_bytes(path)
    record = record_from_bytes(data, path)
    decoded = decode_image(data, cv2.IMREAD_COLOR, path)
    if decoded is None:
        raise MetadataError("cannot decode the image pixels", path)
    image: U8 = np.asarray(decoded, dtype=np.uint8)
    if image.shape[:2] != (record.size, record.size):
        raise MetadataError(
            f"image is {image.shape[1]}x{image.shape[0]} but its metadata says {record.size}x{record.size}",
            path,
        )
    return image, record


def update_record(path: Path, record: FaceRecord) -> None:
    """Replace the metadata embedded in an existing face file; the encoded pixels are kept byte for byte.

    Raises InputError (missing file), MetadataError (not a complete JPEG/PNG), ValueError when the image
    is not ``record.size`` x ``record.size``.
    """
    path = Path(path)
    data = _read_bytes(path)
    if detect_format(data) is None:
        raise NotAFaceError("not a JPEG or PNG image", path)
    dims = _complete_dims(data, path)
    if dims is not None and dims != (record.size, record.size):
        raise ValueError(f"{path}: image is {dims[0]}x{dims[1]}, record.size is {record.size}")
    try:
        updated = embed_json(data, record.to_payload())
    except MetadataError as exc:
        raise MetadataError(str(exc), path) from None
    _write(path, updated)

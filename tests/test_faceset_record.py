"""The aligned-face file format: FaceRecord metadata embedded in JPEG/PNG files, and faceset folders."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, JpegImagePlugin
from pydantic import ValidationError

from facelab.core.errors import InputError, MetadataError
from facelab.faceset.folder import FaceScan, list_face_files, scan_faces
from facelab.faceset.record import (
    FaceRecord,
    NotAFaceError,
    Pose,
    SourceInfo,
    XSegPolygon,
    read_face,
    read_record,
    record_from_bytes,
    update_record,
    write_face,
)
from facelab.media.metadata import (
    PNG_SIGNATURE,
    SIGNATURE,
    check_complete,
    detect_format,
    embed_json,
    extract_json,
    image_size,
    strip_json,
)

REPO = Path(__file__).parents[1]
SAMPLE = REPO / "samples" / "fr_obama.jpg"
SIZE = 256

Face = tuple[npt.NDArray[np.uint8], FaceRecord]


# ----------------------------------------------------------------------------------------------------
# fixtures


def _template_landmarks() -> npt.NDArray[np.float64]:
    """68 points in the usual iBUG layout, in unit coordinates of the aligned face."""
    pts: list[tuple[float, float]] = []
    for t in np.linspace(math.pi, 0.0, 17):  # jaw: lower half of an ellipse
        pts.append((0.5 + 0.4 * math.cos(t), 0.4 + 0.5 * math.sin(t)))
    for cx in (0.3, 0.7):  # brows
        for dx in np.linspace(-0.12, 0.12, 5):
            pts.append((cx + dx, 0.3 - 0.03 * math.cos(dx * 10)))
    for y in np.linspace(0.38, 0.58, 4):  # nose bridge
        pts.append((0.5, y))
    for dx in np.linspace(-0.08, 0.08, 5):  # nostrils
        pts.append((0.5 + dx, 0.62))
    for cx in (0.33, 0.67):  # eyes
        for t in np.linspace(0, 2 * math.pi, 6, endpoint=False):
            pts.append((cx + 0.07 * math.cos(t + math.pi), 0.42 + 0.03 * math.sin(t + math.pi)))
    for t in np.linspace(0, 2 * math.pi, 12, endpoint=False):  # outer lips
        pts.append((0.5 + 0.16 * math.cos(t + math.pi), 0.76 + 0.06 * math.sin(t + math.pi)))
    for t in np.linspace(0, 2 * math.pi, 8, endpoint=False):  # inner lips
        pts.append((0.5 + 0.1 * math.cos(t + math.pi), 0.76 + 0.02 * math.sin(t + math.pi)))
    arr = np.array(pts, dtype=np.float64)
    assert arr.shape == (68, 2)
    return arr


def _make_face() -> Face:
    """A real aligned crop of the sample photo and a consistent record built from numpy values."""
    frame = cv2.imread(str(SAMPLE))
    assert frame is not None, SAMPLE
    height, width = frame.shape[:2]
    left, top, side = 310.0, 70.0, 380.0  # square crop around the face, rotated by 4 degrees
    rot = np.array(cv2.getRotationMatrix2D((left + side / 2, top + side / 2), 4.0, SIZE / side), np.float64)
    rot[:, 2] += np.array([SIZE / 2, SIZE / 2]) - np.array([left + side / 2, top + side / 2])
    image = np.asarray(cv2.warpAffine(frame, rot, (SIZE, SIZE), flags=cv2.INTER_AREA), dtype=np.uint8)
    landmarks = (_template_landmarks() * SIZE).astype(np.float32)
    inverse = cv2.invertAffineTransform(rot)
    source_landmarks = landmarks.astype(np.float64) @ inverse[:, :2].T + inverse[:, 2]
    box = np.array([*source_landmarks.min(axis=0), *source_landmarks.max(axis=0)])
    fields: dict[str, Any] = {  # numpy arrays and scalars are accepted and stored as plain floats/ints
        "face_type": "whole_face",
        "size": SIZE,
        "face_index": np.int64(0),
        "landmarks": landmarks,
        "source": SourceInfo(frame="000123", index=123, width=width, height=height),
        "rect": box,
        "source_landmarks": source_landmarks,
        "image_to_face": rot,
        "pose": Pose.model_validate({"yaw": np.float32(-3.5), "pitch": 2.25, "roll": -4.0}),
        "identity": np.random.default_rng(7).normal(size=128).astype(np.float32),
        "sharpness": np.float64(123.456),
        "detector": "dlib",
        "landmarker": "dlib",
        "tool_version": "0.1.0",
    }
    record = FaceRecord.model_validate(fields)
    assert isinstance(record.landmarks[0][0], float) and isinstance(record.face_index, int)
    return image, record


@pytest.fixture(scope="module")
def face() -> Face:
    return _make_face()


def _jpeg_with_raw_payload(raw: bytes, chunk: tuple[int, int] = (0, 1)) -> bytes:
    """A plain JPEG with one hand-made facelab APP11 segment carrying ``raw``."""
    ok, enc = cv2.imencode(".jpg", np.zeros((SIZE, SIZE, 3), np.uint8))
    assert ok
    body = SIGNATURE + chunk[0].to_bytes(2, "big") + chunk[1].to_bytes(2, "big") + raw
    seg = b"\xff\xeb" + (len(body) + 2).to_bytes(2, "big") + body
    data = enc.tobytes()
    return data[:2] + seg + data[2:]


def _png_with_raw_payload(raw: bytes, *, bad_crc: bool = False) -> bytes:
    ok, enc = cv2.imencode(".png", np.zeros((SIZE, SIZE, 3), np.uint8))
    assert ok
    data = enc.tobytes()
    body = b"facelab\x00\x00\x00\x00\x00" + raw
    crc = zlib.crc32(b"iTXt" + body) ^ (1 if bad_crc else 0)
    chunk = len(body).to_bytes(4, "big") + b"iTXt" + body + crc.to_bytes(4, "big")
    ihdr_end = 8 + 12 + 13
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def _sos_offset(data: bytes) -> int:
    pos = data.find(b"\xff\xda")
    assert pos > 0
    return pos


# ----------------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".jpeg", ".PNG"])
def test_round_trip(tmp_path: Path, face: Face, suffix: str) -> None:
    image, record = face
    path = tmp_path / f"face{suffix}"
    write_face(path, image, record)
    assert read_record(path) == record
    pixels, again = read_face(path)
    assert again == record
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8
    if suffix.lower() == ".png":
        assert np.array_equal(pixels, image)
    else:
        assert np.abs(pixels.astype(np.int16) - image.astype(np.int16)).mean() < 3.0
    data = path.read_bytes()
    assert detect_format(data) == ("png" if suffix.lower() == ".png" else "jpg")
    assert image_size(data) == (SIZE, SIZE)
    assert extract_json(data) == record.model_dump(mode="json")
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_record_helpers_and_numpy_input(face: Face) -> None:
    _, record = face
    lm = record.landmarks_array()
    src = record.source_landmarks_array()
    assert lm.shape == (68, 2) and lm.dtype == np.float64
    assert src.shape == (68, 2) and src.dtype == np.float64
    assert record.affine().shape == (2, 3) and record.inverse_affine().shape == (2, 3)
    # source -> face maps the source landmarks onto the aligned ones, and the inverse maps back
    forward = src @ record.affine()[:, :2].T + record.affine()[:, 2]
    back = lm @ record.inverse_affine()[:, :2].T + record.inverse_affine()[:, 2]
    np.testing.assert_allclose(forward, lm, atol=1e-4)
    np.testing.assert_allclose(back, src, atol=1e-4)
    payload = record.model_dump(mode="json")
    assert payload["schema"] == "facelab.face" and payload["version"] == 1
    assert len(payload["landmarks"]) == 68 and len(payload["identity"]) == 128
    assert isinstance(payload["face_index"], int) and isinstance(payload["pose"]["yaw"], float)
    json.dumps(payload, allow_nan=False)  # plain JSON, no numpy types left
    assert FaceRecord.model_validate(payload) == record


def test_model_validation(face: Face) -> None:
    _, record = face
    base = record.model_dump(mode="json")

    def invalid(**changes: Any) -> None:
        with pytest.raises(ValidationError):
            FaceRecord.model_validate({**base, **changes})

    invalid(landmarks=base["landmarks"][:67])
    invalid(landmarks=[*base["landmarks"], [1.0, 2.0]])
    invalid(source_landmarks=[[1.0, 2.0, 3.0]] * 68)
    invalid(image_to_face=[[1.0, 0.0, 0.0]])
    invalid(image_to_face=[[1.0, 0.0], [0.0, 1.0]])
    invalid(image_to_face=[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # not invertible
    invalid(landmarks=[[float("nan"), 0.0]] * 68)
    invalid(sharpness=float("inf"))
    invalid(identity=[0.0] * 127)
    invalid(size=32)
    invalid(size=2048)
    invalid(face_type="profile")
    invalid(face_index=-1)
    invalid(rect=[10.0, 10.0, 5.0, 20.0])
    invalid(unexpected_field=1)
    invalid(xseg_polygons=[{"kind": "include", "points": [[0, 0], [1, 1]]}])
    invalid(xseg_polygons=[{"kind": "maybe", "points": [[0, 0], [1, 1], [2, 0]]}])
    invalid(source={**base["source"], "frame": "../etc/passwd"})
    invalid(version=2)
    with pytest.raises(ValidationError):
        record.size = 128  # frozen


def test_big_payload_jpeg(tmp_path: Path, face: Face) -> None:
    image, record = face
    rng = np.random.default_rng(1)
    polygons = [
        XSegPolygon.model_validate(
            {"kind": "include" if i % 2 else "exclude", "points": rng.uniform(0, SIZE, (500, 2))}
        )
        for i in range(12)
    ]
    big = record.model_copy(update={"xseg_polygons": polygons})
    big = FaceRecord.model_validate(big.model_dump(mode="json"))  # model_copy does not validate
    assert len(json.dumps(big.model_dump(mode="json"))) > 3 * 65536
    for name in ("big.jpg", "big.png"):
        path = tmp_path / name
        write_face(path, image, big)
        assert read_record(path) == big
        assert read_face(path)[1] == big
    data = (tmp_path / "big.jpg").read_bytes()
    assert data.count(SIGNATURE) >= 4  # split over several APP11 segments
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (SIZE, SIZE, 3)
    # re-embedding a small record replaces all the chunks
    small = embed_json(data, {"hello": "world"})
    assert small.count(SIGNATURE) == 1
    assert extract_json(small) == {"hello": "world"}
    assert strip_json(small) == strip_json(data)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_reembed_replaces_and_strip_restores(face: Face, suffix: str) -> None:
    image, _ = face
    ok, enc = cv2.imencode(suffix, image)
    assert ok
    plain = enc.tobytes()
    assert extract_json(plain) is None
    once = embed_json(plain, {"a": 1, "text": "é✓"})
    twice = embed_json(once, {"b": [1, 2.5, None, True]})
    assert extract_json(once) == {"a": 1, "text": "é✓"}
    assert extract_json(twice) == {"b": [1, 2.5, None, True]}
    assert strip_json(once) == plain and strip_json(twice) == plain
    marker = SIGNATURE if suffix == ".jpg" else b"iTXt"
    assert twice.count(marker) == 1
    if suffix == ".jpg":
        assert twice[2:4] == b"\xff\xe0"  # the JFIF APP0 segment stays first
        assert twice[_sos_offset(twice) :] == plain[_sos_offset(plain) :]
    with pytest.raises(ValueError):
        embed_json(plain, {"x": float("nan")})
    with pytest.raises(ValueError):
        embed_json(b"GIF89a....", {"x": 1})


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_update_record_keeps_pixels(tmp_path: Path, face: Face, suffix: str) -> None:
    image, record = face
    path = tmp_path / f"face{suffix}"
    write_face(path, image, record, jpeg_quality=90)
    before = path.read_bytes()
    pixels_before, _ = read_face(path)
    changed = record.model_copy(
        update={
            "sharpness": 1.5,
            "xseg_polygons": [XSegPolygon(kind="include", points=[(1.0, 1.0), (200.0, 5.0), (100.0, 250.0)])],
        }
    )
    changed = FaceRecord.model_validate(changed.model_dump(mode="json"))
    update_record(path, changed)
    after = path.read_bytes()
    assert read_record(path) == changed
    assert strip_json(after) == strip_json(before)  # every non-metadata byte is unchanged
    if suffix == ".jpg":
        assert after[_sos_offset(after) :] == before[_sos_offset(before) :]
    else:
        idat = before.find(b"IDAT") - 4
        assert after[after.find(b"IDAT") - 4 :] == before[idat:]
    pixels_after, _ = read_face(path)
    assert np.array_equal(pixels_after, pixels_before)
    with pytest.raises(ValueError):
        update_record(path, record.model_copy(update={"size": 128}))


# ----------------------------------------------------------------------------------------------------
# foreign and malformed files


def test_foreign_image(tmp_path: Path) -> None:
    foreign = tmp_path / "holiday.jpg"
    assert cv2.imwrite(str(foreign), np.full((100, 80, 3), 127, np.uint8))
    with pytest.raises(NotAFaceError) as info:
        read_record(foreign)
    assert "holiday.jpg" in str(info.value) and "no facelab face metadata" in str(info.value)
    assert isinstance(info.value, MetadataError)
    with pytest.raises(NotAFaceError):
        read_face(foreign)
    not_image = tmp_path / "notes.png"
    not_image.write_bytes(b"just some text\n")
    with pytest.raises(NotAFaceError, match=r"notes\.png"):
        read_record(not_image)
    scan = scan_faces(tmp_path)
    assert scan.faces == [] and scan.invalid == []
    assert scan.foreign == [foreign, not_image]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.jpg") as info:
        read_record(tmp_path / "missing.jpg")
    assert not isinstance(info.value, MetadataError)
    with pytest.raises(InputError):
        read_face(tmp_path / "missing.png")
    with pytest.raises(InputError):
        update_record(tmp_path / "missing.png", _make_face()[1])


def _tampered_payloads(base: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    return [
        ("version", {**base, "version": 2}, "version 2"),
        ("version_str", {**base, "version": "1"}, "version '1'"),
        ("version_missing", {k: v for k, v in base.items() if k != "version"}, "version None"),
        ("schema", {**base, "schema": "deepfacelab.dfl"}, "deepfacelab.dfl"),
        ("landmarks67", {**base, "landmarks": base["landmarks"][:67]}, "landmarks"),
        ("matrix", {**base, "image_to_face": [[1, 0, 0]]}, "image_to_face"),
        ("extra", {**base, "evil": "__import__('os')"}, "evil"),
        ("no_source", {k: v for k, v in base.items() if k != "source"}, "source"),
    ]


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_tampered_metadata(tmp_path: Path, face: Face, suffix: str) -> None:
    image, record = face
    path = tmp_path / f"good{suffix}"
    write_face(path, image, record)
    data = path.read_bytes()
    cases = _tampered_payloads(record.model_dump(mode="json"))
    for name, payload, expected in cases:
        bad = tmp_path / f"bad_{name}{suffix}"
        bad.write_bytes(embed_json(data, payload))
        with pytest.raises(MetadataError) as info:
            read_record(bad)
        message = str(info.value)
        assert not isinstance(info.value, NotAFaceError)
        assert bad.name in message, message
        assert expected in message, message
        assert "\n" not in message
    scan = scan_faces(tmp_path)
    assert [p.name for p, _ in scan.faces] == [f"good{suffix}"]
    assert len(scan.invalid) == len(cases) and scan.foreign == []
    assert all(reason and "\n" not in reason and tmp_path.name not in reason for _, reason in scan.invalid)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"[1, 2, 3]", "expected an object"),
        (b'"facelab"', "expected an object"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"schema": "facelab.face", ', "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[" * 30_000 + b"]" * 30_000, "not valid JSON"),  # deep nesting
    ],
)
@pytest.mark.parametrize("kind", ["jpg", "png"])
def test_malformed_payload(tmp_path: Path, raw: bytes, expected: str, kind: str) -> None:
    data = _jpeg_with_raw_payload(raw) if kind == "jpg" else _png_with_raw_payload(raw)
    with pytest.raises(MetadataError, match=expected):
        extract_json(data)
    path = tmp_path / f"tampered.{kind}"
    path.write_bytes(data)
    with pytest.raises(MetadataError, match="tampered") as info:
        read_record(path)
    assert not isinstance(info.value, NotAFaceError)


def test_malformed_containers(tmp_path: Path, face: Face) -> None:
    with pytest.raises(MetadataError, match="CRC"):
        extract_json(_png_with_raw_payload(b"{}", bad_crc=True))
    two = _png_with_raw_payload(b"{}")
    ihdr_end = 8 + 12 + 13
    chunk_len = 12 + len(b"facelab\x00\x00\x00\x00\x00{}")
    with pytest.raises(MetadataError, match="2 facelab iTXt"):
        extract_json(two[: ihdr_end + chunk_len] + two[ihdr_end:])
    with pytest.raises(MetadataError, match="segment"):
        extract_json(_jpeg_with_raw_payload(b"{}", chunk=(1, 2)))  # chunk 1 of 2, chunk 0 missing
    with pytest.raises(MetadataError, match="segment"):
        extract_json(_jpeg_with_raw_payload(b"{}", chunk=(0, 0)))
    with pytest.raises(MetadataError, match="segment"):
        extract_json(_jpeg_with_raw_payload(b"{}", chunk=(1, 1)))
    with pytest.raises(MetadataError, match="too short"):
        extract_json(_jpeg_with_raw_payload(b"")[:2] + b"\xff\xeb\x00\x0bfacelab\x00\x00" + b"\xff\xd9")
    # the image in truncated form: metadata intact, but the scan data has no end
    image, record = face
    for suffix in (".jpg", ".png"):
        path = tmp_path / f"cut{suffix}"
        write_face(path, image, record)
        data = path.read_bytes()
        for cut in (len(data) - 2, len(data) - 100, len(data) // 2, 40, 3):
            path.write_bytes(data[:cut])
            with pytest.raises(MetadataError, match=f"cut{suffix}") as info:
                read_record(path)
            assert "truncated" in str(info.value)
            with pytest.raises(MetadataError):
                read_face(path)
        path.write_bytes(b"")
        with pytest.raises(MetadataError, match="empty file"):
            read_record(path)


def test_jpeg_fill_bytes_standalone_markers_and_trailing_data(face: Face) -> None:
    image, _ = face
    ok, enc = cv2.imencode(".jpg", image)
    assert ok
    data = embed_json(enc.tobytes(), {"k": "v"})
    sig = data.find(SIGNATURE)
    seg = sig - 4  # the FF EB marker of our segment
    assert data[seg : seg + 2] == b"\xff\xeb"
    # fill bytes before our marker and a standalone TEM marker before it: still found
    odd = data[:seg] + b"\xff\xff\xff" + b"\xff\x01" + data[seg:]
    assert extract_json(odd) == {"k": "v"}
    assert cv2.imdecode(np.frombuffer(odd, np.uint8), cv2.IMREAD_COLOR) is not None
    assert extract_json(strip_json(odd)) is None
    # a facelab-looking segment after SOS (inside/after the scan data) is ignored
    fake = _jpeg_with_raw_payload(b'{"fake": 1}')
    fake_seg = fake[2 : fake.find(b"\xff", 4)]
    plain = enc.tobytes()
    assert extract_json(plain + fake_seg) is None
    sos = _sos_offset(plain)
    assert extract_json(plain[: sos + 20] + fake_seg + plain[sos + 20 :]) is None
    # garbage between segments, a second SOI, a stuffed byte outside the scan: malformed
    first_seg_end = 4 + int.from_bytes(plain[4:6], "big")
    for junk in (b"\x00", b"\xff\xd8", b"\xff\x00"):
        with pytest.raises(MetadataError, match="malformed JPEG"):
            extract_json(plain[:first_seg_end] + junk + plain[first_seg_end:])
    # a JPEG ending at EOI without image data has no metadata but is not complete
    assert extract_json(b"\xff\xd8\xff\xd9") is None
    with pytest.raises(MetadataError):
        check_complete(b"\xff\xd8\xff\xd9")


def test_fuzz_random_bytes_and_truncations(face: Face) -> None:
    image, record = face
    payload = record.model_dump(mode="json")
    samples: list[bytes] = []
    for suffix in (".jpg", ".png"):
        ok, enc = cv2.imencode(suffix, cv2.resize(image, (64, 64)))
        assert ok
        samples.append(embed_json(enc.tobytes(), payload))
    rng = random.Random(20240611)
    outcomes = {"none": 0, "dict": 0, "error": 0}

    def run(data: bytes, may_succeed: bool) -> None:
        try:
            result = extract_json(data)
        except MetadataError:
            outcomes["error"] += 1
        else:
            if result is None:
                outcomes["none"] += 1
            else:
                assert may_succeed and isinstance(result, dict)
                outcomes["dict"] += 1
        for func in (strip_json, image_size, check_complete):
            with contextlib.suppress(MetadataError):
                func(data)
        try:
            record_from_bytes(data, "fuzz.jpg")
        except MetadataError as exc:
            assert "fuzz.jpg" in str(exc)

    prefixes = [b"", b"\xff\xd8", b"\xff\xd8\xff", b"\xff\xd8\xff\xeb\x00\x20" + SIGNATURE, PNG_SIGNATURE]
    for _ in range(300):  # random bytes, some behind a JPEG/PNG start
        body = rng.randbytes(rng.randrange(0, 200))
        run(rng.choice(prefixes) + body, may_succeed=False)
    for data in samples:  # truncations of real face files
        cuts = {0, 1, 2, 3, 8, 9, 20, len(data) - 1} | {rng.randrange(len(data)) for _ in range(150)}
        for cut in sorted(cuts):
            run(data[:cut], may_succeed=True)
        for _ in range(150):  # byte flips, mostly in the metadata region at the start
            mutated = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                pos = rng.randrange(min(len(data), 2000))
                mutated[pos] = rng.randrange(256)
            run(bytes(mutated), may_succeed=True)
    assert outcomes["none"] > 0 and outcomes["error"] > 0 and outcomes["dict"] > 0


# ----------------------------------------------------------------------------------------------------
# files on disk, folders


def test_rename_keeps_face_valid(tmp_path: Path, face: Face) -> None:
    image, record = face
    path = tmp_path / "000123_0.png"
    write_face(path, image, record)
    renamed = path.rename(tmp_path / "my favourite face.png")
    assert read_record(renamed) == record
    as_jpg = renamed.rename(tmp_path / "wrong_extension.jpg")  # content decides, not the name
    pixels, again = read_face(as_jpg)
    assert again == record and np.array_equal(pixels, image)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_written_file_is_standard_image(tmp_path: Path, face: Face, suffix: str) -> None:
    image, record = face
    path = tmp_path / f"face{suffix}"
    write_face(path, image, record)
    decoded = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (SIZE, SIZE, 3)
    with Image.open(path) as pil:
        pil.verify()
    with Image.open(io.BytesIO(path.read_bytes())) as pil:
        pil.load()
        assert pil.size == (SIZE, SIZE) and pil.mode == "RGB"
        assert pil.format == ("PNG" if suffix == ".png" else "JPEG")
        rgb = np.asarray(pil)
        if suffix == ".png":
            assert np.array_equal(rgb[:, :, ::-1], image)
            assert json.loads(pil.info["facelab"]) == record.model_dump(mode="json")
        else:
            assert isinstance(pil, JpegImagePlugin.JpegImageFile)
            assert any(marker == "APP11" and body.startswith(SIGNATURE) for marker, body in pil.applist)


def test_write_face_errors(tmp_path: Path, face: Face) -> None:
    image, record = face
    with pytest.raises(InputError, match="extension"):
        write_face(tmp_path / "face.webp", image, record)
    with pytest.raises(ValueError):
        write_face(tmp_path / "face.jpg", np.zeros((128, 128, 3), np.uint8), record)
    with pytest.raises(ValueError):
        write_face(tmp_path / "face.jpg", image.astype(np.float32), record)  # type: ignore[arg-type,unused-ignore]
    with pytest.raises(ValueError):
        write_face(tmp_path / "face.jpg", image[:, :, 0], record)
    with pytest.raises(ValueError):
        write_face(tmp_path / "face.jpg", image, record, jpeg_quality=0)
    assert list(tmp_path.iterdir()) == []


def test_list_face_files_natural_order(tmp_path: Path) -> None:
    for name in ("10_0.jpg", "2_0.jpg", "2_1.PNG", "1_0.jpeg", "a.txt", ".hidden.jpg", "x.webp"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "0_0.jpg").write_bytes(b"")
    (tmp_path / "dir.jpg").mkdir()
    assert [p.name for p in list_face_files(tmp_path)] == ["1_0.jpeg", "2_0.jpg", "2_1.PNG", "10_0.jpg"]
    with pytest.raises(InputError, match="not found"):
        list_face_files(tmp_path / "nope")
    with pytest.raises(InputError, match="not a folder"):
        list_face_files(tmp_path / "a.txt")


def test_scan_faces_sorts_good_foreign_invalid(tmp_path: Path, face: Face) -> None:
    image, record = face
    write_face(tmp_path / "10_0.jpg", image, record)
    second = record.model_copy(update={"face_index": 1})
    write_face(tmp_path / "2_1.png", image, second)
    assert cv2.imwrite(str(tmp_path / "frame.jpg"), image)
    (tmp_path / "broken.jpg").write_bytes((tmp_path / "10_0.jpg").read_bytes()[:500])
    (tmp_path / "sub").mkdir()
    write_face(tmp_path / "sub" / "ignored.jpg", image, record)
    scan = scan_faces(tmp_path)
    assert isinstance(scan, FaceScan)
    assert [(p.name, r) for p, r in scan.faces] == [("2_1.png", second), ("10_0.jpg", record)]
    assert [p.name for p in scan.foreign] == ["frame.jpg"]
    assert [p.name for p, _ in scan.invalid] == ["broken.jpg"]
    assert "truncated" in scan.invalid[0][1]
    with pytest.raises(InputError):
        scan_faces(tmp_path / "missing")

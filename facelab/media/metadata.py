"""Embed a JSON object inside JPEG or PNG bytes, and read it back, without decoding any pixels.

JPEG: the UTF-8 JSON is split over one or more APP11 (0xFFEB) segments. Each segment's payload is
``SIGNATURE`` (b"facelab\\0") + chunk index (2 bytes, big-endian) + chunk count (2 bytes) + data, so a
payload of any size fits despite the 64 KB segment limit. The segments are placed right after SOI,
after any leading APP0 (JFIF) / APP1 (Exif) segments, which those standards require to come first.

PNG: one uncompressed iTXt chunk with keyword ``facelab``, placed before the first IDAT.

Re-embedding replaces earlier facelab metadata; every other byte of the file is kept verbatim.
Parsing is defensive: on arbitrary bytes the readers return None (no facelab metadata, or not a JPEG or
PNG at all) or raise MetadataError (a malformed container or payload), nothing else. Nothing in a file
is ever executed: the payload is only decoded as UTF-8 and parsed with ``json.loads``.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any, Literal

from facelab.core.errors import MetadataError

ImageKind = Literal["jpg", "png"]

SIGNATURE = b"facelab\x00"
PNG_KEYWORD = b"facelab"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_APP11 = 0xEB
_SOS = 0xDA
_EOI = 0xD9
_SOI = 0xD8
_SEGMENT_MAX = 0xFFFF - 2  # a segment's payload after its 2-byte length field
_CHUNK_HEADER = len(SIGNATURE) + 4
_CHUNK_DATA_MAX = _SEGMENT_MAX - _CHUNK_HEADER
_CHUNK_COUNT_MAX = 0xFFFF
# SOFn markers carrying the frame size (C4 = DHT, C8 = JPG extension, CC = DAC are not frames).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

_PNG_CHUNK_MAX = 0x7FFFFFFF
_INFLATE_MAX = 64 * 1024 * 1024  # refuse compressed iTXt that would inflate beyond this


def detect_format(data: bytes) -> ImageKind | None:
    """Return "jpg" or "png" from the leading bytes, None for anything else."""
    if data.startswith(_JPEG_SOI):
        return "jpg"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    return None


def embed_json(data: bytes, payload: dict[str, Any]) -> bytes:
    """Return ``data`` (JPEG or PNG bytes) with ``payload`` embedded, replacing earlier facelab metadata.

    Raises ValueError when ``data`` is neither JPEG nor PNG or the payload is not JSON-serialisable
    (NaN and infinity included), MetadataError when the container structure is malformed.
    """
    if not isinstance(payload, dict):
        raise ValueError(f"payload must be a dict, got {type(payload).__name__}")
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    raw = text.encode("utf-8")
    kind = detect_format(data)
    if kind == "jpg":
        return _jpeg_rebuild(data, raw)
    if kind == "png":
        return _png_rebuild(data, raw)
    raise ValueError("cannot embed metadata: not a JPEG or PNG image")


def extract_json(data: bytes) -> dict[str, Any] | None:
    """The embedded JSON object; None when ``data`` holds no facelab metadata or is not JPEG/PNG.

    Raises MetadataError for a malformed container (truncated segment or chunk, bad chunk sequence,
    CRC mismatch) or payload (invalid UTF-8, invalid JSON, JSON that is not an object).
    """
    kind = detect_format(data)
    if kind == "jpg":
        raw = _jpeg_extract(data)
    elif kind == "png":
        raw = _png_extract(data)
    else:
        return None
    if raw is None:
        return None
    return _decode_payload(raw)


def strip_json(data: bytes) -> bytes:
    """``data`` with every facelab metadata segment/chunk removed (the bytes as they were before embedding).

    Bytes that are neither JPEG nor PNG are returned unchanged.
    """
    kind = detect_format(data)
    if kind == "jpg":
        return _jpeg_rebuild(data, None)
    if kind == "png":
        return _png_rebuild(data, None)
    return data


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the JPEG frame header or PNG IHDR; None when unknown or not JPEG/PNG.

    Raises MetadataError when the container structure is malformed.
    """
    kind = detect_format(data)
    if kind == "jpg":
        layout = _jpeg_layout(data)
        for seg in layout.segments:
            if seg.marker in _SOF_MARKERS and seg.end - seg.body >= 5:
                height = int.from_bytes(data[seg.body + 1 : seg.body + 3], "big")
                width = int.from_bytes(data[seg.body + 3 : seg.body + 5], "big")
                return width, height
        return None
    if kind == "png":
        chunks = _png_chunks(data)
        first = chunks[0]
        if first.ctype == b"IHDR" and first.end - first.body >= 12:
            width = int.from_bytes(data[first.body : first.body + 4], "big")
            height = int.from_bytes(data[first.body + 4 : first.body + 8], "big")
            return width, height
        return None
    return None


def check_complete(data: bytes) -> None:
    """Raise MetadataError when a JPEG or PNG file is cut short (e.g. an interrupted copy).

    JPEG: the header must reach SOS and an EOI marker must follow the scan data (inside entropy-coded
    data 0xFF is always stuffed, so FF D9 only occurs as a real marker). PNG: the chunks must reach IEND.
    Bytes that are neither JPEG nor PNG are not checked.
    """
    kind = detect_format(data)
    if kind == "jpg":
        layout = _jpeg_layout(data)
        if layout.stop_marker != _SOS:
            raise MetadataError("malformed JPEG: no image data (EOI before SOS)")
        if data.find(_JPEG_EOI, layout.stop + 2) < 0:
            raise MetadataError("truncated JPEG: the image data has no end marker")
    elif kind == "png":
        _png_chunks(data)


def jpeg_segments(data: bytes, marker: int) -> list[tuple[int, int, int]]:
    """(start, body, end) offsets of each JPEG header segment with ``marker`` (0xEF: APP15), in file order.

    ``body`` is the payload after the length field. Raises MetadataError when the header is malformed.
    """
    return [(s.start, s.body, s.end) for s in _jpeg_layout(data).segments if s.marker == marker]


def png_chunks(data: bytes, ctype: bytes) -> list[tuple[int, int, int]]:
    """(start, body, end) offsets of each PNG chunk of type ``ctype``; the chunk data is ``data[body:end - 4]``
    and its CRC the last 4 bytes. Raises MetadataError when the chunk structure is malformed or cut short."""
    return [(c.start, c.body, c.end) for c in _png_chunks(data) if c.ctype == ctype]


# ----------------------------------------------------------------------------------------------------
# payload


def _decode_payload(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetadataError(f"metadata is not valid UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MetadataError(f"metadata is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except (ValueError, RecursionError) as exc:
        raise MetadataError(f"metadata is not valid JSON: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise MetadataError(f"metadata is JSON {type(obj).__name__}, expected an object")
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


# ----------------------------------------------------------------------------------------------------
# JPEG


@dataclass(frozen=True, slots=True)
class _Segment:
    marker: int
    start: int  # offset of the marker's first 0xFF (fill bytes included)
    body: int  # offset of the payload (after the length field); == end for standalone markers
    end: int  # offset just past the segment


@dataclass(frozen=True, slots=True)
class _JpegLayout:
    segments: list[_Segment]
    stop: int  # offset of the SOS or EOI marker that ends the header (its first 0xFF)
    stop_marker: int


def _jpeg_layout(data: bytes) -> _JpegLayout:
    """Walk the marker segments after SOI up to SOS (or EOI). Raises MetadataError when malformed."""
    n = len(data)
    pos = 2
    segments: list[_Segment] = []
    while True:
        if pos >= n:
            raise MetadataError("truncated JPEG: the file ends before the image data")
        if data[pos] != 0xFF:
            raise MetadataError(f"malformed JPEG: expected a marker at offset {pos}")
        start = pos
        while pos < n and data[pos] == 0xFF:  # 0xFF fill bytes may precede any marker
            pos += 1
        if pos >= n:
            raise MetadataError("truncated JPEG: the file ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker == 0x00:
            raise MetadataError(f"malformed JPEG: stuffed byte outside image data at offset {start}")
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: standalone, no length
            segments.append(_Segment(marker, start, pos, pos))
            continue
        if marker == _SOI:
            raise MetadataError(f"malformed JPEG: unexpected SOI marker at offset {start}")
        if marker in (_SOS, _EOI):
            return _JpegLayout(segments, start, marker)
        if pos + 2 > n:
            raise MetadataError("truncated JPEG: the file ends inside a segment header")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            raise MetadataError(f"malformed JPEG: segment length {length} at offset {start}")
        end = pos + length
        if end > n:
            raise MetadataError(f"truncated JPEG: segment 0xFF{marker:02X} at offset {start} is cut short")
        segments.append(_Segment(marker, start, pos + 2, end))
        pos = end


def _is_facelab_segment(data: bytes, seg: _Segment) -> bool:
    return seg.marker == _APP11 and data.startswith(SIGNATURE, seg.body, seg.end)


def _jpeg_extract(data: bytes) -> bytes | None:
    layout = _jpeg_layout(data)
    chunks = [data[s.body + len(SIGNATURE) : s.end] for s in layout.segments if _is_facelab_segment(data, s)]
    if not chunks:
        return None
    parts: list[bytes] = []
    count = -1
    for i, chunk in enumerate(chunks):
        if len(chunk) < 4:
            raise MetadataError("malformed metadata: facelab JPEG segment too short")
        index = int.from_bytes(chunk[0:2], "big")
        this_count = int.from_bytes(chunk[2:4], "big")
        if i == 0:
            count = this_count
            if count != len(chunks):
                raise MetadataError(
                    f"malformed metadata: {len(chunks)} facelab JPEG segment(s) found, header says {count}"
                )
        if index != i or this_count != count:
            raise MetadataError(
                f"malformed metadata: facelab JPEG segment {i} is labelled {index}/{this_count}"
                f" (expected {i}/{count})"
            )
        parts.append(chunk[4:])
    return b"".join(parts)


def _jpeg_segments_for(raw: bytes) -> bytes:
    count = max(1, -(-len(raw) // _CHUNK_DATA_MAX))
    if count > _CHUNK_COUNT_MAX:
        raise ValueError(f"metadata too large to embed in a JPEG ({len(raw)} bytes)")
    out = bytearray()
    for index in range(count):
        piece = raw[index * _CHUNK_DATA_MAX : (index + 1) * _CHUNK_DATA_MAX]
        body = SIGNATURE + index.to_bytes(2, "big") + count.to_bytes(2, "big") + piece
        out += bytes((0xFF, _APP11)) + (len(body) + 2).to_bytes(2, "big") + body
    return bytes(out)


def _jpeg_rebuild(data: bytes, raw: bytes | None) -> bytes:
    """Drop facelab segments; insert new ones (if ``raw``) after the leading APP0/APP1 segments."""
    layout = _jpeg_layout(data)
    insert_at = 2
    for seg in layout.segments:
        if seg.marker not in (0xE0, 0xE1) and not _is_facelab_segment(data, seg):
            break
        if not _is_facelab_segment(data, seg):
            insert_at = seg.end
    new = b"" if raw is None else _jpeg_segments_for(raw)
    out = bytearray(data[:2])
    pos = 2
    if insert_at == 2:
        out += new
    for seg in layout.segments:
        if _is_facelab_segment(data, seg):
            out += data[pos : seg.start]
            pos = seg.end
        if seg.end == insert_at:
            out += data[pos : seg.end]
            pos = seg.end
            out += new
    out += data[pos:]
    return bytes(out)


# ----------------------------------------------------------------------------------------------------
# PNG


@dataclass(frozen=True, slots=True)
class _Chunk:
    ctype: bytes
    start: int  # offset of the length field
    body: int  # offset of the chunk data
    end: int  # offset just past the CRC


def _png_chunks(data: bytes) -> list[_Chunk]:
    """Walk the chunks from the signature to IEND. Raises MetadataError when malformed or cut short."""
    n = len(data)
    pos = len(PNG_SIGNATURE)
    chunks: list[_Chunk] = []
    while True:
        if pos + 12 > n:
            raise MetadataError("truncated PNG: the file ends before the IEND chunk")
        length = int.from_bytes(data[pos : pos + 4], "big")
        if length > _PNG_CHUNK_MAX:
            raise MetadataError(f"malformed PNG: chunk length {length} at offset {pos}")
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n:
            raise MetadataError(f"truncated PNG: chunk {ctype!r} at offset {pos} is cut short")
        chunks.append(_Chunk(ctype, pos, pos + 8, end))
        pos = end
        if ctype == b"IEND":
            return chunks


def _is_facelab_chunk(data: bytes, chunk: _Chunk) -> bool:
    return chunk.ctype == b"iTXt" and data.startswith(PNG_KEYWORD + b"\x00", chunk.body, chunk.end - 4)


def _png_extract(data: bytes) -> bytes | None:
    ours = [c for c in _png_chunks(data) if _is_facelab_chunk(data, c)]
    if not ours:
        return None
    if len(ours) > 1:
        raise MetadataError(f"malformed metadata: {len(ours)} facelab iTXt chunks in one PNG")
    chunk = ours[0]
    body = data[chunk.body : chunk.end - 4]
    crc = int.from_bytes(data[chunk.end - 4 : chunk.end], "big")
    if zlib.crc32(chunk.ctype + body) != crc:
        raise MetadataError("malformed metadata: CRC mismatch in the facelab iTXt chunk")
    rest = body[len(PNG_KEYWORD) + 1 :]
    if len(rest) < 2:
        raise MetadataError("malformed metadata: facelab iTXt chunk too short")
    compressed, method = rest[0], rest[1]
    lang_end = rest.find(b"\x00", 2)
    key_end = rest.find(b"\x00", lang_end + 1) if lang_end >= 0 else -1
    if key_end < 0:
        raise MetadataError("malformed metadata: facelab iTXt chunk header is incomplete")
    text = rest[key_end + 1 :]
    if compressed == 0:
        return text
    if compressed == 1 and method == 0:
        return _inflate(text)
    raise MetadataError(f"malformed metadata: unknown iTXt compression {compressed}/{method}")


def _inflate(blob: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(blob, _INFLATE_MAX)
    except zlib.error as exc:
        raise MetadataError(f"malformed metadata: bad compressed iTXt data ({exc})") from None
    if inflater.unconsumed_tail:
        raise MetadataError("malformed metadata: compressed iTXt data is too large")
    if not inflater.eof:
        raise MetadataError("malformed metadata: compressed iTXt data is truncated")
    return out


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    if len(body) > _PNG_CHUNK_MAX:
        raise ValueError(f"metadata too large to embed in a PNG ({len(body)} bytes)")
    crc = zlib.crc32(ctype + body)
    return len(body).to_bytes(4, "big") + ctype + body + crc.to_bytes(4, "big")


def _png_rebuild(data: bytes, raw: bytes | None) -> bytes:
    chunks = _png_chunks(data)
    new = b""
    if raw is not None:
        # keyword \0, compression flag 0, method 0, empty language tag \0, empty translated keyword \0
        new = _png_chunk(b"iTXt", PNG_KEYWORD + b"\x00\x00\x00\x00\x00" + raw)
        if not any(c.ctype == b"IDAT" for c in chunks):
            raise MetadataError("malformed PNG: no IDAT chunk")
    out = bytearray(data[: len(PNG_SIGNATURE)])
    inserted = False
    for chunk in chunks:
        if _is_facelab_chunk(data, chunk):
            continue
        if chunk.ctype == b"IDAT" and not inserted:
            out += new
            inserted = True
        out += data[chunk.start : chunk.end]
    out += data[chunks[-1].end :]
    return bytes(out)

"""PNG as facelab writes it, and a fast reader for that layout (ISA-L deflate, numpy filters).

Written files are ordinary 8-bit grey or RGB PNGs that every viewer opens. Every row uses the "up"
filter (the row minus the row above: on video frames as small as the adaptive filters, and vectorised as
one subtraction), compressed by ISA-L's deflate at level 1, which is faster than zlib's fastest level for
a file no larger (figures: docs/architecture.md, Measurements).

`decode_png` reads PNGs whose rows all use the "none" or "up" filter (what facelab writes), faster than
OpenCV, and returns None for any other layout so the caller falls back to OpenCV: it never guesses.
Chunk CRCs and the zlib checksum are verified.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from isal import isal_zlib

from facelab.core.types import U8

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)
_CHANNELS = {v: k for k, v in _COLOUR_TYPES.items()}
_FILTER_NONE, _FILTER_UP = 0, 2
MAX_PIXELS = 1 << 27  # larger images (beyond 11,585 x 11,585) are left to OpenCV


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(image: U8, level: int = 1) -> bytes:
    """An 8-bit grey (H x W), RGB or RGBA (H x W x 3|4) image as PNG bytes (channels in RGB order)."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or img.size == 0:
        raise ValueError(f"expected a non-empty uint8 H x W (x 3|4) image, got {img.dtype} {img.shape}")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels not in _COLOUR_TYPES:
        raise ValueError(f"PNG needs 1, 3 or 4 channels, got {channels}")
    h, w = img.shape[:2]
    rows = img.reshape(h, w * channels)
    filtered = np.empty((h, w * channels + 1), dtype=np.uint8)
    filtered[:, 0] = _FILTER_UP  # the row above the first is zeros, so row 0 is stored as is
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    return b"".join((SIGNATURE, _chunk(b"IHDR", header),
                     _chunk(b"IDAT", isal_zlib.compress(filtered.data, level)), _chunk(b"IEND", b"")))


def decode_png(data: bytes) -> U8 | None:
    """The image of PNG bytes facelab's fast path can read (8-bit grey/RGB/RGBA, not interlaced, rows
    filtered "none" or "up"), as H x W or H x W x C in RGB order; None for any other PNG or for damaged data
    (the caller then asks OpenCV, which reports what is wrong)."""
    if not data.startswith(SIGNATURE):
        return None
    view = memoryview(data)
    pos = len(SIGNATURE)
    header: tuple[int, ...] | None = None
    idat: list[memoryview] = []
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = bytes(view[pos + 4:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            return None
        body = view[pos + 8:pos + 8 + length]
        if kind in (b"IHDR", b"IDAT"):
            (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
            if zlib.crc32(body, zlib.crc32(kind)) != crc:
                return None
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        elif kind in (b"PLTE", b"tRNS", b"eXIf", b"gAMA", b"iCCP", b"sBIT", b"cHRM", b"sRGB"):
            return None  # colour management or orientation the fast path does not apply
        pos = end
    if header is None or not idat:
        return None
    w, h, depth, colour, _compression, _filter, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace != 0 or w == 0 or h == 0:
        return None
    if w * h > MAX_PIXELS:
        return None  # not inflated here: OpenCV applies its own limit
    channels = _CHANNELS[colour]
    stride = w * channels
    expected = h * (stride + 1)
    try:  # never inflate past what the header claims (a small file can inflate to gigabytes)
        inflater = isal_zlib.decompressobj()
        raw = inflater.decompress(b"".join(idat), expected + 1)
    except Exception:  # isal_zlib.error (IsalError) on damaged data: let OpenCV report it
        return None
    if len(raw) != expected or not inflater.eof:  # eof: the stream ended and its checksum was verified
        return None
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, stride + 1)
    kinds = rows[:, 0]
    if np.any((kinds != _FILTER_NONE) & (kinds != _FILTER_UP)):
        return None
    out = np.empty((h, stride), dtype=np.uint8)
    out[0] = rows[0, 1:]  # "up" on the first row adds the zeros above it
    ups = (kinds == _FILTER_UP).tolist()
    for y in range(1, h):  # row by row, vectorised along the row: faster than a cumsum down the columns
        if ups[y]:
            np.add(out[y - 1], rows[y, 1:], out=out[y])
        else:
            out[y] = rows[y, 1:]
    return out.reshape(h, w) if channels == 1 else out.reshape(h, w, channels)

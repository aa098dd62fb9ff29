"""Where DeepFaceLab keeps a face's metadata inside the image, and the image without it.

Layout (from DeepFaceLab's DFLIMG/DFLJPG.py and the older utils/DFLPNG.py, read, not copied):

- JPEG: one APP15 segment (marker 0xFFEF) whose payload is ``pickle.dumps(dict)``, written after the
  last APPn segment, before the quantisation tables. One segment, so the pickle is under 64 KB.
- PNG: one ancillary chunk of type ``fcWp`` whose data is ``pickle.dumps(dict)``, written just before
  IEND, with the usual CRC over type and data.

The payload is returned as bytes; it is decoded by ``facelab.faceset.dfl.pickle_data``, never unpickled.
"""

from __future__ import annotations

import zlib

from facelab.core.errors import MetadataError
from facelab.media.metadata import detect_format, jpeg_segments, png_chunks

APP15 = 0xEF
PNG_CHUNK = b"fcWp"
_PICKLE_START = 0x80  # PROTO opcode: DFL's pickles are protocol 2 or higher


def dfl_payload(data: bytes) -> bytes | None:
    """The pickled DFL metadata of a face image; None when the image has none (or is not JPEG/PNG).

    Raises MetadataError for a malformed container, more than one DFL segment/chunk, or a PNG CRC mismatch.
    """
    spans = _spans(data)
    if not spans:
        return None
    if len(spans) > 1:
        raise MetadataError(f"{len(spans)} DFL metadata blocks in one image (expected one)")
    kind = detect_format(data)
    _start, body, end = spans[0]
    if kind == "png":
        payload = data[body : end - 4]
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(PNG_CHUNK + payload) != crc:
            raise MetadataError("CRC mismatch in the DFL fcWp chunk")
    else:
        payload = data[body:end]
    if not payload or payload[0] != _PICKLE_START:
        return None  # an APP15 some other program wrote: not DFL's
    return payload


def strip_dfl(data: bytes) -> bytes:
    """``data`` without DFL's metadata segment/chunk; every other byte as it was."""
    out = bytearray()
    pos = 0
    for start, _body, end in _spans(data):
        out += data[pos:start]
        pos = end
    out += data[pos:]
    return bytes(out)


def _spans(data: bytes) -> list[tuple[int, int, int]]:
    kind = detect_format(data)
    if kind == "jpg":
        return jpeg_segments(data, APP15)
    if kind == "png":
        return png_chunks(data, PNG_CHUNK)
    return []

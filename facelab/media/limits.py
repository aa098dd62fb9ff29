"""The largest picture facelab agrees to decode: a cap on the pixels an image or video header may claim.

A PNG or JPEG header is a few bytes, yet it can claim 60,000 x 60,000 pixels (10 GB of RGB): decoding it
would exhaust memory long before failing (a "decompression bomb"). Every image and video facelab reads
is checked against this cap from its header, before a single pixel is decoded, and refused with a
one-line InputError when it claims more.

The cap is MAX_PIXELS_DEFAULT (16384 x 16384: twice 8K's 7680 x 4320 in each direction, with room for
panoramas); set the environment variable FACELAB_MAX_PIXELS (a pixel count, e.g. 1000000000) to change it.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from facelab.core.errors import InputError, MetadataError
from facelab.core.types import U8
from facelab.media.metadata import image_size

MAX_PIXELS_ENV = "FACELAB_MAX_PIXELS"
MAX_PIXELS_DEFAULT = 16384 * 16384


def max_pixels() -> int:
    """The cap in pixels (width x height): FACELAB_MAX_PIXELS when set, else MAX_PIXELS_DEFAULT."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return MAX_PIXELS_DEFAULT
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise InputError(f"{MAX_PIXELS_ENV}={raw!r} must be a positive whole number of pixels")
    return value


def check_pixels(width: int, height: int, what: str, path: Path | str | None = None) -> None:
    """Raise InputError when ``what`` (e.g. "image", "video frame") of width x height is over the cap."""
    cap = max_pixels()
    if width * height > cap:
        raise InputError(
            f"{what} claims {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), over the limit "
            f"of {cap / 1e6:.0f} megapixels; refused before decoding (set {MAX_PIXELS_ENV} to raise the limit)",
            path,
        )


def check_image_bytes(data: bytes, path: Path | str | None = None) -> None:
    """Check the size a PNG or JPEG header claims against the cap (other formats: see decode_image)."""
    try:
        size = image_size(data)
    except MetadataError:
        return  # a malformed header: the decoder reports what is wrong (it allocates nothing for it)
    if size is not None:
        check_pixels(size[0], size[1], "image", path)


def decode_image(data: bytes, flags: int, path: Path | str | None = None) -> U8 | None:
    """cv2.imdecode behind the pixel cap: None when OpenCV cannot decode the bytes, InputError when the
    header claims too many pixels. Formats other than PNG/JPEG are held to OpenCV's own cap of 2^30 pixels,
    whose failure is turned into the same one-line error instead of a cv2.error. flags: an 8-bit mode
    (cv2.IMREAD_COLOR or cv2.IMREAD_GRAYSCALE)."""
    check_image_bytes(data, path)
    try:
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as err:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(err):
            raise InputError("image claims more pixels than OpenCV decodes (2^30); refused", path) from None
        return None
    return None if decoded is None else np.asarray(decoded, dtype=np.uint8)

"""facelab.media.png: files every decoder reads, and a fast reader that never guesses."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facelab.core.errors import InputError
from facelab.media.frames import encode_image, read_image_rgb
from facelab.media.png import decode_png, encode_png
from facelab.provenance.marker import marker_for

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "dst.mp4"


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A real video frame (RGB), with its gradients and noise."""
    import av

    with av.open(str(SAMPLE)) as c:
        for f in c.decode(video=0):
            return np.asarray(f.to_ndarray(format="rgb24"))
    raise AssertionError("no frame")


def _cv2_rgb(data: bytes, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    assert img is not None
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)


def test_round_trip_rgb_grey_rgba_through_opencv_and_fast_reader(frame: np.ndarray) -> None:
    rgba = np.dstack([frame, frame[..., 1]])
    for img in (frame, frame[..., 0].copy(), rgba, frame[:1, :1].copy(), frame[:, :7].copy()):
        data = encode_png(img)
        assert np.array_equal(_cv2_rgb(data), img)  # an ordinary PNG
        fast = decode_png(data)
        assert fast is not None and np.array_equal(fast, img)


def test_smaller_than_opencvs_fastest_png(frame: np.ndarray) -> None:
    ours = len(encode_png(frame))
    ok, theirs = cv2.imencode(".png", frame[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok and ours < 1.05 * len(theirs)


def test_fast_reader_declines_other_layouts(frame: np.ndarray, tmp_path: Path) -> None:
    # OpenCV's default (adaptive filters: sub, average, paeth) is not the fast path's layout ...
    ok, adaptive = cv2.imencode(".png", frame[..., ::-1])
    assert ok and decode_png(adaptive.tobytes()) is None
    # ... but read_image_rgb still reads it, through OpenCV
    path = tmp_path / "adaptive.png"
    path.write_bytes(adaptive.tobytes())
    assert np.array_equal(read_image_rgb(path), frame)
    ok16, sixteen = cv2.imencode(".png", frame.astype(np.uint16) * 257)
    assert ok16 and decode_png(sixteen.tobytes()) is None
    assert decode_png(b"not a png") is None


def test_damaged_files_are_refused_not_misread(frame: np.ndarray, tmp_path: Path) -> None:
    data = bytearray(encode_png(frame))
    idat = data.index(b"IDAT")
    flipped = bytearray(data)
    flipped[idat + 200] ^= 0x40  # inside the compressed pixels: the chunk CRC no longer matches
    assert decode_png(bytes(flipped)) is None
    for bad in (bytes(flipped), bytes(data[: len(data) // 2])):
        path = tmp_path / "bad.png"
        path.write_bytes(bad)
        with pytest.raises(InputError):
            read_image_rgb(path)


def test_metadata_chunks_keep_the_fast_path(frame: np.ndarray) -> None:
    """Merged frames carry the provenance record in a text chunk; they must still decode exactly."""
    tagged = marker_for("0123456789abcdef" * 4).tag(encode_image(frame))
    assert tagged != encode_image(frame)
    fast = decode_png(tagged)
    assert fast is not None and np.array_equal(fast, frame)

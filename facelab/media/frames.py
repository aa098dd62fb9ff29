"""Frame folders: a video's frames as numbered images (000000.png, ...) plus a video.json describing them.

extract_frames fills a folder from a video, resumably; the other helpers read a folder back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facelab.core.atomic import fsync_dir, remove_stale_temps, write_bytes_atomic, write_json_atomic
from facelab.core.choices import IMAGE_EXTENSIONS, IMAGE_FORMATS, ImageFormat
from facelab.core.errors import InputError
from facelab.core.types import Image
from facelab.media.limits import check_image_bytes, decode_image
from facelab.media.png import decode_png, encode_png
from facelab.media.video import count_at, fps_to_str, iter_frames, parse_fps, probe_video

FRAME_INFO_NAME = "video.json"
FRAME_INFO_SCHEMA = "facelab.video"
FRAME_INFO_VERSION = 1

# Written when an extraction starts and removed when it finishes, so that an interrupted run can be
# resumed (and a different extraction into the same folder refused) before video.json exists.
_PARTIAL_NAME = ".video.partial.json"

# The fields that identify an extraction: a folder is resumed only when all of them match.
_IDENTITY_KEYS = ("source", "width", "height", "fps_fraction", "format")

ProgressCallback = Callable[[int, int], None]
"""Called as progress(done, total) after each frame; total is an estimate until the last call."""


@dataclass(frozen=True)
class FrameFolderInfo:
    folder: Path
    source: Path
    width: int
    height: int
    fps: float
    fps_fraction: str
    source_fps: float
    frame_count: int
    has_audio: bool
    audio_codec: str | None
    format: str
    written: int
    """Frames written by this call."""
    skipped: int
    """Frames already present from an earlier (interrupted or complete) run."""


def frame_name(index: int, ext: str) -> str:
    """The file name of frame `index` (0-based): frame_name(7, "png") == "000007.png"."""
    if index < 0:
        raise ValueError(f"frame index must be >= 0, got {index}")
    return f"{index:06d}.{ext.lstrip('.').lower()}"


def _frame_sort_key(path: Path) -> tuple[int, int, str]:
    # Numeric order for numbered frames, so 1000000.png sorts after 999999.png.
    return (0, int(path.stem), path.name) if path.stem.isdigit() else (1, 0, path.name)


def _image_files(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]


def list_frames(folder: Path | str) -> list[Path]:
    """A folder's frame images (.png/.jpg/.jpeg) in frame order, ignoring other files and subfolders."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError("no such folder", folder)
    if not folder.is_dir():
        raise InputError("not a folder", folder)
    frames = sorted(_image_files(folder), key=_frame_sort_key)
    if not frames:
        raise InputError(f"no frame images ({', '.join(IMAGE_EXTENSIONS)}) in this folder", folder)
    return frames


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"unreadable {path.name}: {' '.join(str(err).split())}", path) from err


def _require_int(data: dict[str, Any], key: str, path: Path, minimum: int) -> None:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"invalid {path.name}: {key!r} must be an integer >= {minimum}, got {value!r}", path)


def read_frame_info(folder: Path | str) -> dict[str, Any] | None:
    """The folder's validated video.json, or None when it has none."""
    path = Path(folder) / FRAME_INFO_NAME
    if not path.is_file():
        return None
    data = _load_json(path)
    if not isinstance(data, dict):
        raise InputError(f"invalid {path.name}: expected a JSON object", path)
    if data.get("schema") != FRAME_INFO_SCHEMA:
        raise InputError(
            f"not a facelab frame-folder description (schema {data.get('schema')!r}, expected {FRAME_INFO_SCHEMA!r})",
            path,
        )
    if data.get("version") != FRAME_INFO_VERSION:
        raise InputError(
            f"unsupported {path.name} version {data.get('version')!r} "
            f"(this facelab reads version {FRAME_INFO_VERSION})",
            path,
        )
    for key in ("width", "height"):
        _require_int(data, key, path, 1)
    _require_int(data, "frame_count", path, 0)
    if data.get("format") not in IMAGE_FORMATS:
        raise InputError(f"invalid {path.name}: 'format' must be one of {', '.join(IMAGE_FORMATS)}", path)
    fraction = data.get("fps_fraction")
    if not isinstance(fraction, str):
        raise InputError(f"invalid {path.name}: 'fps_fraction' must be a string like \"30000/1001\"", path)
    try:
        parse_fps(fraction)
    except InputError as err:
        raise InputError(f"invalid {path.name}: 'fps_fraction' {fraction!r} is not a frame rate", path) from err
    return data


def read_image_rgb(path: Path | str) -> Image:
    """Read an image file as an RGB uint8 H x W x 3 array (PNGs in facelab's own layout by the fast
    reader of facelab.media.png, anything else by OpenCV)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise InputError("no such file", path) from None
    except OSError as err:
        raise InputError(f"cannot read the file: {err.strerror}", path) from None
    check_image_bytes(data, path)  # a header claiming a huge size is refused before decoding
    fast = decode_png(data)
    if fast is not None and fast.ndim == 3 and fast.shape[2] == 3:
        return fast
    bgr = decode_image(data, cv2.IMREAD_COLOR, path)
    if bgr is None:
        raise InputError("unreadable image", path)
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def encode_image(rgb: Image, fmt: ImageFormat = "png", jpeg_quality: int = 95) -> bytes:
    """An RGB (H x W x 3) or grey (H x W) uint8 image encoded as PNG (facelab.media.png: "up" filter,
    ISA-L deflate: faster than OpenCV's fastest PNG, for a smaller file) or JPEG (OpenCV)."""
    if fmt == "png":
        return encode_png(rgb)
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode(f".{fmt}", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise InputError(f"OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} image as {fmt}")
    return np.asarray(buf).tobytes()


def _check_same_extraction(found: dict[str, Any], wanted: dict[str, Any], folder: Path) -> None:
    if any(found.get(key) != wanted[key] for key in _IDENTITY_KEYS):
        raise InputError(
            f"folder already holds frames of another extraction ({found.get('source')}, "
            f"{found.get('fps_fraction')} fps, {found.get('format')}); "
            "extract into an empty folder or delete this one",
            folder,
        )


def extract_frames(
    video: Path | str,
    out_dir: Path | str,
    fps: float | str | Fraction | None = None,
    fmt: ImageFormat = "png",
    jpeg_quality: int = 95,
    progress: ProgressCallback | None = None,
) -> FrameFolderInfo:
    """Write a video's frames to out_dir as 000000.png, 000001.png, ... plus out_dir/video.json.

    With fps the video is resampled to that rate, else every frame is written. Each image is written
    atomically, so an interrupted run leaves only whole frames; running again with the same arguments
    keeps the frames already there and returns at once when the folder is complete.
    """
    video, out_dir = Path(video), Path(out_dir)
    if fmt not in IMAGE_FORMATS:
        raise InputError(f"unknown image format {fmt!r}: choose one of {', '.join(IMAGE_FORMATS)}")
    if not 1 <= jpeg_quality <= 100:
        raise InputError(f"JPEG quality must be between 1 and 100, got {jpeg_quality}")
    info = probe_video(video)
    source_fps = parse_fps(info.fps_fraction)
    out_fps = source_fps if fps is None else parse_fps(fps)
    identity: dict[str, Any] = {
        "source": str(video.resolve()),
        "width": info.width,
        "height": info.height,
        "fps_fraction": fps_to_str(out_fps),
        "format": fmt,
    }
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("not a folder", out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def result(meta: dict[str, Any], written: int, skipped: int) -> FrameFolderInfo:
        return FrameFolderInfo(
            folder=out_dir,
            source=video,
            width=meta["width"],
            height=meta["height"],
            fps=float(parse_fps(meta["fps_fraction"])),
            fps_fraction=meta["fps_fraction"],
            source_fps=info.fps,
            frame_count=meta["frame_count"],
            has_audio=info.has_audio,
            audio_codec=info.audio_codec,
            format=fmt,
            written=written,
            skipped=skipped,
        )

    existing = read_frame_info(out_dir)
    partial_path = out_dir / _PARTIAL_NAME
    if existing is not None:
        _check_same_extraction(existing, identity, out_dir)
        count = existing["frame_count"]
        if count > 0 and all((out_dir / frame_name(i, fmt)).is_file() for i in range(count)):
            if progress is not None:
                progress(count, count)
            return result(existing, written=0, skipped=count)
    elif partial_path.is_file():
        partial = _load_json(partial_path)
        _check_same_extraction(partial if isinstance(partial, dict) else {}, identity, out_dir)
    elif images := _image_files(out_dir):
        raise InputError(
            f"folder already holds {len(images)} images that are not from an extraction of this video; "
            "extract into an empty folder",
            out_dir,
        )
    remove_stale_temps(out_dir)  # what a killed run was writing
    write_json_atomic(partial_path, identity)

    total = count_at(info, None if fps is None else out_fps)
    written = skipped = count = 0
    for index, rgb in iter_frames(video, None if fps is None else out_fps):
        target = out_dir / frame_name(index, fmt)
        if target.is_file():
            skipped += 1
        else:
            write_bytes_atomic(target, encode_image(rgb, fmt, jpeg_quality))
            written += 1
        count = index + 1
        if progress is not None:
            progress(count, max(total, count))
    if count == 0:
        raise InputError("the video has no decodable frames", video)
    if progress is not None and total != count:
        progress(count, count)

    meta: dict[str, Any] = {
        "schema": FRAME_INFO_SCHEMA,
        "version": FRAME_INFO_VERSION,
        "source": identity["source"],
        "width": info.width,
        "height": info.height,
        "fps": float(out_fps),
        "fps_fraction": fps_to_str(out_fps),
        "source_fps": info.fps,
        "frame_count": count,
        "has_audio": info.has_audio,
        "audio_codec": info.audio_codec,
        "format": fmt,
    }
    write_json_atomic(out_dir / FRAME_INFO_NAME, meta)
    partial_path.unlink(missing_ok=True)
    fsync_dir(out_dir)
    return result(meta, written=written, skipped=skipped)

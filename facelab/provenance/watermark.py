"""An invisible, blind watermark for RGB frames: a 64-bit payload hidden in the luma of 8x8 DCT blocks.

Scheme ("facelab-dct-qim", version 1)
-------------------------------------
* The payload is 64 bits: a 16-bit facelab magic, the first 40 bits (10 hex digits) of the model id
  (a sha256 hex string) and an 8-bit CRC over those 56 bits. Only a decode whose magic and CRC both
  check out counts as a detection, so a random decode is a false positive with probability 2**-24.
* The frame's luma Y (BT.601 weights, as in YCrCb) is cut into 8x8 blocks from the top-left corner (the
  right/bottom remainder of a size that is not a multiple of 8 is left alone). In each block, five
  low/mid-frequency DCT coefficients are "slots"; each slot carries one payload bit by dithered
  quantisation index modulation (QIM): the coefficient is moved to the nearest point of the lattice
  ``dither + k * STEP`` (bit 0) or ``dither + (k + 1/2) * STEP`` (bit 1).
* Which bit a slot carries and its dither come from a keyed hash of the block's coordinates, so the
  layout does not depend on the frame size (a frame padded by a row or column still decodes). Blocks
  are grouped 8x8; within a group each coefficient position carries every one of the 64 bits exactly
  once (a keyed permutation per group), so every bit is spread evenly over the whole frame: a
  480x480 frame holds each bit about 280 times.
* The luma change is added equally to R, G and B, which changes Y by exactly that amount and leaves
  the chroma alone. Strength is the fraction of the way each coefficient moves towards its lattice
  point (distortion compensation); it is lowered further in flat blocks, where a change is easiest to
  see, so extraction needs neither the original nor the strength.
* Extraction gives each slot a soft value ``cos(2 * pi * (c - dither) / STEP)`` (+1: bit 0, -1: bit 1)
  and averages the slots of each bit; the average's sign is the bit, its magnitude the reliability.
  Soft values of several frames of one video are averaged again (``vote``).

Only the AC coefficients are used, so brightness offsets leave the mark intact; scaling, cropping and
rotation are not handled (re-encoding keeps a video's geometry).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from facelab.core.types import BoolArray, FloatArray, Image

SCHEME = "facelab-dct-qim"
SCHEME_VERSION = 1

PAYLOAD_BITS = 64
MAGIC = 0xFA1B
MAGIC_BITS = 16
MODEL_BITS = 40
CRC_BITS = 8
MODEL_HEX = MODEL_BITS // 4
PAYLOAD_MODEL_BITS = (MODEL_BITS, 24)  # the model-id lengths a payload may carry: this scheme's, syncmark v3's

MIN_SIDE = 128
BLOCK = 8
GROUP = 8  # blocks per group side: a group's 64 blocks carry each bit once per coefficient position
STEP = 24.0  # QIM lattice step, in orthonormal DCT units of 0..255 luma
DEFAULT_STRENGTH = 1.0
# (row, column) frequencies of the coefficients used in every block: low/mid frequencies survive
# H.264 and JPEG quantisation far better than high ones.
COEFFS: tuple[tuple[int, int], ...] = ((0, 2), (1, 1), (2, 0), (1, 2), (2, 1))
_KEY = 0x6661_6365_6C61_6221  # the fixed key seeding the bit layout and dithers

# Texture adaptation: blocks whose AC standard deviation is below FLAT_STD get FLAT_FACTOR of the
# strength, rising linearly to the full strength at TEXTURED_STD.
FLAT_STD = 2.0
TEXTURED_STD = 8.0
FLAT_FACTOR = 0.6

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)
_LUMA32 = _LUMA.astype(np.float32).reshape(1, 3)



# ----------------------------------------------------------------------------------------------------
# payload


@dataclass(frozen=True)
class PayloadInfo:
    valid: bool
    """True when the magic and the CRC both match."""
    model_prefix: str
    """The hex digits of model id the payload carries (10 in a 64-bit payload, 6 in a 48-bit one; meaningful only
    when valid)."""
    magic_ok: bool
    crc_ok: bool


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, initial value 0)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def model_prefix(model_id: str, digits: int = MODEL_HEX) -> str:
    """The first ``digits`` lowercase hex digits of a model id ("sha256:" prefix allowed): what a payload carries
    (10 in this scheme's 64 bits, 6 in syncmark version 3's 48)."""
    text = model_id.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    prefix = text[:MODEL_HEX]
    if len(prefix) != MODEL_HEX or not re.fullmatch(r"[0-9a-f]+", prefix):
        raise ValueError(f"model id must start with {MODEL_HEX} hex digits (a sha256), got {model_id!r}")
    return prefix[:digits]


def _int_to_bits(value: int, count: int) -> list[bool]:
    return [bool((value >> (count - 1 - i)) & 1) for i in range(count)]


def _bits_to_int(bits: Sequence[bool] | BoolArray) -> int:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bool(bit))
    return value


def make_payload(model_id: str, model_bits: int = MODEL_BITS) -> BoolArray:
    """The payload bits (MSB first): magic, the first ``model_bits`` bits of the model id (40 here: 64 bits in
    all; syncmark version 3 carries 24: 48 bits), CRC-8 of both."""
    if model_bits not in PAYLOAD_MODEL_BITS:
        raise ValueError(f"model_bits must be one of {PAYLOAD_MODEL_BITS}, got {model_bits}")
    body = (MAGIC << model_bits) | int(model_prefix(model_id, model_bits // 4), 16)
    crc = crc8(body.to_bytes((MAGIC_BITS + model_bits) // 8, "big"))
    bits = _int_to_bits(body, MAGIC_BITS + model_bits) + _int_to_bits(crc, CRC_BITS)
    return np.array(bits, dtype=np.bool_)


def parse_payload(bits: Sequence[bool] | BoolArray) -> PayloadInfo:
    """Check the magic and CRC of decoded payload bits (64, or 48 for syncmark version 3) and read the model-id
    prefix."""
    arr = np.asarray(bits, dtype=np.bool_).reshape(-1)
    model_bits = arr.size - MAGIC_BITS - CRC_BITS
    if model_bits not in PAYLOAD_MODEL_BITS:
        sizes = ", ".join(str(MAGIC_BITS + m + CRC_BITS) for m in PAYLOAD_MODEL_BITS)
        raise ValueError(f"expected {sizes} bits, got {arr.size}")
    magic = _bits_to_int(arr[:MAGIC_BITS])
    body = _bits_to_int(arr[: MAGIC_BITS + model_bits])
    model = _bits_to_int(arr[MAGIC_BITS : MAGIC_BITS + model_bits])
    crc = _bits_to_int(arr[MAGIC_BITS + model_bits :])
    magic_ok = magic == MAGIC
    crc_ok = crc8(body.to_bytes((MAGIC_BITS + model_bits) // 8, "big")) == crc
    return PayloadInfo(
        valid=magic_ok and crc_ok, model_prefix=f"{model:0{model_bits // 4}x}", magic_ok=magic_ok, crc_ok=crc_ok
    )


def payload_hex(bits: Sequence[bool] | BoolArray) -> str:
    """The bits as hex digits (16 for 64 bits, 12 for 48)."""
    arr = np.asarray(bits, dtype=np.bool_).reshape(-1)
    return f"{_bits_to_int(arr):0{-(-arr.size // 4)}x}"


# ----------------------------------------------------------------------------------------------------
# layout


def _dct_matrix(n: int) -> FloatArray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    mat: FloatArray = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    mat[0, :] = np.sqrt(1.0 / n)
    return mat


_D = _dct_matrix(BLOCK)
# For each used coefficient (u, v), its 8x8 basis image: the pixel change of a unit coefficient change.
_BASIS = np.stack([np.outer(_D[u], _D[v]) for u, v in COEFFS])  # (K, 8, 8)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser: a well-mixed 64-bit hash of each element."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
        return out


def _hash(*parts: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    h = np.full(np.broadcast_shapes(*(p.shape for p in parts)), _KEY, dtype=np.uint64)
    for p in parts:
        h = _mix(h ^ p.astype(np.uint64))
    return h


@lru_cache(maxsize=8)
def _layout(nby: int, nbx: int) -> tuple[npt.NDArray[np.intp], FloatArray]:
    """For a grid of nby x nbx blocks: the bit index (nby, nbx, K) and dither (nby, nbx, K) of every slot.

    Both depend only on a block's coordinates, never on the grid size.
    """
    ngy, ngx = -(-nby // GROUP), -(-nbx // GROUP)
    n_coeffs = len(COEFFS)
    gy = np.arange(ngy, dtype=np.int64)[:, None, None, None]
    gx = np.arange(ngx, dtype=np.int64)[None, :, None, None]
    pos = np.arange(GROUP * GROUP, dtype=np.int64)[None, None, :, None]
    k = np.arange(n_coeffs, dtype=np.int64)[None, None, None, :]
    # A keyed permutation of the 64 bits over the 64 blocks of each group, per coefficient position.
    perm = np.argsort(_hash(gy, gx, pos, k), axis=2).astype(np.intp)  # (ngy, ngx, 64, K)
    perm = perm.reshape(ngy, ngx, GROUP, GROUP, n_coeffs).transpose(0, 2, 1, 3, 4)
    bit_index = perm.reshape(ngy * GROUP, ngx * GROUP, n_coeffs)[:nby, :nbx]
    by = np.arange(nby, dtype=np.int64)[:, None, None]
    bx = np.arange(nbx, dtype=np.int64)[None, :, None]
    kk = np.arange(n_coeffs, dtype=np.int64)[None, None, :]
    h = _hash(by + np.int64(1 << 40), bx, kk)
    dither: FloatArray = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53) * STEP
    bit_index.setflags(write=False)
    dither.setflags(write=False)
    return np.ascontiguousarray(bit_index), dither


def check_embed_args(rgb: Image, payload_bits: Sequence[bool] | BoolArray, strength: float,
                     max_strength: float, n_bits: int = PAYLOAD_BITS) -> BoolArray:
    """The embedders' shared checks (frame shape and type, payload length, strength range): the bits as an array."""
    _check_frame(rgb)
    bits = np.asarray(payload_bits, dtype=np.bool_).reshape(-1)
    if bits.size != n_bits:
        raise ValueError(f"expected {n_bits} payload bits, got {bits.size}")
    if not 0.0 < strength <= max_strength:
        raise ValueError(f"strength must be in (0, {max_strength:g}], got {strength}")
    return bits


def _check_frame(rgb: Image) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB frame, got shape {getattr(rgb, 'shape', None)}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, got {rgb.dtype}")
    h, w = rgb.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(f"frame {w}x{h} is too small to carry a watermark (minimum {MIN_SIDE}x{MIN_SIDE})")


def _blocks_of(area_rgb: Image) -> FloatArray:
    """The luma of a block-aligned RGB area (a multiple of 8 on each side) as (nby, nbx, 8, 8) float blocks.

    Luma is computed in float32 by OpenCV (within 3e-5 of float64, far below the lattice step, for about
    half the time; see docs/architecture.md, Measurements), the DCT in float64."""
    h, w = area_rgb.shape[:2]
    nby, nbx = h // BLOCK, w // BLOCK
    y = cv2.transform(np.ascontiguousarray(area_rgb).astype(np.float32), _LUMA32)
    out: FloatArray = np.ascontiguousarray(y.reshape(nby, BLOCK, nbx, BLOCK).transpose(0, 2, 1, 3),
                                           dtype=np.float64)
    return out


def _luma_blocks(rgb: Image) -> tuple[FloatArray, int, int]:
    """The luma of the block-covered area as (nby, nbx, 8, 8) float blocks."""
    h, w = rgb.shape[:2]
    nby, nbx = h // BLOCK, w // BLOCK
    return _blocks_of(rgb[: nby * BLOCK, : nbx * BLOCK]), nby, nbx


def _coefficients(blocks: FloatArray) -> FloatArray:
    """The used DCT coefficients of every block: (nby, nbx, K)."""
    out: FloatArray = np.einsum("yxij,kij->yxk", blocks, _BASIS)  # einsum: no BLAS threads for small products
    return out


# ----------------------------------------------------------------------------------------------------
# embed / extract


def embed(rgb: Image, payload_bits: Sequence[bool] | BoolArray, strength: float = DEFAULT_STRENGTH,
          region: npt.NDArray[np.generic] | None = None, inplace: bool = False) -> Image:
    """Return a copy of the RGB uint8 frame carrying the 64 payload bits (``inplace``: the frame itself,
    changed).

    ``strength`` in (0, 1] is how far each coefficient moves towards its lattice point: 1 embeds fully,
    lower values trade robustness for invisibility. Extraction works the same whatever the strength.
    ``region`` (H x W, nonzero = may change): only 8x8 blocks lying wholly inside it are marked, and
    every pixel of the other blocks is left exactly as it was (merge marks only the swapped face, so the
    plate around it stays bit-exact). Extraction needs no region: unmarked blocks average out.
    """
    bits = check_embed_args(rgb, payload_bits, strength, 1.0)
    h, w = rgb.shape[:2]
    nby, nbx = h // BLOCK, w // BLOCK
    bit_index, dither = _layout(nby, nbx)
    # Only the blocks of the region's bounding box are transformed: merge marks a face, not the frame.
    by0, by1, bx0, bx1 = 0, nby, 0, nbx
    inside: BoolArray | None = None
    if region is not None:
        area_box = _blocks_within(region, nby, nbx)
        if area_box is None:
            return rgb if inplace else rgb.copy()
        by0, by1, bx0, bx1 = area_box
        inside = _block_region(np.asarray(region)[by0 * BLOCK:by1 * BLOCK, bx0 * BLOCK:bx1 * BLOCK],
                               by1 - by0, bx1 - bx0)
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        if rows.size == 0:
            return rgb if inplace else rgb.copy()
        inside = inside[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        by0, by1, bx0, bx1 = by0 + int(rows[0]), by0 + int(rows[-1]) + 1, bx0 + int(cols[0]), bx0 + int(cols[-1]) + 1
    y0, y1, x0, x1 = by0 * BLOCK, by1 * BLOCK, bx0 * BLOCK, bx1 * BLOCK
    blocks = _blocks_of(rgb[y0:y1, x0:x1])
    coeffs = _coefficients(blocks)
    offset = dither[by0:by1, bx0:bx1] + np.where(bits[bit_index[by0:by1, bx0:bx1]], STEP / 2.0, 0.0)
    target = np.round((coeffs - offset) / STEP) * STEP + offset
    # Texture adaptation: flat blocks move less of the way.
    ac_std = np.sqrt(np.maximum(blocks.var(axis=(2, 3)), 0.0))
    ramp = np.clip((ac_std - FLAT_STD) / (TEXTURED_STD - FLAT_STD), 0.0, 1.0)
    alpha = strength * (FLAT_FACTOR + (1.0 - FLAT_FACTOR) * ramp)
    if inside is not None:
        alpha = np.where(inside, alpha, 0.0)
    delta = (target - coeffs) * alpha[:, :, None]
    nyb, nxb = by1 - by0, bx1 - bx0
    dy_blocks = np.einsum("yxk,kij->yxij", delta, _BASIS)
    dy = dy_blocks.transpose(0, 2, 1, 3).reshape(nyb * BLOCK, nxb * BLOCK).astype(np.float32)
    marked: Image = rgb if inplace else rgb.copy()
    area = rgb[y0:y1, x0:x1].astype(np.float32)
    area += dy[:, :, None]
    np.rint(area, out=area)
    np.clip(area, 0, 255, out=area)
    marked[y0:y1, x0:x1] = area.astype(np.uint8)
    return marked


def _blocks_within(region: npt.NDArray[np.generic], nby: int, nbx: int) -> tuple[int, int, int, int] | None:
    """The block range (by0, by1, bx0, bx1) that can hold blocks wholly inside the region: the blocks
    within the bounding box of its nonzero pixels (found by OpenCV without a full-frame pass in numpy)."""
    arr = np.asarray(region)[: nby * BLOCK, : nbx * BLOCK]
    if arr.dtype != np.uint8:
        arr = (arr != 0).astype(np.uint8)
    x, y, w, h = cv2.boundingRect(arr)
    by0, bx0 = -(-y // BLOCK), -(-x // BLOCK)
    by1, bx1 = (y + h) // BLOCK, (x + w) // BLOCK
    if w == 0 or by1 <= by0 or bx1 <= bx0:
        return None
    return by0, by1, bx0, bx1


def _block_region(region: npt.NDArray[np.generic], nby: int, nbx: int) -> BoolArray:
    """Blocks lying wholly inside a pixel region (H x W, nonzero = inside)."""
    inside = np.asarray(region)[: nby * BLOCK, : nbx * BLOCK] != 0
    out: BoolArray = inside.reshape(nby, BLOCK, nbx, BLOCK).all(axis=(1, 3))
    return out


def soft_bits(rgb: Image, region: npt.NDArray[np.generic] | None = None) -> FloatArray:
    """The 64 soft values of a frame, each in [-1, 1]: positive means bit 0, negative bit 1.

    ``region`` (H x W, nonzero = inside) limits the estimate to the blocks inside it: merge marks only
    the swapped faces, so the verifier looks where faces are and unmarked blocks add no noise.
    """
    _check_frame(rgb)
    blocks, nby, nbx = _luma_blocks(rgb)
    bit_index, dither = _layout(nby, nbx)
    coeffs = _coefficients(blocks)
    slot_soft = np.cos(2.0 * np.pi * (coeffs - dither) / STEP)
    use = np.ones((nby, nbx), dtype=np.bool_) if region is None else _block_region(region, nby, nbx)
    if not use.any():
        use[:] = True
    sel = np.broadcast_to(use[:, :, None], slot_soft.shape)
    idx = bit_index[sel]
    sums = np.bincount(idx, weights=slot_soft[sel], minlength=PAYLOAD_BITS)
    counts = np.bincount(idx, minlength=PAYLOAD_BITS)
    soft: FloatArray = sums / np.maximum(counts, 1)
    return soft


def bits_from_soft(soft: Sequence[float] | FloatArray) -> BoolArray:
    arr = np.asarray(soft, dtype=np.float64).reshape(-1)
    out: BoolArray = arr < 0.0
    return out


def confidence_from_soft(soft: Sequence[float] | FloatArray) -> float:
    """The mean magnitude of the soft values, in [0, 1].

    About 1 for a cleanly marked frame, dropping as compression blurs the mark; about 0.04 for an
    unmarked 480x480 frame (pure noise averages out).
    """
    arr = np.asarray(soft, dtype=np.float64).reshape(-1)
    return float(np.clip(np.mean(np.abs(arr)), 0.0, 1.0)) if arr.size else 0.0


def extract(rgb: Image) -> tuple[BoolArray, float, FloatArray]:
    """Blindly read (bits, confidence, soft values) from a frame; see ``confidence_from_soft``."""
    soft = soft_bits(rgb)
    return bits_from_soft(soft), confidence_from_soft(soft), soft


@dataclass(frozen=True)
class Detection:
    found: bool
    """True only when the decoded bits pass the magic and CRC check."""
    confidence: float
    bits: BoolArray
    payload: PayloadInfo


def detection_from_soft(soft: Sequence[float] | FloatArray) -> Detection:
    bits = bits_from_soft(soft)
    info = parse_payload(bits)
    return Detection(found=info.valid, confidence=confidence_from_soft(soft), bits=bits, payload=info)


def detect(rgb: Image) -> Detection:
    """Extract and check the payload of one frame."""
    return detection_from_soft(soft_bits(rgb))


def vote(softs: Sequence[Sequence[float] | FloatArray]) -> BoolArray:
    """Whole-video decoding: the bits of the soft values averaged over frames."""
    return bits_from_soft(mean_soft(softs))


def mean_soft(softs: Sequence[Sequence[float] | FloatArray]) -> FloatArray:
    if not softs:
        raise ValueError("no soft values to vote over")
    stacked = np.stack([np.asarray(s, dtype=np.float64).reshape(-1) for s in softs])
    if stacked.shape[1] != PAYLOAD_BITS:
        raise ValueError(f"expected {PAYLOAD_BITS} soft values per frame, got {stacked.shape[1]}")
    out: FloatArray = stacked.mean(axis=0)
    return out


def psnr(a: Image, b: Image) -> float:
    """Peak signal-to-noise ratio between two uint8 images, in dB (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))

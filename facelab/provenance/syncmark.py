"""The watermark, version 2: a mark made to survive re-encoding, scaling, cropping, rotation and colour changes.

Scheme ("facelab-sync-blocks", version 2)
------------------------------------------
* Payload: the same 64 bits as version 1 (16-bit magic, 40 bits of the model id, CRC-8), so a detection
  is a decode whose magic and CRC both check out: a random decode passes with probability 2**-24.
* Error correction: the 64 bits and a 6-bit zero tail go through a rate-1/3 convolutional code
  (constraint length 7, generators 133/171/165 octal): 210 coded bits, decoded by soft Viterbi.
* Units: the luma Y is cut into 16x16 blocks; each block carries K = 4 slots, one per DCT frequency
  (1,1), (0,2), (2,0), (1,2) (periods of 16 to 32 pixels: they survive H.264/H.265, downscaling and a
  slight rotation far better than 8x8 blocks' frequencies, and the face's own shading disturbs them
  less than (0,1) and (1,0)). A slot's bit is the sign of its coefficient: unchanged by a brightness
  offset (AC only) and by any contrast gain.
* Embedding is informed: every slot moves BASE its bit's way, and each coded bit's group (all its slots
  in the marked region) moves further, up to CAP, until the mean of its clipped, sign-corrected
  coefficients reaches MARGIN, so the face's own content does not outvote the mark.
* Layout: 128x128 tiles (8 x 8 blocks, 256 slots) repeat over the frame; a keyed table gives each slot
  its role (46 pilot slots with a keyed sign, 210 coded bits, each with a keyed sign flip: the pattern is
  noise-like whatever the payload).
* Synchronisation: cropping shifts the tiling by an unknown offset. The reader computes every slot value
  at every pixel position (four 16x16 filters), clips each at its median magnitude, folds the values
  modulo the tile, and correlates them with the pilot by FFT: all 16384 offsets at once. Per video, the
  pilot scores of all frames are summed (a crop is the same on every frame), and the payload is read at
  the best offset; failing that, at offset 0 (the geometry intact).
* Locating (``VideoReader.read_located``; verify uses it when the reading above fails, e.g. where no
  face was found and the whole frame was read, the unmarked rest diluting the mark): the frames read
  whole give the offset; every 16x16 block of that offset's grid is scored by its pilot slots' clipped,
  keyed values summed over the frames, the scores are smoothed over 7 x 7 blocks, and the payload is read
  again in the blocks scoring above 1.5 standard deviations over the mean and their neighbours; then the
  same at offset 0 (on real skin the unmarked rest of the frame can outvote the mark in the whole
  frame's synchronisation). ``VideoReader.read_best``, what verify reports, reads the regions, then the
  whole frames where regions were given (merge's default mark covers the frame), then located, then
  rotated (below): at most eight decodes, false positives at most 8 * 2**-24 per file.
* Texture masking (``embed(texture=True)``, merge's default whole-frame mark): each block moves by its
  texture_gain, a fraction on flat, smooth areas (a smooth swapped face), more on hair, edges and real
  texture, with no more energy than a uniform mark. The reader is the same.
* Soft decoding: each coded bit's soft value is the keyed sum of its slots over the tile copies in the
  face and the frames, divided by the sum of their magnitudes; each frequency's slots are weighted by
  how well the pilot survived at that frequency (an attack that wipes out one frequency costs its weight,
  not the payload).
* Rotation (``VideoReader.read_rotated``, verify's last try): the whole frames turned back by 1, 2 and 3
  degrees either way; the angle whose pilot is strongest on a few frames is decoded (two more decodes).

Not handled: a scale change that is not undone (a crop resized back to the frame size), or a rotation of
more than about 3.5 degrees: the reader would need a scale search, or a wider rotation search, for those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from facelab.core.types import BoolArray, FloatArray, Image
from facelab.provenance.watermark import (
    MIN_SIDE,
    PAYLOAD_BITS,
    PayloadInfo,
    _check_frame,
    _dct_matrix,
    _hash,
    check_embed_args,
    parse_payload,
)

SCHEME = "facelab-sync-blocks"
SCHEME_VERSION = 2

BLOCK = 16
TILE_BLOCKS = 8
TILE = BLOCK * TILE_BLOCKS  # 128 px
# The coefficients (row, column frequency) of each block that carry slots: periods of 16 to 32 pixels
# along each axis. Measured on the bundled clip against (0,1), (1,0), (2,1), (2,2) and 8x8 blocks: the
# lowest ones carry the face's own shading (its coefficients are about 3 times larger, more than the mark
# can outweigh at 42 dB), higher ones and 8x8 blocks survive CRF 32 and downscaling worse.
COEFFS: tuple[tuple[int, int], ...] = ((1, 1), (0, 2), (2, 0), (1, 2))
K = len(COEFFS)
N_SLOTS = TILE_BLOCKS * TILE_BLOCKS * K  # 256
CONSTRAINT = 7  # convolutional code: constraint length 7, rate 1/3 (generators 133, 171, 165 octal)
GENERATORS = (0o133, 0o171, 0o165)
CODED_BITS = (PAYLOAD_BITS + CONSTRAINT - 1) * len(GENERATORS)  # 210: the payload and a zero tail, coded
N_PILOT = N_SLOTS - CODED_BITS  # 46
BASE = 16.0  # every slot's coefficient moves at least this far its bit's way
MARGIN = 16.0  # wanted mean of a group's clipped, sign-corrected coefficient
CAP = 21.0  # most a coefficient moves
ROUNDS = 4
# The embed works on the frame halved (2 x 2 area means: a quarter of the pixels; session 16): it reads each
# block's coefficients and texture there and draws the change there, softens it (Gaussian, SOFTEN half-res px,
# SOFTEN_KSIZE taps) and doubles it back to full size by bilinear interpolation, which softens it further. The
# mark's periods (16-32 px, 8-16 half-res px) are drawn as well at half size. Against the full-resolution
# drawing softened at 1.2 px (9 taps, the mark until then), on lp_d9: pixels correlate at 0.99, each
# frequency's coefficients keep 0.97-1.00 of their value, the RMS change is 0.97 of the old (block edges
# soften a little more); the embed's time: docs/provenance.md (session 16).
SOFTEN = 0.5
SOFTEN_KSIZE = 3
HALF = BLOCK // 2  # a block's side at half resolution
CLIP = 1.0  # values are clipped at CLIP x their median magnitude before summing
# Texture masking (a just-noticeable-difference gain): each block's slots move by push x its gain, the
# gain being the block's texture (the RMS of the band above TEX_SIGMA px of the luma halved by area
# averaging, over the block, a little of it spread to the neighbours: TEX_SPREAD blocks) over TEX_REF,
# within GAIN_MIN..GAIN_MAX, then scaled
# down where needed so the marked blocks' mean squared gain stays <= 1 (no more energy than a uniform
# mark) and the swapped faces' <= WITHIN_ENERGY (their PSNR holds). Flat, smooth skin (the faces a
# short training paints) gets a fraction, where a uniform mark shows as a mottled texture; eyes, brows,
# lips, hair and real skin texture, which hide it and which codecs keep, get more. Measured on smooth
# swapped and real faces: docs/provenance.md (the mark shows on smooth swapped faces).
# The band is measured at half resolution (a quarter of the pixels: the embed's cost in a merge, session 15).
# Against the full-resolution band above 1.5 px (9 taps, TEX_REF 3.0, the mark until then), the blocks' RMS
# correlates at 0.984-0.994 on the benchmark's three dst clips (60 frames each, every third), at 0.71-0.80
# times the value (median per clip): TEX_REF 2.25 keeps the gains (mean difference 0.03-0.04, on gains of
# 0.25-2). The finest grain (1-2 px), which the halving averages out, weighs a little less.
TEX_SIGMA = 0.75  # half-resolution pixels (1.5 full-resolution pixels)
TEX_KSIZE = 5  # the blur taps (+-2.7 sigma; the texture is a block average, a tail changes it by < 1%)
TEX_SPREAD = 0.25
TEX_REF = 2.25
GAIN_MIN = 0.25
GAIN_MAX = 2.0
# the most mean squared gain in the swapped faces' blocks (``within``): below 1, as the informed pushes fall
# more on the faces' textured blocks than a uniform mark's do (1.0 left lp_d9's face at 41.8 dB, under 42;
# 0.8 gave 42.75 dB and lost two attacks on lp_d9: docs/provenance.md)
WITHIN_ENERGY = 0.9
_KEY = 0x7379_6E63_7061_6972  # seeds the slot table
# The tiling's start (y, x) in pixels, by layout: frame f uses layout (f // LAYOUT_FRAMES) % len(SHIFTS).
# One layout: moving the tiling every 10 frames (to move the slots over the face) was measured to hurt,
# as a codec's P-frames keep the previous layout's pattern for a while; the machinery stays for a try.
SHIFTS: tuple[tuple[int, int], ...] = ((0, 0),)
LAYOUT_FRAMES = 10
LAYOUT_WINDOW = 2  # the reader picks a frame's layout on frames t-2..t+2
READ_FACE_TYPE = "whole_face"  # the reader looks inside the dlib hull of this face type

_LUMA32 = np.array([[0.299, 0.587, 0.114]], dtype=np.float32)
_D = _dct_matrix(BLOCK)
_D32 = _D.astype(np.float32)
_BASIS = np.stack([np.outer(_D[u], _D[v]) for u, v in COEFFS])  # (K, 16, 16)
_BASIS_FLAT32 = np.ascontiguousarray(_BASIS.reshape(K, BLOCK * BLOCK).T, dtype=np.float32)  # (256, K)
# the largest change a pixel can get (strength 4, every slot at CAP, the largest texture gain, all K bases at
# their peak with the same sign); the embed's uint8 offset step needs it under 128 (tests/test_provenance.py)
MOST_CHANGE = 4.0 * CAP * GAIN_MAX * K * float(np.abs(_BASIS).max())
# the basis halved by 2 x 2 area means, for the embed's half-resolution work: a block's coefficient is about
# 4 x the halved block's product with it (exact up to the luma's and the basis's covariance inside each 2 x 2)
_BASIS_HALF32 = np.ascontiguousarray(_BASIS.reshape(K, HALF, 2, HALF, 2).mean(axis=(2, 4)).reshape(K, HALF * HALF).T,
                                     dtype=np.float32)  # (64, K)


@lru_cache(maxsize=1)
def slot_table() -> tuple[npt.NDArray[np.intp], FloatArray]:
    """For the tile's slots (block row 0..7, block column 0..7, coefficient 0..K-1): the coded bit each
    carries (-1: pilot) and its keyed sign (+1/-1)."""
    idx = np.arange(N_SLOTS, dtype=np.int64)
    order = np.argsort(_hash(np.full_like(idx, _KEY), idx, np.full_like(idx, 1)))
    role = np.full(N_SLOTS, -1, dtype=np.intp)
    role[order[N_PILOT:]] = np.arange(CODED_BITS)
    sign = np.where((_hash(np.full_like(idx, _KEY), idx, np.full_like(idx, 2)) >> np.uint64(63)) == 1, -1.0, 1.0)
    role_t = role.reshape(TILE_BLOCKS, TILE_BLOCKS, K)
    sign_t = sign.reshape(TILE_BLOCKS, TILE_BLOCKS, K)
    role_t.setflags(write=False)
    sign_t.setflags(write=False)
    return role_t, sign_t


def _conv_table() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """For each of the 64 encoder states (the last 6 input bits) and input bit: the next state and the
    3 output bits packed in an int."""
    states = 1 << (CONSTRAINT - 1)
    nxt = np.zeros((states, 2), dtype=np.intp)
    outs = np.zeros((states, 2, len(GENERATORS)), dtype=np.intp)
    for st in range(states):
        for b in (0, 1):
            reg = (b << (CONSTRAINT - 1)) | st  # newest bit highest
            nxt[st, b] = reg >> 1
            for g, gen in enumerate(GENERATORS):
                outs[st, b, g] = bin(reg & gen).count("1") & 1
    return nxt, outs


_NEXT, _OUTS = _conv_table()


def encode_bits(bits: BoolArray) -> BoolArray:
    """The payload bits and a zero tail through the rate-1/3 convolutional code: 210 coded bits."""
    state, out = 0, []
    for b in list(np.asarray(bits, dtype=np.intp)) + [0] * (CONSTRAINT - 1):
        out.extend(_OUTS[state, b])
        state = int(_NEXT[state, b])
    return np.array(out, dtype=np.bool_)


def decode_soft(soft: FloatArray) -> BoolArray:
    """Soft Viterbi decoding of the 210 coded soft values (positive: 0) into the 64 payload bits (the
    encoder starts and, after the tail, ends in state 0)."""
    n_steps = PAYLOAD_BITS + CONSTRAINT - 1
    sv = np.asarray(soft, dtype=np.float64).reshape(n_steps, len(GENERATORS))
    states = 1 << (CONSTRAINT - 1)
    metric = np.full(states, -np.inf)
    metric[0] = 0.0
    signs = 1.0 - 2.0 * _OUTS  # (states, 2, G): +1 for a 0 output
    back = np.zeros((n_steps, states), dtype=np.intp)  # the predecessor code: state * 2 + input
    src = np.repeat(np.arange(states), 2)
    inp = np.tile(np.arange(2), states)
    dst = _NEXT[src, inp]
    for t in range(n_steps):
        cand = metric[src] + signs[src, inp] @ sv[t]
        new = np.full(states, -np.inf)
        np.maximum.at(new, dst, cand)
        winner = np.full(states, -1, dtype=np.intp)
        hit = cand >= new[dst]
        winner[dst[hit]] = (src * 2 + inp)[hit]
        back[t] = winner
        metric = new
    state, bits = 0, []
    for t in range(n_steps - 1, -1, -1):
        code = back[t, state]
        bits.append(code & 1)
        state = code >> 1
    out: BoolArray = np.array(bits[::-1][:PAYLOAD_BITS], dtype=np.bool_)
    return out


def _wanted_signs(bits: BoolArray) -> FloatArray:
    """The sign each slot's coefficient should have for these payload bits: (8, 8, K)."""
    return _wanted_signs_cached(np.packbits(np.asarray(bits, dtype=np.bool_)).tobytes())


@lru_cache(maxsize=8)
def _wanted_signs_cached(packed: bytes) -> FloatArray:
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8))[:PAYLOAD_BITS].astype(np.bool_)
    role, sign = slot_table()
    coded = encode_bits(bits)
    bit_sign = np.where(coded[np.maximum(role, 0)], -1.0, 1.0)
    out: FloatArray = sign * np.where(role < 0, 1.0, bit_sign)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def _slot_groups() -> npt.NDArray[np.intp]:
    """Each tile slot's embedding group (8, 8, K): its coded bit, or CODED_BITS for the pilot."""
    role = slot_table()[0]
    out: npt.NDArray[np.intp] = np.where(role < 0, CODED_BITS, role)
    out.setflags(write=False)
    return out


# ----------------------------------------------------------------------------------------------------
# embed


def _luma(rgb: Image) -> npt.NDArray[np.float32]:
    out = cv2.transform(np.ascontiguousarray(rgb).astype(np.float32), _LUMA32)
    return np.asarray(out, dtype=np.float32)


def luma_half(rgb: Image) -> npt.NDArray[np.float32]:
    """The luma of an RGB area whose sides are whole blocks, halved by 2 x 2 area means (what the embed reads).
    The colour is halved first, in uint8 (rounded to a level: a quarter of the conversion's work; the blocks'
    texture gains move by at most 0.04)."""
    h, w = rgb.shape[:2]
    even = np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2])  # exact 2 x 2 means on any size
    small: Image = np.asarray(cv2.resize(even, (w // 2, h // 2), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return _luma(small)


def _blocks_inside(region: npt.NDArray[np.generic], y0: int, x0: int, nby: int, nbx: int,
                   wholly: bool = True) -> BoolArray:
    """The 16x16 blocks of the grid at (y0, x0) lying wholly inside the region (``wholly=False``: touching it)."""
    arr = np.asarray(region)[y0:y0 + nby * BLOCK, x0:x0 + nbx * BLOCK]
    if arr.dtype != np.uint8:
        arr = (arr != 0).view(np.uint8) if arr.dtype == np.bool_ else (arr != 0).astype(np.uint8)
    # 255 where nonzero; each block's mean (rounded) is 255 only when all 256 pixels are, and above 0 when any
    # is (a quarter of the time of numpy's reductions over the block axes; the same answer)
    full = cv2.threshold(np.ascontiguousarray(arr), 0, 255, cv2.THRESH_BINARY)[1]
    mean = cv2.resize(full, (nbx, nby), interpolation=cv2.INTER_AREA)
    out: BoolArray = mean == 255 if wholly else mean > 0
    return out


@lru_cache(maxsize=16)  # a whole 4K frame's tables take about 2 MB
def _grid_tables(packed: bytes, by0: int, by1: int, bx0: int, bx1: int, shift: tuple[int, int]
                 ) -> tuple[FloatArray, npt.NDArray[np.intp], FloatArray]:
    """For the grid blocks by0..by1 x bx0..bx1 of a frame whose tiling starts at ``shift``: each slot's wanted
    sign for the payload (packed bits), its embedding group (slot_groups) and each group's slot count
    (at least 1), all blocks taking part. Cached: a video's frames share a few layouts."""
    sy, sx = shift
    rows = ((np.arange(by0, by1) - sy // BLOCK) % TILE_BLOCKS)[:, None]
    cols = ((np.arange(bx0, bx1) - sx // BLOCK) % TILE_BLOCKS)[None, :]
    sigma: FloatArray = np.ascontiguousarray(_wanted_signs_cached(packed)[rows, cols])  # (nby, nbx, K)
    group: npt.NDArray[np.intp] = np.ascontiguousarray(_slot_groups()[rows, cols])  # pilot: the last group
    counts: FloatArray = np.maximum(np.bincount(group.reshape(-1), minlength=CODED_BITS + 1), 1).astype(np.float64)
    for arr in (sigma, group, counts):
        arr.setflags(write=False)
    return sigma, group, counts


def layout_shift(frame: int) -> tuple[int, int]:
    """Where frame ``frame``'s tiling starts (pixels, y and x): the layout changes every LAYOUT_FRAMES frames."""
    return SHIFTS[(max(frame, 0) // LAYOUT_FRAMES) % len(SHIFTS)]


def texture_gain(half: npt.NDArray[np.float32], inside: BoolArray, within: BoolArray | None = None) -> FloatArray:
    """Each whole 16x16 block's embedding gain (blocks down, blocks across) from the halved luma of its area
    (luma_half; texture masking, see TEX_REF); the mean squared gain of the ``inside`` blocks is at most 1, that
    of the ``within`` blocks (merge's whole-frame mark: the face's, so its PSNR holds too) at most
    WITHIN_ENERGY."""
    nby, nbx = inside.shape
    if half.shape[0] // HALF != nby or half.shape[1] // HALF != nbx:
        raise ValueError(f"texture_gain takes the halved luma of {nby} x {nbx} blocks, got {half.shape}")
    area = np.ascontiguousarray(half[: nby * HALF, : nbx * HALF])
    band = np.asarray(area - cv2.GaussianBlur(area, (TEX_KSIZE, TEX_KSIZE), TEX_SIGMA), dtype=np.float32)
    energy = cv2.resize(band * band, (nbx, nby), interpolation=cv2.INTER_AREA)  # each block's mean
    if TEX_SPREAD > 0:  # a little of the neighbours' texture
        energy = cv2.GaussianBlur(energy, (0, 0), TEX_SPREAD)
    rms = np.sqrt(np.maximum(energy, 0.0))
    gain = np.clip(rms.astype(np.float64) / TEX_REF, GAIN_MIN, GAIN_MAX)
    for sel, most in ((inside, 1.0), (within, WITHIN_ENERGY)):
        if sel is not None and sel.any():
            gain /= max(1.0, float(np.sqrt(np.mean(gain[sel] ** 2) / most)))
    out: FloatArray = gain
    return out


def embed(rgb: Image, payload_bits: Sequence[bool] | BoolArray, region: npt.NDArray[np.generic] | None = None,
          inplace: bool = False, strength: float = 1.0, frame: int = 0, texture: bool = False,
          within: npt.NDArray[np.generic] | None = None) -> Image:
    """A copy of the RGB uint8 frame carrying the 64 payload bits (``inplace``: the frame itself, changed).

    ``region`` (H x W, nonzero = may change): only 16x16 blocks lying wholly inside it are changed,
    every other pixel stays exactly as it was. ``strength`` scales the margin and the cap. ``frame``: the
    frame's index in its video (it picks the layout). ``texture``: scale each block's change by its
    texture_gain (texture masking; merge's whole-frame mark), else the same strength everywhere; ``within``
    (H x W, with ``texture``): a region (the swapped faces) whose blocks get no more energy than a uniform
    mark's either.
    """
    bits = check_embed_args(rgb, payload_bits, strength, 4.0)
    h, w = rgb.shape[:2]
    out: Image = rgb if inplace else rgb.copy()
    by0, by1, bx0, bx1 = 0, h // BLOCK, 0, w // BLOCK
    if region is not None:
        arr = np.asarray(region)[: by1 * BLOCK, : bx1 * BLOCK]
        if arr.dtype != np.uint8:
            arr = (arr != 0).astype(np.uint8)
        x, y, bw, bh = cv2.boundingRect(arr)
        by0, bx0, by1, bx1 = -(-y // BLOCK), -(-x // BLOCK), (y + bh) // BLOCK, (x + bw) // BLOCK
        if bw == 0 or by1 <= by0 or bx1 <= bx0:
            return out
    nby, nbx = by1 - by0, bx1 - bx0
    y0, x0 = by0 * BLOCK, bx0 * BLOCK
    area = rgb[y0:y0 + nby * BLOCK, x0:x0 + nbx * BLOCK]
    lum = luma_half(area)
    coeffs = _block_products(lum, HALF, _BASIS_HALF32) * 4.0  # (nby, nbx, K), as block_coefficients reads them
    inside = np.ones((nby, nbx), dtype=np.bool_) if region is None else _blocks_inside(region, y0, x0, nby, nbx)
    if not inside.any():
        return out
    sigma, group, counts = _grid_tables(np.packbits(bits).tobytes(), by0, by1, bx0, bx1, layout_shift(frame))
    whole = bool(inside.all())
    if whole:  # every slot takes part: flat views, no boolean gathers
        c_in, s_in, g_in = coeffs.reshape(-1), sigma.reshape(-1), group.reshape(-1)
        limit = CLIP * np.median(np.abs(coeffs.reshape(-1, K)), axis=0)  # (K,), as the reader clips
    else:  # only the slots inside the region take part (the others do not move)
        sel3 = np.broadcast_to(inside[:, :, None], coeffs.shape)
        c_in, s_in, g_in = coeffs[sel3], sigma[sel3], group[sel3]
        limit = CLIP * np.median(np.abs(coeffs[inside]), axis=0)
        counts = np.maximum(np.bincount(g_in, minlength=CODED_BITS + 1), 1)
    gain2d = np.ones(inside.shape)
    if texture:
        near = None if within is None else _blocks_inside(within, y0, x0, nby, nbx, wholly=False)
        gain2d = texture_gain(lum, inside, near)
    gain = np.broadcast_to(gain2d[:, :, None], coeffs.shape)
    a_in = gain.reshape(-1) if whole else gain[sel3]
    l_in = np.tile(limit, nby * nbx) if whole else np.broadcast_to(limit, coeffs.shape)[sel3]
    # Every slot moves BASE x its block's gain its bit's way; groups whose clipped mean is still short of
    # MARGIN move further, each slot by its gain (a few rounds: a move does nothing to a value still beyond
    # the clip).
    push = np.full(CODED_BITS + 1, BASE * strength)
    sa_in = s_in * a_in
    for _ in range(ROUNDS):
        stat = s_in * np.clip(c_in + sa_in * push[g_in], -l_in, l_in)
        mean = np.bincount(g_in, weights=stat, minlength=CODED_BITS + 1) / counts
        push = np.minimum(push + np.maximum(MARGIN * strength - mean, 0.0), CAP * strength)
    delta = sigma * push[group] * gain
    if not whole:
        delta *= inside[:, :, None]
    dy = (delta.astype(np.float32) @ _BASIS_HALF32.T).reshape(nby, nbx, HALF, HALF).transpose(0, 2, 1, 3)
    # The luma change is added equally to R, G and B (Y changes by exactly that, chroma not at all).
    # Drawn at half resolution, softened (SOFTEN) and doubled back bilinearly, so block edges leave no step a
    # viewer could see as a grid.
    dy_soft = cv2.GaussianBlur(np.ascontiguousarray(dy.reshape(nby * HALF, nbx * HALF)),
                               (SOFTEN_KSIZE, SOFTEN_KSIZE), SOFTEN)
    soft = np.asarray(cv2.resize(dy_soft, (nbx * BLOCK, nby * BLOCK), interpolation=cv2.INTER_LINEAR),
                      dtype=np.float32)
    if region is not None:
        soft *= np.asarray(region)[y0:y0 + nby * BLOCK, x0:x0 + nbx * BLOCK] != 0
    # area + rint(soft), saturated to 0..255: the change rounded and offset by 128 into uint8 (convertScaleAbs,
    # which would fold a change below -128 back: the largest possible change is MOST_CHANGE, under 128), then one
    # saturating weighted sum removes the offset (uint8 arithmetic: a few times faster than widening the three
    # channels to int16, and fewer full-size temporaries than adding the positive and subtracting the negative
    # part).
    offset = cv2.cvtColor(cv2.convertScaleAbs(soft, alpha=1.0, beta=128.0), cv2.COLOR_GRAY2RGB)
    out[y0:y0 + nby * BLOCK, x0:x0 + nbx * BLOCK] = cv2.addWeighted(np.ascontiguousarray(area), 1.0, offset, 1.0,
                                                                     -128.0)
    return out


# ----------------------------------------------------------------------------------------------------
# read


def fold_frame(rgb: Image, region: npt.NDArray[np.generic] | None = None) -> tuple[FloatArray, FloatArray]:
    """A frame's slot values at every pixel position (the coefficients of the block starting there), clipped
    and folded modulo the tile: (K, 128, 128) sums of the values and (K, 128, 128) sums of their
    magnitudes, over the block positions inside ``region`` (default: the whole frame)."""
    _check_frame(rgb)
    return _fold_luma(_luma(rgb), region)


def _fold_luma(lum: npt.NDArray[np.float32], region: npt.NDArray[np.generic] | None) -> tuple[FloatArray, FloatArray]:
    h, w = lum.shape
    vh, vw = h - BLOCK + 1, w - BLOCK + 1  # positions whose block lies in the frame
    weight: npt.NDArray[np.float32] | None = None
    if region is not None:
        reg = (np.asarray(region) != 0).astype(np.float32)
        box = cv2.boxFilter(reg, -1, (BLOCK, BLOCK), anchor=(0, 0), normalize=True,
                            borderType=cv2.BORDER_CONSTANT)
        weight = (box[:vh, :vw] > 0.999).astype(np.float32)
        if weight.sum() < 1:
            weight = None
    sums = np.zeros((K, TILE, TILE))
    mags = np.zeros((K, TILE, TILE))
    for k in range(K):
        # each basis is separable (a row of the DCT matrix down, one across): two 16-tap passes, about 6 times
        # faster than the 16x16 filter and the same to float rounding (1e-4 on values up to 440)
        u, v = COEFFS[k]
        resp = cv2.sepFilter2D(lum, cv2.CV_32F, _D32[v], _D32[u], anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
        d = np.asarray(resp[:vh, :vw], dtype=np.float32)
        inside = np.abs(d if weight is None else d[weight > 0])
        limit = max(CLIP * float(np.median(inside)), 1e-3)
        np.clip(d, -limit, limit, out=d)
        if weight is not None:
            d *= weight
        sums[k] = _fold(d)
        mags[k] = _fold(np.abs(d))
    return sums, mags


def _fold(arr: npt.NDArray[np.floating]) -> FloatArray:
    h, w = arr.shape
    ph, pw = -(-h // TILE) * TILE, -(-w // TILE) * TILE
    padded = np.zeros((ph, pw), dtype=np.float64)
    padded[:h, :w] = arr
    out: FloatArray = padded.reshape(ph // TILE, TILE, pw // TILE, TILE).sum(axis=(0, 2))
    return out


@lru_cache(maxsize=1)
def _slot_positions() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The tile position (row px, col px) and coefficient of every slot, flattened like slot_table."""
    r, c, k = np.meshgrid(np.arange(TILE_BLOCKS), np.arange(TILE_BLOCKS), np.arange(K), indexing="ij")
    return (r * BLOCK).reshape(-1), (c * BLOCK).reshape(-1), k.reshape(-1)


def pilot_scores(sums: FloatArray) -> FloatArray:
    """The pilot correlation of folded values at every tile offset (oy, ox): (128, 128)."""
    role, sign = slot_table()
    ru, rv, rk = _slot_positions()
    pilot = role.reshape(-1) < 0
    score = np.zeros((TILE, TILE))
    spectra = np.fft.rfft2(sums)
    for k in range(K):
        tmpl = np.zeros((TILE, TILE))
        m = pilot & (rk == k)
        tmpl[ru[m], rv[m]] = sign.reshape(-1)[m]
        score += np.fft.irfft2(spectra[k] * np.conj(np.fft.rfft2(tmpl)), s=(TILE, TILE))
    return score


def _shifted(score: FloatArray, shift: tuple[int, int]) -> FloatArray:
    """score(o + shift) as a map over o."""
    out: FloatArray = np.roll(score, (-shift[0], -shift[1]), axis=(0, 1))
    return out


def slot_values(sums: FloatArray, mags: FloatArray, oy: int, ox: int) -> tuple[FloatArray, FloatArray]:
    """Every slot's keyed folded value and folded magnitude at the tile offset (slot_table order)."""
    _, sign = slot_table()
    ru, rv, rk = _slot_positions()
    u, v = (ru + oy) % TILE, (rv + ox) % TILE
    return sums[rk, u, v] * sign.reshape(-1), mags[rk, u, v]


def _groups() -> npt.NDArray[np.intp]:
    role = slot_table()[0].reshape(-1)
    out: npt.NDArray[np.intp] = np.where(role < 0, CODED_BITS, role)
    return out


def coefficient_weights(vals: FloatArray, sizes: FloatArray) -> FloatArray:
    """How much to trust each coefficient (K,): its pilot slots' soft value (what survived of the mark at
    that frequency; 0 where an attack wiped it out), floored at a small positive value."""
    _, _, rk = _slot_positions()
    pilot = _groups() == CODED_BITS
    num = np.bincount(rk[pilot], weights=vals[pilot], minlength=K)
    den = np.bincount(rk[pilot], weights=sizes[pilot], minlength=K)
    out: FloatArray = np.maximum(num / np.maximum(den, 1e-9), 0.02)
    return out


def soft_values(vals: FloatArray, sizes: FloatArray, weights: FloatArray | None = None) -> tuple[FloatArray, float]:
    """The 210 coded bits' soft values in [-1, 1] (positive: 0) and the pilot's, from slot values; each
    coefficient's slots weighted (``coefficient_weights``) when given."""
    _, _, rk = _slot_positions()
    group = _groups()
    w = np.ones(K) if weights is None else weights
    num = np.bincount(group, weights=vals * w[rk], minlength=CODED_BITS + 1)
    den = np.bincount(group, weights=sizes * w[rk], minlength=CODED_BITS + 1)
    ratio = num / np.maximum(den, 1e-9)
    return ratio[:CODED_BITS], float(ratio[CODED_BITS])


@dataclass(frozen=True)
class Reading:
    found: bool
    """The payload at the synchronised offset passes the magic and CRC check."""
    soft: FloatArray
    """The 210 voted soft coded bits."""
    bits: BoolArray
    payload: PayloadInfo
    offset: tuple[int, int]
    pilot: float
    """Soft value of the pilot slots at the offset: ~0 unmarked, up to 1 (a located reading's is biased
    upwards: it reads where the pilot scored best)."""
    frames_found: list[bool] = field(default_factory=list)
    """Each frame read on its own at the offset: does its payload decode?"""
    frame_bits: list[BoolArray] = field(default_factory=list)
    located: float | None = None
    """A located reading (``VideoReader.read_located``): the share of the frame's blocks it read; None
    for a reading of the regions the frames were added with."""
    rotation: float = 0.0
    """The rotation the reading undid (``read_rotated``): the frames were turned back about their centres by
    this many degrees (counter-clockwise) before reading; 0 for every other reading."""

    @property
    def confidence(self) -> float:
        """The pilot's soft value, clipped to [0, 1]."""
        return float(np.clip(self.pilot, 0.0, 1.0))


def _decision(soft: FloatArray) -> tuple[BoolArray, PayloadInfo]:
    bits = decode_soft(soft)
    return bits, parse_payload(bits)


Slots = list[tuple[FloatArray, FloatArray]]
"""Each frame's keyed slot values and magnitudes (slot_table order)."""


def _summed(slots: Slots) -> tuple[FloatArray, FloatArray, float]:
    """The frames' slots summed: the coded bits' soft values and the pilot's (no decode), and the
    coefficient weights they used."""
    vals, sizes = np.sum([v for v, _ in slots], axis=0), np.sum([z for _, z in slots], axis=0)
    weights = coefficient_weights(vals, sizes)
    soft, pilot = soft_values(vals, sizes, weights)
    return soft, weights, pilot


def _voted(slots: Slots, offset: tuple[int, int], located: float | None) -> tuple[Reading, FloatArray]:
    """The reading of the frames' slots summed (one decode), and the coefficient weights it used."""
    soft, weights, pilot = _summed(slots)
    bits, info = _decision(soft)
    return Reading(found=info.valid, soft=soft, bits=bits, payload=info, offset=offset, pilot=pilot,
                   located=located), weights


def _with_frames(reading: Reading, slots: Slots, weights: FloatArray) -> Reading:
    """The reading with each frame's own decode (not part of the detection: ``found`` is the vote's)."""
    decided = [_decision(soft_values(v, z, weights)[0]) for v, z in slots]
    return replace(reading, frames_found=[i.valid for _, i in decided], frame_bits=[b for b, _ in decided])


# The located reading (where no face says where the mark is): the blocks on the synchronised grid are
# scored by their pilot slots, the scores smoothed over LOCATE_SMOOTH x LOCATE_SMOOTH blocks, and the
# blocks scoring above LOCATE_SIGMAS standard deviations over the mean, with their neighbours within
# LOCATE_GROW blocks, are read. (Measured on the benchmark's three clips, 20 frames: without the
# neighbours the region is 0.3 to 0.45 of the marked area, almost all inside it; with them 0.45 to 0.8,
# and the coded bits come out right as often or more; a threshold of 1 deviation does about as well.)
LOCATE_SMOOTH = 7
LOCATE_SIGMAS = 1.5
LOCATE_GROW = 1
# The rotation search (a frame turned about its centre, which the synchronisation, a search over shifts, cannot
# undo): the whole frames are turned back by each of ROTATIONS degrees, the angle whose pilot is strongest on
# ROTATION_PROBE frames spread over the video is chosen, and all frames are read at that angle. A reading at
# the wrong angle by up to about half a degree still decodes (measured on the benchmark's swapped clips turned
# by 1 degree: read at 0.5, 1 and 1.5 degrees all decode), so the angles are a degree apart.
ROTATIONS: tuple[float, ...] = (-1.0, 1.0, -2.0, 2.0, -3.0, 3.0)
ROTATION_PROBE = 8


def block_coefficients(lum: npt.NDArray[np.generic], phase: tuple[int, int]) -> FloatArray:
    """The K coefficients of every whole 16x16 block of the grid starting at pixel ``phase`` (y, x) of a
    luma plane: (blocks down, blocks across, K)."""
    py, px = phase
    return _block_products(np.asarray(lum)[py:, px:], BLOCK, _BASIS_FLAT32)


def _block_products(plane: npt.NDArray[np.generic], side: int, basis: npt.NDArray[np.float32]) -> FloatArray:
    """Each whole side x side block of a plane (from its top left corner) times the flattened basis
    (side * side, K): (blocks down, blocks across, K)."""
    h, w = plane.shape
    nby, nbx = h // side, w // side
    area = np.asarray(plane[: nby * side, : nbx * side], dtype=np.float32)
    blocks = area.reshape(nby, side, nbx, side).transpose(0, 2, 1, 3).reshape(nby, nbx, side * side)
    out: FloatArray = (blocks @ basis).astype(np.float64)
    return out


def _tile_rows(n: int, offset: int) -> npt.NDArray[np.intp]:
    """The tile row (or column) of each of n grid blocks, the grid starting at ``offset % BLOCK``: block m
    lies at pixel offset % BLOCK + 16 m, which the reader at tile offset ``offset`` reads as tile block
    (m - offset // BLOCK) mod TILE_BLOCKS."""
    out: npt.NDArray[np.intp] = (np.arange(n) - offset // BLOCK) % TILE_BLOCKS
    return out


def _clipped(coeffs: FloatArray) -> FloatArray:
    """Coefficients (..., K) clipped at CLIP x each coefficient's median magnitude, as the reader clips."""
    flat = np.abs(coeffs.reshape(-1, K))
    limit = np.maximum(CLIP * np.median(flat, axis=0), 1e-3) if flat.size else np.full(K, 1e-3)
    out: FloatArray = np.clip(coeffs, -limit, limit)
    return out


def _pilot_map(coeffs: FloatArray, offset: tuple[int, int]) -> FloatArray:
    """Each grid block's score: the sum of its pilot slots' clipped, keyed values (0 for a block without
    pilot slots)."""
    role, sign = slot_table()
    rows, cols = _tile_rows(coeffs.shape[0], offset[0]), _tile_rows(coeffs.shape[1], offset[1])
    keyed = np.where(role < 0, sign, 0.0)[rows[:, None], cols[None, :]]  # (nby, nbx, K)
    out: FloatArray = (_clipped(coeffs) * keyed).sum(axis=2)
    return out


def _block_slots(coeffs: FloatArray, chosen: BoolArray, offset: tuple[int, int]) -> tuple[FloatArray, FloatArray]:
    """The keyed slot values and magnitudes (slot_table order) of the chosen grid blocks, clipped at their
    median magnitude (as fold_frame clips inside a region) and summed over the tile copies."""
    _, sign = slot_table()
    rows, cols = _tile_rows(coeffs.shape[0], offset[0]), _tile_rows(coeffs.shape[1], offset[1])
    cell = (rows[:, None] * TILE_BLOCKS + cols[None, :])[chosen]  # each chosen block's tile block
    vals = _clipped(coeffs[chosen])  # (n, K)
    n_cells = TILE_BLOCKS * TILE_BLOCKS
    sums = np.stack([np.bincount(cell, weights=vals[:, k], minlength=n_cells) for k in range(K)], axis=1)
    mags = np.stack([np.bincount(cell, weights=np.abs(vals[:, k]), minlength=n_cells) for k in range(K)], axis=1)
    out: tuple[FloatArray, FloatArray] = (sums.reshape(-1) * sign.reshape(-1), mags.reshape(-1).astype(np.float64))
    return out


Frame = tuple[FloatArray, FloatArray, FloatArray]
"""A frame's folded slot values, their magnitudes and its pilot scores at every offset."""


class VideoReader:
    """Accumulates frames of one video (or one image) and reads the mark once: sync over all frames (each
    frame's layout chosen by its own pilot), then the voted payload and each frame's own payload.

    It keeps each frame's luma (8 bits a pixel) for ``read_located``."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self._lumas: list[npt.NDArray[np.uint8]] = []
        self._whole: list[Frame | None] = []  # each frame folded whole (computed when first needed)
        self._in_region: list[bool] = []  # was the frame added with a region?
        self._coeffs: dict[int, tuple[tuple[int, int], FloatArray]] = {}  # frame -> (grid phase, blocks)

    def add(self, rgb: Image, region: npt.NDArray[np.generic] | None = None) -> None:
        _check_frame(rgb)
        lum = _luma(rgb)
        sums, mags = _fold_luma(lum, region)
        self.frames.append((sums, mags, pilot_scores(sums)))
        self._lumas.append(np.clip(np.rint(lum), 0, 255).astype(np.uint8))
        self._whole.append(self.frames[-1] if region is None else None)
        self._in_region.append(region is not None)

    @staticmethod
    def _smoothed(frames: list[Frame]) -> list[FloatArray]:
        """Each frame's pilot score map summed with its neighbours' (within LAYOUT_WINDOW): frames share
        a layout in runs of LAYOUT_FRAMES, so the layout is chosen on several frames' evidence."""
        scores = np.stack([f[2] for f in frames])
        cum = np.concatenate([np.zeros((1, TILE, TILE)), np.cumsum(scores, axis=0)])
        n = len(frames)
        return [cum[min(n, t + LAYOUT_WINDOW + 1)] - cum[max(0, t - LAYOUT_WINDOW)] for t in range(n)]

    @staticmethod
    def _offsets(smoothed: list[FloatArray], offset: tuple[int, int]) -> list[tuple[int, int]]:
        """Each frame's tile offset: the video's, moved by the layout its pilot (and its neighbours') prefers."""
        out = []
        for score in smoothed:
            best = max(SHIFTS, key=lambda sh: score[(offset[0] + sh[0]) % TILE, (offset[1] + sh[1]) % TILE])
            out.append(((offset[0] + best[0]) % TILE, (offset[1] + best[1]) % TILE))
        return out

    @staticmethod
    def _sync(smoothed: list[FloatArray]) -> tuple[int, int]:
        """The offset where the pilot correlates best, summed over the frames."""
        total = np.sum([np.max([_shifted(sc, sh) for sh in SHIFTS], axis=0) for sc in smoothed], axis=0)
        oy, ox = np.unravel_index(int(np.argmax(total)), total.shape)
        return int(oy), int(ox)

    def read(self, first: int | None = None, per_frame: bool = True) -> Reading:
        """The reading of the first ``first`` frames (default: all) in the regions they were added with.
        The offset tried first is the one where the pilot correlates best (summed over frames); then no
        offset (the frame's geometry intact). At most two decodes."""
        frames = self.frames[:first]
        if not frames:
            raise ValueError("no frames to read")
        return self._read_frames(frames, per_frame)

    def read_whole(self, first: int | None = None, per_frame: bool = True) -> Reading:
        """``read`` of the whole frames, whatever regions they were added with (merge's default mark covers
        the whole frame: its smooth swapped face alone may carry too little of it). At most two decodes."""
        n = len(self.frames[:first])
        if not n:
            raise ValueError("no frames to read")
        return self._read_frames(self._whole_frames(n), per_frame)

    def _read_frames(self, frames: list[Frame], per_frame: bool) -> Reading:
        smoothed = self._smoothed(frames)
        reading: Reading | None = None
        slots: Slots = []
        weights: FloatArray = np.ones(K)
        for offset in dict.fromkeys([self._sync(smoothed), (0, 0)]):
            slots = self._slots(frames, smoothed, offset)
            reading, weights = _voted(slots, offset, None)
            if reading.found:
                break
        assert reading is not None
        return _with_frames(reading, slots, weights) if per_frame else reading

    def _slots(self, frames: list[Frame], smoothed: list[FloatArray], offset: tuple[int, int]) -> Slots:
        """Each frame's slot values at the tile offset (moved by the layout each frame prefers)."""
        return [slot_values(sums, mags, oy, ox) for (sums, mags, _), (oy, ox)
                in zip(frames, self._offsets(smoothed, offset), strict=True)]

    def _whole_frames(self, n: int) -> list[Frame]:
        out = []
        for i in range(n):
            whole = self._whole[i]
            if whole is None:
                sums, mags = _fold_luma(self._lumas[i].astype(np.float32), None)
                whole = self._whole[i] = (sums, mags, pilot_scores(sums))
            out.append(whole)
        return out

    def _block_coefficients(self, index: int, phase: tuple[int, int]) -> FloatArray:
        cached = self._coeffs.get(index)
        if cached is None or cached[0] != phase:
            cached = self._coeffs[index] = (phase, block_coefficients(self._lumas[index], phase))
        return cached[1]

    def _sync_whole(self, first: int | None) -> tuple[list[FloatArray], tuple[int, int]]:
        """The whole frames' smoothed pilot score maps, and the offset they agree on."""
        frames = self._whole_frames(len(self.frames[:first]))
        if not frames:
            raise ValueError("no frames to read")
        smoothed = self._smoothed(frames)
        return smoothed, self._sync(smoothed)

    def locate(self, first: int | None = None, offset: tuple[int, int] | None = None
               ) -> tuple[list[tuple[int, int]], BoolArray]:
        """Where ``read_located`` reads at a tile offset (default: the one the pilot finds on the whole
        frames): (each frame's tile offset, the chosen blocks of the grid that offset puts on the frame,
        blocks down x across)."""
        smoothed, best = self._sync_whole(first)
        return self._locate(smoothed, best if offset is None else offset)

    def _locate(self, smoothed: list[FloatArray], offset: tuple[int, int]) -> tuple[list[tuple[int, int]], BoolArray]:
        """``locate`` at a tile offset, given the whole frames' smoothed pilot score maps."""
        offsets = self._offsets(smoothed, offset)
        maps = [_pilot_map(self._block_coefficients(i, (oy % BLOCK, ox % BLOCK)), (oy, ox))
                for i, (oy, ox) in enumerate(offsets)]
        ny, nx = min(m.shape[0] for m in maps), min(m.shape[1] for m in maps)
        score = np.sum([m[:ny, :nx] for m in maps], axis=0).astype(np.float32)
        smooth = cv2.boxFilter(score, -1, (LOCATE_SMOOTH, LOCATE_SMOOTH), normalize=False,
                               borderType=cv2.BORDER_CONSTANT)
        spread = float(smooth.std())
        if spread <= 0:
            return offsets, np.zeros((ny, nx), dtype=np.bool_)
        core = (smooth > float(smooth.mean()) + LOCATE_SIGMAS * spread).astype(np.uint8)
        grow = 2 * LOCATE_GROW + 1
        chosen: BoolArray = cv2.dilate(core, np.ones((grow, grow), np.uint8)) > 0
        return offsets, chosen

    def read_located(self, first: int | None = None, per_frame: bool = True) -> Reading:
        """The reading of the first ``first`` frames (default: all) where the mark is, found blind: for a
        frame whose marked area (a swapped face) is a fraction of it, where the unmarked rest dilutes
        every slot. At a tile offset, every 16x16 block of its grid is scored by its pilot slots' clipped,
        keyed values summed over the frames; the scores are smoothed over 7 x 7 blocks, and only the blocks
        above 1.5 standard deviations over the mean, and their neighbours, are read. The offsets tried: the
        one the pilot finds on the whole frames, then offset 0 (on real skin, the unmarked rest of the frame
        can outvote the mark in the whole frame's synchronisation). At most two decodes (none where no block
        stands out)."""
        smoothed, best = self._sync_whole(first)  # once, for both offsets
        reading: Reading | None = None
        for offset in dict.fromkeys([best, (0, 0)]):
            offsets, chosen = self._locate(smoothed, offset)
            share = float(chosen.mean()) if chosen.size else 0.0
            if not chosen.any():
                bits = np.zeros(PAYLOAD_BITS, dtype=np.bool_)
                reading = Reading(False, np.zeros(CODED_BITS), bits, parse_payload(bits), offset, 0.0, located=share)
                continue
            ny, nx = chosen.shape
            slots = [_block_slots(self._block_coefficients(i, (oy % BLOCK, ox % BLOCK))[:ny, :nx], chosen, (oy, ox))
                     for i, (oy, ox) in enumerate(offsets)]
            reading, weights = _voted(slots, offset, share)
            if reading.found:
                return _with_frames(reading, slots, weights) if per_frame else reading
        assert reading is not None
        return reading

    def _rotated_frame(self, index: int, degrees: float) -> Frame:
        """Frame ``index`` whole, turned by ``degrees`` about its centre (counter-clockwise), folded."""
        lum = self._lumas[index]
        h, w = lum.shape
        mat = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        turned = cv2.warpAffine(lum, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        sums, mags = _fold_luma(turned.astype(np.float32), None)
        return sums, mags, pilot_scores(sums)

    def _pilot_at_sync(self, frames: list[Frame]) -> float:
        """The pilot's soft value at the offset the frames synchronise on (no decode)."""
        smoothed = self._smoothed(frames)
        return _summed(self._slots(frames, smoothed, self._sync(smoothed)))[2]

    def read_rotated(self, first: int | None = None, per_frame: bool = True) -> Reading:
        """``read_whole`` of the first ``first`` frames turned back by the angle of ROTATIONS whose pilot is
        strongest on ROTATION_PROBE frames spread over them (a rotated video: the synchronisation finds
        shifts only). At most two decodes, at the chosen angle."""
        n = len(self.frames[:first])
        if not n:
            raise ValueError("no frames to read")
        probe = sorted({int(i) for i in np.linspace(0, n - 1, min(n, ROTATION_PROBE)).round()})
        turned = {a: {i: self._rotated_frame(i, a) for i in probe} for a in ROTATIONS}
        angle = max(ROTATIONS, key=lambda a: self._pilot_at_sync(list(turned[a].values())))
        chosen = turned[angle]  # the probe frames are folded at that angle already
        frames = [chosen[i] if i in chosen else self._rotated_frame(i, angle) for i in range(n)]
        reading = self._read_frames(frames, per_frame)
        return replace(reading, rotation=-angle)

    def read_best(self, first: int | None = None, per_frame: bool = True) -> Reading:
        """What ``facelab verify`` reports: ``read``; failing that, where frames were added with regions,
        ``read_whole``; failing that, ``read_located``; failing that, ``read_rotated`` (at most eight decodes:
        eight chances of 2**-24 for an unmarked video to pass the magic and CRC check)."""
        plain = self.read(first, per_frame)
        if plain.found:
            return plain
        if any(self._in_region[:first]):  # (not ``_whole``: filled in by the first whole reading)
            whole = self.read_whole(first, per_frame)
            if whole.found:
                return whole
        located = self.read_located(first, per_frame)
        if located.found:
            return located
        rotated = self.read_rotated(first, per_frame)
        return rotated if rotated.found else plain


__all__ = [
    "MIN_SIDE",
    "SCHEME",
    "SCHEME_VERSION",
    "Reading",
    "VideoReader",
    "block_coefficients",
    "embed",
    "fold_frame",
    "pilot_scores",
    "slot_table",
    "slot_values",
    "soft_values",
]

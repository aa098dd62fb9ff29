"""The watermark, versions 2 and 3: a mark made to survive re-encoding, scaling, cropping, rotation and colour changes.

Scheme ("facelab-sync-blocks"; version 3 is what facelab writes since 2026-12-02, version 2 is read for older
outputs: each version is a ``Layout``, and every function here takes the layout it works on)
----------------------------------------------------------------------------------------------------------------
* Payload: a 16-bit magic, the first bits of the model id and a CRC-8 (version 3: 24 bits of model id, 48 bits
  in all; version 2: 40 bits, 64 in all, as version 1), so a detection is a decode whose magic and CRC both check
  out: a random decode passes with probability 2**-24.
* Error correction: the payload and a 6-bit zero tail go through a convolutional code of constraint length 7
  (version 3: rate 1/4, generators 117/127/155/171 octal, 216 coded bits; version 2: rate 1/3, 133/171/165,
  210 coded bits), decoded by soft Viterbi. (Generator polynomials: the standard maximum-free-distance codes of
  that length and rate, from the coding literature's tables.)
* Units: the luma Y is cut into square blocks (version 3: 20 x 20; version 2: 16 x 16); each block carries K = 4
  slots, one per DCT frequency (1,1), (0,2), (2,0), (1,2) (version 3: periods of 20 to 40 pixels, which a
  downscale and its encode keep better than version 2's 16 to 32). A slot's bit is the sign of
  its coefficient: unchanged by a brightness offset (AC only) and by any contrast gain.
* Embedding, version 3, informed per slot: every slot's coefficient is moved only as far as it needs for the
  final coefficient to lie a margin its bit's way (a slot whose host already does gets nothing; one whose host
  opposes it by more than HOPELESS of the uniform push gets nothing either: that energy goes where it changes a
  sign), each move at most PUSH_MOST uniform pushes; the margin is the one at which the moves' energy equals a
  uniform mark's (each slot moved CAP x its texture gain), solved per region (the swapped faces, the rest), so
  the mark costs no more PSNR than the uniform one. Version 2: every slot moves BASE its bit's way, and each
  coded bit's group moves further, up to CAP, until the mean of its clipped coefficients reaches MARGIN.
* Layout: tiles of 8 x 8 blocks (version 3: 160 px, version 2: 128 px) repeat over the frame; a keyed table
  gives each of the tile's 256 slots its role (pilot slots with a keyed sign: 40 in version 3, 46 in version 2;
  the coded bits, each with a keyed sign flip: the pattern is noise-like whatever the payload).
* Phase (informed coding, 2026-12-03): a video's tiling may start at any of the tile's 64 blocks; merge takes the
  one whose host (a few dst frames) already agrees best with the payload's coded signs (``choose_phase``), so the
  frame's own large coefficients, which a codec and a downscale keep, carry much of the mark. Nothing in the
  format changes: the reader reads any offset, and it weighs every block-aligned one among its candidates.
* Synchronisation: cropping shifts the tiling by an unknown offset. The reader computes every slot value
  at every pixel position (four separable block filters), clips each at its median magnitude, folds the values
  modulo the tile, and correlates them with the pilot by FFT: every offset at once. Per video, the
  pilot scores of all frames are summed (a crop is the same on every frame), and the payload is read at
  the best offset; failing that, at offset 0 (the geometry intact).
* Locating (``VideoReader.read_located``; verify uses it when the reading above fails, e.g. where no
  face was found and the whole frame was read, the unmarked rest diluting the mark): the frames read
  whole give the offset; every block of that offset's grid is scored by its pilot slots' clipped,
  keyed values summed over the frames, the scores are smoothed over about 100-110 px (7 x 7 blocks of 16, 5 x 5 of
  20), and the payload is read again in the blocks scoring above 1.5 standard deviations over the mean and their
  neighbours; then the same at offset 0 (on real skin the unmarked rest of the frame can outvote the mark in the
  whole frame's synchronisation). ``VideoReader.read_best``, what verify reports, reads the regions, then the
  whole frames where regions were given (merge's default mark covers the frame), then located, then
  rotated, then enlarged (below): at most ten decodes (eight without the scale search, as verify reads
  version 2); the whole frames' reading at the pilot's offset checks the layout's whole_list best Viterbi paths
  (version 3: 16; list decoding, session 33), so false positives at most (10 + 15) * 2**-24 per file for version 3
  and 8 * 2**-24 for version 2.
* Texture masking (``embed(texture=True)``, merge's default whole-frame mark): each block moves by its
  texture_gain, a fraction on flat, smooth areas (a smooth swapped face), more on hair, edges and real
  texture, with no more energy than a uniform mark; the swapped faces get at most the layout's within_energy (their
  blocks alone lowered), and outside them, where texture masking leaves less than REST_ENERGY times a uniform
  mark's energy (a plain wall; most frames), the blocks textured all over are raised towards it (session 30).
  Inside a block, each pixel draws at most EDGE_RATIO x the gain its own surroundings' texture would give
  (kernels.drawn), the block's energy moved to its textured side: a block across an edge (hair or a ridge on
  sky) leaves its flat side plain (session 31). The reader is the same.
* Soft decoding: each coded bit's soft value is the keyed sum of its slots over the tile copies in the
  face and the frames, divided by the sum of their magnitudes; each frequency's slots are weighted by
  how well the pilot survived at that frequency (an attack that wipes out one frequency costs its weight,
  not the payload).
* Rotation (``VideoReader.read_rotated``, verify's last try): the whole frames turned back by 1, 2 and 3
  degrees either way; the angle whose pilot is strongest on a few frames is decoded (two more decodes).

* Scale (``VideoReader.read_scaled``, verify's last try for version 3, session 20): a video scaled down and
  kept small (the file a platform delivers) holds the blocks at a fraction of their size. The whole frames
  are enlarged by each factor that brings a side to a common video size (SCALE_SIDES, 1.2-4.5 times); the
  pilot's clarity on a few frames keeps eight factors, the code's fit (``decode_score``) on more frames
  picks one, which is decoded (two more decodes: at most ten).

Not handled: a scale change to a size off the common sides by more than about 2% (a crop resized back to the
frame size, an odd target size), or a rotation of more than about 3.5 degrees.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial

import cv2
import numpy as np
import numpy.typing as npt

from facelab.core.pool import WorkerPool
from facelab.core.scratch import scratch
from facelab.core.types import BoolArray, FloatArray, Image
from facelab.provenance import watermark as wm
from facelab.provenance.watermark import (
    CRC_BITS,
    MAGIC_BITS,
    MIN_SIDE,
    PayloadInfo,
    _check_frame,
    _dct_matrix,
    _hash,
    check_embed_args,
    parse_payload,
)

SCHEME = "facelab-sync-blocks"

TILE_BLOCKS = 8
# The coefficients (row, column frequency) of each block that carry slots. Measured (version 2, 16 px blocks) on
# the bundled clip against (0,1), (1,0), (2,1), (2,2) and 8x8 blocks: the lowest ones carry the face's own
# shading (its coefficients are about 3 times larger, more than the mark can outweigh at 42 dB), higher ones
# and 8x8 blocks survive CRF 32 and downscaling worse; version 3 (informed) measured (0,1) and (1,0) in place of
# (0,2) and (1,2) again, at 20 px: worse on every attack tried (docs/provenance.md, session 17).
COEFFS: tuple[tuple[int, int], ...] = ((1, 1), (0, 2), (2, 0), (1, 2))
K = len(COEFFS)
N_SLOTS = TILE_BLOCKS * TILE_BLOCKS * K  # 256
CONSTRAINT = 7  # the convolutional codes' constraint length
# List decoding (session 33): the whole frames' reading at the pilot's offset (merge's default mark, read whole)
# checks the WHOLE_LIST best Viterbi paths, the first whose magic and CRC check out; it adds WHOLE_LIST - 1 chances
# of 2**-24 to an unmarked file's bound (one reading, version 3 only). On the hard pairs (the downscale to a third
# and to a half + CRF 28, 7 clips x 8 model ids, as verify reads) it read 3 more of 112, at paths 2, 8 and 11; on a
# variant mark tried that session, every failure of the tuned ids had its payload there (paths 2 to 10).
WHOLE_LIST = 16
BASE = 16.0  # version 2: every slot's coefficient moves at least this far its bit's way (16 px blocks)
MARGIN = 16.0  # version 2: wanted mean of a group's clipped, sign-corrected coefficient
CAP = 21.0  # the uniform push of a 16 px block's slot (version 2: the most a coefficient moves); a block of side
# b moves its slots CAP * b / 16, the same change per pixel
ROUNDS = 4
# Version 3's informed embedding (per slot, in units of the slot's uniform push CAP * b / 16 x its texture gain):
# a slot whose host coefficient opposes its bit by more than HOPELESS uniform pushes is left alone; no slot moves
# more than PUSH_MOST. Chosen (session 17) on 60 swapped frames of the benchmark's lp_d9, lp_d12 and lp_d3 (20 px
# blocks) and samples_dst too (24 px) against the 1/3 downscale and 1/2 + CRF 28 (HOPELESS 0.7 / 1 / 1.5,
# PUSH_MOST 1.5 / 2 / 2.5 / 3: within a few hundredths of each other; 1 and 2 the best on the clips together).
HOPELESS = 1.0
PUSH_MOST = 2.0
SOLVE_STEPS = 60  # the most steps of the margin's solve (it takes 6-7 on merged frames: kernels._margin_py)
SOLVE_TOLERANCE = 1e-10  # the solved margin's energy is the budget to this share
# The embed works on the frame halved (2 x 2 area means: a quarter of the pixels; session 16): it reads each
# block's coefficients and texture there and draws the change there, softens it (Gaussian, SOFTEN half-res px,
# SOFTEN_KSIZE taps) and doubles it back to full size by bilinear interpolation, which softens it further. The
# mark's periods are drawn as well at half size. Against the full-resolution drawing softened at 1.2 px (9 taps,
# the mark until then), on lp_d9 (16 px blocks): pixels correlate at 0.99, each frequency's coefficients keep
# 0.97-1.00 of their value, the RMS change is 0.97 of the old (block edges soften a little more); the embed's
# time: docs/provenance.md (session 16).
SOFTEN = 0.5
SOFTEN_KSIZE = 3
CLIP = 1.0  # values are clipped at CLIP x their median magnitude before summing
# Texture masking (a just-noticeable-difference gain): each block's slots move by push x its gain, the
# gain being the block's texture (the RMS of the band above TEX_SIGMA px of the luma halved by area
# averaging, over the block, a little of it spread to the neighbours: TEX_SPREAD blocks) over TEX_REF,
# within GAIN_MIN..GAIN_MAX, then scaled
# down where needed so the marked blocks' mean squared gain stays <= 1 (no more energy than a uniform
# mark) and the swapped faces' <= the layout's within_energy (their PSNR holds; their blocks alone lowered, and
# the rest filled: REST_ENERGY). Flat, smooth skin (the faces a
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
# Blocks across an edge (session 31): a block's gain comes from its mean texture, so one across hair, a ridge or a
# face's outline on a plain wall or sky drew its textured side's change over its flat side too, a pale blotch in a
# 4x crop (samples_dst's sky above the ridge, lp_d3's wall above the hair). Each half-resolution pixel now draws at
# most EDGE_RATIO x the gain the texture around it would give a block (the band's power smoothed over EDGE_SIGMA
# px, at its lowest within EDGE_ERODE // 2 px, as an edge's band reaches past it; at least GAIN_MIN, a flat block's),
# and the block's energy moves to its textured side (its weights scaled to a mean square of 1, none past
# EDGE_BOOST): texture masking pixel by pixel. Lowering the flat side alone cost 13% of the attacked channel's SNR
# (7 clips x 4 model ids); with the energy kept, the 56 hard pairs read as before, 52 (docs/provenance.md, session
# 31). EDGE_RATIO 6 left a trace of the blotch, 3 none (looked at in 4x crops). Since session 34 the weights are
# drawn per cell of EDGE_CELL x EDGE_CELL half-resolution pixels (4 x 4 in the frame; the smoothing and the reach in
# proportion): a quarter of the work. Measured against per-pixel weights in sessions 33-34 (docs/provenance.md): the
# hard pairs 56 / 54 of 56 (tuned / held-out ids) against 53 / 53, the other 19 attacks 132 of 133 against 131; the
# cells lose lp_d10's downscale to a third kept small (0 of 3 encodes), per-pixel weights lp_d6's and lp_d3's 1/2 +
# CRF 28 kept small (0 of 3 each).
EDGE_RATIO = 3.0
EDGE_SIGMA = 1.5  # half-resolution pixels
EDGE_ERODE = 5  # half-resolution pixels
EDGE_BOOST = 2.0
EDGE_CELL = 2
# The blocks outside the faces spend 1.5 times a uniform mark's energy where texture allows (session 30). Until then
# the faces' cap (within_energy) scaled the whole frame, so where it bound (lp_d9's, lp_d6's, lp_d10's textured
# faces) the rest of the frame was lowered with the faces: the rest of lp_d10's frames spent 0.57 of a uniform mark,
# lp_d9's 0.80, samples_dst's 0.68. Now the cap lowers the faces' blocks alone, and where the rest spends less than
# REST_ENERGY its blocks textured all over (FILL_FROM, FILL_EVEN: not a smooth face, not a block across an edge,
# whose flat side would show the added change) are raised by one factor (at most FILL_MOST, none past GAIN_MAX)
# until it does, or until they can rise no further. The faces are untouched. Measured on the seven benchmark clips
# with four model ids each against the downscale to a third and to a half + CRF 28, as verify reads (tuned on those
# 56 pairs; the fill's constants were set on lp_d10 in session 29): 44 of 56 decoded shipped, 50 with the faces'
# cap alone and the fill to 1.0, 52 with 1.5 (docs/provenance.md, session 30). The whole frame's PSNR falls by
# 0.35-1.9 dB (41.2-42.7 dB; the faces' stays); textured blocks hide the added change (4x crops: docs/provenance.md).
REST_ENERGY = 1.5
FILL_FROM = 0.5  # a block is raised only where its texture gain is at least this (real texture, not a smooth face)
FILL_EVEN = 0.5  # and its flattest quarter's texture is at least this share of its own (not across an edge)
FILL_MOST = 2.0  # the largest factor: a block's mark at most twice what its texture alone gives it
# The tiling's start (y, x) in pixels, by layout: frame f uses layout (f // LAYOUT_FRAMES) % len(SHIFTS).
# One layout: moving the tiling every 10 frames (to move the slots over the face) was measured to hurt,
# as a codec's P-frames keep the previous layout's pattern for a while; the machinery stays for a try.
SHIFTS: tuple[tuple[int, int], ...] = ((0, 0),)
LAYOUT_FRAMES = 10
LAYOUT_WINDOW = 2  # the reader picks a frame's layout on frames t-2..t+2
PHASE_FRAMES = 8  # choose_phase's frames, spread over a video (merge's dst frames)
READ_FACE_TYPE = "whole_face"  # the reader looks inside the dlib hull of this face type

_LUMA32 = np.array([[0.299, 0.587, 0.114]], dtype=np.float32)


def _conv_table(generators: tuple[int, ...]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """For each of the 64 encoder states (the last 6 input bits) and input bit: the next state and the
    output bits (one per generator)."""
    states = 1 << (CONSTRAINT - 1)
    nxt = np.zeros((states, 2), dtype=np.intp)
    outs = np.zeros((states, 2, len(generators)), dtype=np.intp)
    for st in range(states):
        for b in (0, 1):
            reg = (b << (CONSTRAINT - 1)) | st  # newest bit highest
            nxt[st, b] = reg >> 1
            for g, gen in enumerate(generators):
                outs[st, b, g] = bin(reg & gen).count("1") & 1
    return nxt, outs


def _frozen(arr: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)  # compared (and cached on) by identity: there are two
class Layout:
    """One version of the scheme: its block size, payload, code and embedding, and the tables they imply."""

    version: int
    block: int
    """A block's side in pixels."""
    model_bits: int
    """The bits of the model id the payload carries (a multiple of 8)."""
    generators: tuple[int, ...]
    """The convolutional code's generator polynomials (its rate is one over their number)."""
    informed: bool
    """Per-slot informed embedding (version 3), else group pushes (version 2)."""
    within_energy: float
    """The most mean squared texture gain in the swapped faces' blocks (merge's whole-frame mark)."""
    locate_smooth: int
    """The located reading smooths the block scores over this many blocks each way."""
    key: int
    """Seeds the slot table."""
    whole_list: int = 1
    """The Viterbi paths the whole frames' reading at the pilot's offset checks, best first (list decoding: each one
    another 2**-24 chance for an unmarked file; 1: the best path alone)."""

    def __post_init__(self) -> None:
        d = _dct_matrix(self.block)
        basis = np.stack([np.outer(d[u], d[v]) for u, v in COEFFS])  # (K, b, b)
        half = self.block // 2
        nxt, outs = _conv_table(self.generators)
        derived = {
            "tile": self.block * TILE_BLOCKS,
            "half": half,
            "payload_bits": MAGIC_BITS + self.model_bits + CRC_BITS,
            "d32": _frozen(d.astype(np.float32)),
            "basis": _frozen(basis),
            "basis_flat32": _frozen(np.ascontiguousarray(basis.reshape(K, -1).T, dtype=np.float32)),
            # the basis halved by 2 x 2 area means, for the embed's half-resolution work: a block's coefficient is
            # about 4 x the halved block's product with it (exact up to the luma's and the basis's covariance
            # inside each 2 x 2)
            "basis_half32": _frozen(np.ascontiguousarray(
                basis.reshape(K, half, 2, half, 2).mean(axis=(2, 4)).reshape(K, half * half).T, dtype=np.float32)),
            # the same as (half, K, half): a block's pixel row y is delta (K) @ basis_rows32[y] (the embed's drawing)
            "basis_rows32": _frozen(np.ascontiguousarray(
                basis.reshape(K, half, 2, half, 2).mean(axis=(2, 4)).transpose(1, 0, 2), dtype=np.float32)),
            "cap": CAP * self.block / 16.0,
            "next_state": _frozen(nxt),
            "outs": _frozen(outs),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)
        coded = (self.payload_bits + CONSTRAINT - 1) * len(self.generators)
        object.__setattr__(self, "coded_bits", coded)
        object.__setattr__(self, "n_pilot", N_SLOTS - coded)
        # the largest change a pixel can get at strength 1 (every slot at its largest move, the largest texture
        # gain, all K bases at their peak with the same sign); the embed's uint8 offset step clips the change at
        # +-127 only when strength x this reaches 128
        most = (PUSH_MOST if self.informed else 1.0) * self.cap * GAIN_MAX * K * float(np.abs(basis).max())
        object.__setattr__(self, "most_change", most)

    # the derived attributes, for the type checker (set in __post_init__)
    tile: int = field(init=False)
    half: int = field(init=False)
    payload_bits: int = field(init=False)
    coded_bits: int = field(init=False)
    n_pilot: int = field(init=False)
    cap: float = field(init=False)
    most_change: float = field(init=False)
    d32: npt.NDArray[np.float32] = field(init=False, repr=False)
    basis: FloatArray = field(init=False, repr=False)
    basis_flat32: npt.NDArray[np.float32] = field(init=False, repr=False)
    basis_half32: npt.NDArray[np.float32] = field(init=False, repr=False)
    basis_rows32: npt.NDArray[np.float32] = field(init=False, repr=False)
    next_state: npt.NDArray[np.intp] = field(init=False, repr=False)
    outs: npt.NDArray[np.intp] = field(init=False, repr=False)

    @property
    def name(self) -> str:
        """"facelab-sync-blocks/3": the scheme and version, as records, manifests and verify name them."""
        return f"{SCHEME}/{self.version}"


# Version 2 (2026-11-30 to 2026-12-02): read for older outputs, never written.
V2 = Layout(version=2, block=16, model_bits=40, generators=(0o133, 0o171, 0o165), informed=False,
            within_energy=0.9, locate_smooth=7, key=0x7379_6E63_7061_6972)
# Version 3 (session 17): 20 px blocks, informed per slot, a 48-bit payload at rate 1/4. Block sizes 16, 20 and 24
# and codes (rate 1/3 with 64 bits, rate 1/4 with 48) were compared on 60 swapped frames of samples_dst, lp_d9,
# lp_d12 and lp_d3 first (docs/provenance.md); 24 px looked best there, but as facelab reads it (the
# synchronisation included) it lost the 10% crop on three of six clips (lp_d6 and lp_d10 added), fewer tile copies
# being left in a cropped 480p frame; 20 px kept the crops and the downscales to a half on all six. lp_d0 was held
# out of every choice. within_energy: the swapped faces' PSNR >= 42 dB on lp_d9, whose face is the most textured
# of the clips (worst frame of 60: 42.10 dB at 0.85, 42.63 at 0.75; the informed moves put more of a region's
# energy where the texture is). 0.83 since the phase is chosen (2026-12-03): lp_d9 at its chosen phase measured
# 41.996 dB at 0.85 (the faces' share of the energy moves with the phase by about 0.1 dB).
V3 = Layout(version=3, block=20, model_bits=24, generators=(0o117, 0o127, 0o155, 0o171), informed=True,
            within_energy=0.83, locate_smooth=5, key=0x7379_6E63_7033_0003, whole_list=WHOLE_LIST)
LAYOUTS: tuple[Layout, ...] = (V3, V2)
"""What ``facelab verify`` reads, in this order; facelab writes the first."""
WRITTEN = V3
SCHEME_VERSION = WRITTEN.version


def make_payload(model_id: str, lay: Layout = WRITTEN) -> BoolArray:
    """The payload bits a layout carries for a model id: magic, the first ``lay.model_bits`` of the id, CRC-8."""
    return wm.make_payload(model_id, lay.model_bits)


def model_prefix(model_id: str, lay: Layout = WRITTEN) -> str:
    """The hex digits of a model id that a layout's payload carries (version 3: 6, version 2: 10)."""
    return wm.model_prefix(model_id, lay.model_bits // 4)


@lru_cache(maxsize=4)
def slot_table(lay: Layout = WRITTEN) -> tuple[npt.NDArray[np.intp], FloatArray]:
    """For the tile's slots (block row 0..7, block column 0..7, coefficient 0..K-1): the coded bit each
    carries (-1: pilot) and its keyed sign (+1/-1)."""
    idx = np.arange(N_SLOTS, dtype=np.int64)
    order = np.argsort(_hash(np.full_like(idx, lay.key), idx, np.full_like(idx, 1)))
    role = np.full(N_SLOTS, -1, dtype=np.intp)
    role[order[lay.n_pilot:]] = np.arange(lay.coded_bits)
    sign = np.where((_hash(np.full_like(idx, lay.key), idx, np.full_like(idx, 2)) >> np.uint64(63)) == 1, -1.0, 1.0)
    role_t = role.reshape(TILE_BLOCKS, TILE_BLOCKS, K)
    sign_t = sign.reshape(TILE_BLOCKS, TILE_BLOCKS, K)
    role_t.setflags(write=False)
    sign_t.setflags(write=False)
    return role_t, sign_t


@lru_cache(maxsize=4)
def _trellis(lay: Layout) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]:
    """The trellis for decoding: each state's two incoming transitions (the earlier and the later in the order of
    source state and input bit; as indices, and as codes state * 2 + input), and every transition's output signs
    (+1 for a 0 output): (states, 2) x 2 and (2 * states, G)."""
    states = 1 << (CONSTRAINT - 1)
    src = np.repeat(np.arange(states), 2)
    inp = np.tile(np.arange(2), states)
    dst = lay.next_state[src, inp]
    incoming = np.stack([np.flatnonzero(dst == d) for d in range(states)])  # ascending: earlier, later
    signs = (1.0 - 2.0 * lay.outs[src, inp]).astype(np.float64)
    for arr in (incoming, signs):
        arr.setflags(write=False)
    return incoming, (src * 2 + inp)[incoming], signs


def decode_soft_many(soft: FloatArray, lay: Layout = WRITTEN) -> BoolArray:
    """Soft Viterbi decoding of many soft vectors at once ((n, coded) -> (n, payload bits); positive: 0; the
    encoder starts and, after the tail, ends in state 0). Where two paths into a state tie, the later transition
    (in the order of source state, then input bit) wins."""
    flat = np.asarray(soft, dtype=np.float64)
    n, n_out = flat.shape[0], len(lay.generators)
    n_steps = lay.payload_bits + CONSTRAINT - 1
    sv = flat.reshape(n, n_steps, n_out)
    incoming, codes, signs = _trellis(lay)
    states = incoming.shape[0]
    source = np.arange(2 * states) // 2  # each transition's source state
    metric: FloatArray = np.full((n, states), -np.inf)
    metric[:, 0] = 0.0
    back = np.zeros((n_steps, n, states), dtype=np.intp)
    for t in range(n_steps):
        cand = metric[:, source] + sv[:, t] @ signs.T  # (n, transitions)
        early, late = cand[:, incoming[:, 0]], cand[:, incoming[:, 1]]
        take_late = late >= early
        metric = np.where(take_late, late, early)
        back[t] = np.where(take_late, codes[:, 1], codes[:, 0])
    state = np.zeros(n, dtype=np.intp)
    rows = np.arange(n)
    bits = np.zeros((n, n_steps), dtype=np.bool_)
    for t in range(n_steps - 1, -1, -1):
        code = back[t, rows, state]
        bits[:, t] = (code & 1).astype(np.bool_)
        state = code >> 1
    out: BoolArray = bits[:, : lay.payload_bits]
    return out


def encode_bits_many(bits: BoolArray, lay: Layout = WRITTEN) -> BoolArray:
    """``encode_bits`` of many payloads at once: (n, payload bits) -> (n, coded bits)."""
    arr = np.asarray(bits, dtype=np.intp)
    n = arr.shape[0]
    steps = np.concatenate([arr, np.zeros((n, CONSTRAINT - 1), dtype=np.intp)], axis=1)
    state = np.zeros(n, dtype=np.intp)
    out = np.zeros((n, steps.shape[1], len(lay.generators)), dtype=np.bool_)
    for t in range(steps.shape[1]):
        out[:, t] = lay.outs[state, steps[:, t]].astype(np.bool_)
        state = lay.next_state[state, steps[:, t]]
    result: BoolArray = out.reshape(n, -1)
    return result


def encode_bits(bits: BoolArray, lay: Layout = WRITTEN) -> BoolArray:
    """The payload bits and a zero tail through the layout's convolutional code: its coded bits."""
    out: BoolArray = encode_bits_many(np.asarray(bits)[None], lay)[0]
    return out


def decode_soft(soft: FloatArray, lay: Layout = WRITTEN) -> BoolArray:
    """Soft Viterbi decoding of the coded soft values (positive: 0) into the payload bits (the encoder starts
    and, after the tail, ends in state 0): ``decode_soft_many`` of one vector."""
    out: BoolArray = decode_soft_many(np.asarray(soft, dtype=np.float64)[None], lay)[0]
    return out


def decode_soft_list(soft: FloatArray, size: int, lay: Layout = WRITTEN) -> list[BoolArray]:
    """The ``size`` most likely payloads of one soft vector, best first (list Viterbi, parallel form: each state
    keeps its ``size`` best paths; the encoder starts and ends in state 0). The first is ``decode_soft``'s path up
    to ties. Fewer where fewer paths exist (a list longer than the trellis has paths)."""
    sv = np.asarray(soft, dtype=np.float64).reshape(lay.payload_bits + CONSTRAINT - 1, len(lay.generators))
    incoming, codes, signs = _trellis(lay)
    states = incoming.shape[0]
    metric: FloatArray = np.full((states, size), -np.inf)
    metric[0, 0] = 0.0
    back_code = np.zeros((sv.shape[0], states, size), dtype=np.intp)
    back_rank = np.zeros((sv.shape[0], states, size), dtype=np.intp)
    source = incoming // 2  # (states, 2): each incoming transition's source state
    for t in range(sv.shape[0]):
        branch = signs @ sv[t]  # each transition's metric
        cand = (metric[source] + branch[incoming][..., None]).reshape(states, 2 * size)
        order = np.argsort(-cand, axis=1, kind="stable")[:, :size]
        metric = np.take_along_axis(cand, order, axis=1)
        back_code[t] = np.take_along_axis(codes, order // size, axis=1)
        back_rank[t] = order % size
    out: list[BoolArray] = []
    for rank in range(size):
        if not np.isfinite(metric[0, rank]):
            break
        state, r = 0, rank
        bits = np.zeros(sv.shape[0], dtype=np.bool_)
        for t in range(sv.shape[0] - 1, -1, -1):
            code, r = int(back_code[t, state, r]), int(back_rank[t, state, r])
            bits[t] = bool(code & 1)
            state = code >> 1
        out.append(bits[: lay.payload_bits])
    return out


@lru_cache(maxsize=8)
def _wanted_signs_cached(packed: bytes, lay: Layout) -> FloatArray:
    """The sign each slot's coefficient should have for these payload bits (packed): (8, 8, K)."""
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8))[: lay.payload_bits].astype(np.bool_)
    role, sign = slot_table(lay)
    coded = encode_bits(bits, lay)
    bit_sign = np.where(coded[np.maximum(role, 0)], -1.0, 1.0)
    out: FloatArray = sign * np.where(role < 0, 1.0, bit_sign)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=4)
def _slot_groups(lay: Layout) -> npt.NDArray[np.intp]:
    """Each tile slot's embedding group (8, 8, K): its coded bit, or coded_bits for the pilot."""
    role = slot_table(lay)[0]
    out: npt.NDArray[np.intp] = np.where(role < 0, lay.coded_bits, role)
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


def _blocks_inside(region: npt.NDArray[np.generic], y0: int, x0: int, nby: int, nbx: int, block: int,
                   wholly: bool = True) -> BoolArray:
    """The blocks (side ``block``) of the grid at (y0, x0) lying wholly inside the region (``wholly=False``:
    touching it)."""
    arr = np.asarray(region)[y0:y0 + nby * block, x0:x0 + nbx * block]
    if arr.dtype != np.uint8:
        arr = (arr != 0).view(np.uint8) if arr.dtype == np.bool_ else (arr != 0).astype(np.uint8)
    # 255 where nonzero; each block's mean (rounded) is 255 only when all its pixels are, and above 0 when any
    # is (a quarter of the time of numpy's reductions over the block axes; the same answer). An even block is
    # halved first (OpenCV's exact 2 x 2 path), then averaged: half the time of one general step, and a rounded
    # 2 x 2 mean is still 255 only where all four are and above 0 where any is.
    full = cv2.threshold(np.ascontiguousarray(arr), 0, 255, cv2.THRESH_BINARY)[1]
    if block % 2 == 0:
        full = cv2.resize(full, (nbx * block // 2, nby * block // 2), interpolation=cv2.INTER_AREA)
    mean = cv2.resize(full, (nbx, nby), interpolation=cv2.INTER_AREA)
    out: BoolArray = mean == 255 if wholly else mean > 0
    return out


@lru_cache(maxsize=16)  # a whole 4K frame's tables take about 2 MB
def _grid_tables(packed: bytes, by0: int, by1: int, bx0: int, bx1: int, shift: tuple[int, int], lay: Layout
                 ) -> tuple[FloatArray, npt.NDArray[np.intp], FloatArray]:
    """For the grid blocks by0..by1 x bx0..bx1 of a frame whose tiling starts at ``shift``: each slot's wanted
    sign for the payload (packed bits), its embedding group (slot_groups) and each group's slot count
    (at least 1), all blocks taking part. Cached: a video's frames share a few layouts."""
    sy, sx = shift
    rows = ((np.arange(by0, by1) - sy // lay.block) % TILE_BLOCKS)[:, None]
    cols = ((np.arange(bx0, bx1) - sx // lay.block) % TILE_BLOCKS)[None, :]
    sigma: FloatArray = np.ascontiguousarray(_wanted_signs_cached(packed, lay)[rows, cols])  # (nby, nbx, K)
    group: npt.NDArray[np.intp] = np.ascontiguousarray(_slot_groups(lay)[rows, cols])  # pilot: the last group
    counts: FloatArray = np.maximum(np.bincount(group.reshape(-1), minlength=lay.coded_bits + 1), 1).astype(np.float64)
    for arr in (sigma, group, counts):
        arr.setflags(write=False)
    return sigma, group, counts


def layout_shift(frame: int) -> tuple[int, int]:
    """Where frame ``frame``'s tiling starts (pixels, y and x): the layout changes every LAYOUT_FRAMES frames."""
    return SHIFTS[(max(frame, 0) // LAYOUT_FRAMES) % len(SHIFTS)]


def texture_gain(half: npt.NDArray[np.float32], inside: BoolArray, within: BoolArray | None = None,
                 lay: Layout = WRITTEN) -> FloatArray:
    """Each whole block's embedding gain (blocks down, blocks across) from the halved luma of its area
    (luma_half; texture masking, see TEX_REF): the mean squared gain of the ``inside`` blocks at most 1, then that of
    the ``within`` blocks (merge's whole-frame mark: the face's, so its PSNR holds too) at most the layout's
    within_energy (those blocks alone lowered), then that of the inside blocks outside ``within`` raised towards
    REST_ENERGY where texture masking left it lower (``_filled``)."""
    return _texture(half, inside, within, lay)[0]


def _texture(half: npt.NDArray[np.float32], inside: BoolArray, within: BoolArray | None, lay: Layout
             ) -> tuple[FloatArray, npt.NDArray[np.float32] | None]:
    """``texture_gain`` and each half-resolution pixel's share of its block's change (kernels.drawn; None with
    EDGE_RATIO 0). The energies the gains are held to count what is drawn: each block's squared gain times its
    pixels' mean squared share, the shares taken from the gains of a first pass without them (session 31)."""
    from facelab.provenance import kernels  # numba loads with the first embed: the readers never need it

    nby, nbx = inside.shape
    if half.shape[0] // lay.half != nby or half.shape[1] // lay.half != nbx:
        raise ValueError(f"texture_gain takes the halved luma of {nby} x {nbx} blocks, got {half.shape}")
    area = np.ascontiguousarray(half[: nby * lay.half, : nbx * lay.half])
    band = cv2.GaussianBlur(area, (TEX_KSIZE, TEX_KSIZE), TEX_SIGMA)
    np.subtract(area, band, out=band)
    power = np.multiply(band, band, out=band)
    quarters = cv2.resize(power, (2 * nbx, 2 * nby), interpolation=cv2.INTER_AREA)  # each quarter's mean
    energy = cv2.resize(quarters, (nbx, nby), interpolation=cv2.INTER_AREA)  # each block's mean
    if TEX_SPREAD > 0:  # a little of the neighbours' texture
        energy = cv2.GaussianBlur(energy, (0, 0), TEX_SPREAD)
    energy = energy.astype(np.float64)  # (band power: never negative)
    raw = np.clip(np.sqrt(energy) / TEX_REF, GAIN_MIN, GAIN_MAX)
    rest = inside if within is None else inside & ~within
    # the fill's blocks: only those textured all over (a block across an edge, hair on a plain wall, would draw the
    # added change over its flat side too): the block's own texture gain at least FILL_FROM, its flattest quarter's
    # at least FILL_EVEN x that (compared squared)
    flattest = np.minimum(np.minimum(quarters[0::2, 0::2], quarters[0::2, 1::2]),
                          np.minimum(quarters[1::2, 0::2], quarters[1::2, 1::2]))
    even = rest & (energy >= (FILL_FROM * TEX_REF) ** 2) & (flattest >= FILL_EVEN**2 * energy)
    gain = _held(raw, np.ones_like(raw), inside, within, rest, even, lay)
    if EDGE_RATIO <= 0:
        return gain, None
    cell = EDGE_CELL if lay.half % EDGE_CELL == 0 else 1
    side = lay.half // cell  # a block's side in cells
    local = _local_most(power, cell)
    share = kernels.drawn(local, gain, side, EDGE_BOOST)[1]  # the first pass: what each block draws
    gain = _held(raw, share, inside, within, rest, even, lay)
    drawn = kernels.drawn(local, gain, side, EDGE_BOOST)[0]
    return gain, drawn if cell == 1 else _per_pixel(drawn, cell)  # each cell's weight on its half-resolution pixels


def _held(raw: FloatArray, share: FloatArray, inside: BoolArray, within: BoolArray | None, rest: BoolArray,
          even: BoolArray, lay: Layout) -> FloatArray:
    """The gains held to their energies (each block's squared gain times its drawn ``share``): the inside blocks'
    mean at most 1, then the ``within`` blocks' at most the layout's within_energy (those blocks alone lowered),
    then the rest's raised towards REST_ENERGY through its ``even`` blocks (``_filled``). Compiled:
    kernels.held."""
    from facelab.provenance import kernels  # numba loads with the first embed: the readers never need it

    return kernels.held(raw, share, inside, within, rest, even, lay.within_energy, REST_ENERGY, GAIN_MAX, FILL_MOST)


def _per_pixel(grid: FloatArray | npt.NDArray[np.float32], side: int) -> npt.NDArray[np.float32]:
    """Each block's (or cell's) value, rows down and across, on each of its side x side pixels, as float32."""
    nby, nbx = grid.shape
    out = np.asarray(cv2.resize(grid.astype(np.float32, copy=False), (nbx * side, nby * side),
                                interpolation=cv2.INTER_NEAREST_EXACT), dtype=np.float32)
    return out


def _local_most(power: npt.NDArray[np.float32], cell: int = 1) -> npt.NDArray[np.float32]:
    """The largest gain each cell of ``cell`` x ``cell`` half-resolution pixels may draw (kernels.drawn):
    EDGE_RATIO x the gain the texture around it would give a block (the band's power smoothed over EDGE_SIGMA
    half-resolution pixels, at its lowest within EDGE_ERODE // 2 of them: an edge's band reaches past the edge), at
    least GAIN_MIN (what a flat block gets)."""
    if cell > 1:
        h, w = power.shape
        power = np.asarray(cv2.resize(power, (w // cell, h // cell), interpolation=cv2.INTER_AREA), dtype=np.float32)
    reach = 2 * max(1, round(EDGE_ERODE // 2 / cell)) + 1
    low = cv2.erode(cv2.GaussianBlur(power, (0, 0), EDGE_SIGMA / cell), np.ones((reach, reach), np.uint8))
    out: npt.NDArray[np.float32] = np.maximum(EDGE_RATIO * np.sqrt(np.maximum(low, 0.0)) / TEX_REF,
                                              GAIN_MIN).astype(np.float32)
    return out


def _filled(gain: FloatArray, share: FloatArray, energy: float) -> FloatArray:
    """Gains whose mean drawn energy (squared gain times ``share``) is below ``energy`` raised towards it, all by one
    factor (at most FILL_MOST), none past GAIN_MAX: each block keeps its gain's proportion to its texture. The
    energy is piecewise quadratic in the factor (a block stops rising at its cap), so the factor is solved exactly:
    the blocks sorted by the factor that caps them, each piece's root tried (a bisection of 20 steps until
    session 33: the same factor to 1e-6, in a third of the time). Compiled: kernels.filled."""
    from facelab.provenance import kernels  # numba loads with the first embed: the readers never need it

    return kernels.filled(gain, share, energy, GAIN_MAX, FILL_MOST)


def informed_pushes(host: FloatArray, gain: FloatArray, region: npt.NDArray[np.intp] | None = None,
                    energy: float = 1.0) -> FloatArray:
    """Version 3's move of each slot its bit's way, in coefficient units per unit of uniform push (multiply by
    the layout's cap x strength): ``host`` is each slot's coefficient along its wanted sign in the same units,
    ``gain`` its block's texture gain (flat arrays). Each region (``region``: a small non-negative integer per
    slot; default one) gets ``energy`` x the energy of a uniform mark, sum(gain**2): the slots move to a common
    margin m x gain (a slot already beyond it does not move, one opposing its bit by more than HOPELESS x gain does
    not either, none more than PUSH_MOST x gain), m solved by Newton's method in a bisection bracket. Compiled:
    kernels.pushes."""
    from facelab.provenance import kernels  # numba loads with the first embed: the readers never need it

    return kernels.pushes(host, gain, region, energy, PUSH_MOST, HOPELESS, SOLVE_STEPS, SOLVE_TOLERANCE)


def _phase_agreement(coeffs: FloatArray, wanted: FloatArray, lay: Layout) -> FloatArray:
    """How well a frame's own block coefficients (blocks down, blocks across, K; the grid from pixel 0) agree with
    the payload's wanted signs (``_wanted_signs_cached``) for each tiling phase (8 x 8: the tile's block the
    frame's first block is): the clipped coefficients along the wanted signs over their magnitudes, as the reader
    would sum them on the unmarked frame."""
    nby, nbx = coeffs.shape[:2]
    clipped = _clipped(coeffs)
    total = max(float(np.abs(clipped).sum()), 1e-12)
    # under phase (py, px) the frame's block (m, n) is the tile's block ((m - py) % 8, (n - px) % 8)
    out = np.zeros((TILE_BLOCKS, TILE_BLOCKS))
    for py in range(TILE_BLOCKS):
        rows = (np.arange(nby) - py) % TILE_BLOCKS
        for px in range(TILE_BLOCKS):
            cols = (np.arange(nbx) - px) % TILE_BLOCKS
            out[py, px] = float((clipped * wanted[rows[:, None], cols[None, :]]).sum()) / total
    return out


def choose_phase(frames: Sequence[Image], payload_bits: Sequence[bool] | BoolArray, lay: Layout = WRITTEN
                 ) -> tuple[int, int]:
    """Where a video's tiling should start (pixels, y and x; multiples of the block): of the 64 block-aligned
    starts, the one whose host agrees best with the payload's coded signs, summed over ``frames`` (a few frames
    spread over the video: PHASE_FRAMES). Informed coding: the frame's own coefficients that already lie the
    payload's way carry it for free, and the large ones, which a codec and a downscale keep best, more than any
    push could; the informed embed then moves the rest. The reader needs nothing: it reads at any offset (a crop
    moves the tiling anyway), and it weighs every block-aligned offset (``VideoReader._best_offset``). (0, 0) when
    no frame is given, none can carry a mark (embed refuses it: too small, not RGB uint8) or all agree alike."""
    usable = [f for f in frames
              if f.ndim == 3 and f.shape[2] == 3 and f.dtype == np.uint8 and min(f.shape[:2]) >= MIN_SIDE]
    if not usable:
        return 0, 0
    bits = check_embed_args(usable[0], payload_bits, 1.0, 4.0, lay.payload_bits)
    wanted = _wanted_signs_cached(np.packbits(bits).tobytes(), lay)
    total = np.zeros((TILE_BLOCKS, TILE_BLOCKS))
    for rgb in usable:
        total += _phase_agreement(block_coefficients(_luma(rgb), (0, 0), lay), wanted, lay)
    py, px = np.unravel_index(int(np.argmax(total)), total.shape)  # the first of equals: (0, 0) when all tie
    return int(py) * lay.block, int(px) * lay.block


def embed(rgb: Image, payload_bits: Sequence[bool] | BoolArray, region: npt.NDArray[np.generic] | None = None,
          inplace: bool = False, strength: float = 1.0, frame: int = 0, texture: bool = False,
          within: npt.NDArray[np.generic] | None = None, lay: Layout = WRITTEN, phase: tuple[int, int] = (0, 0)
          ) -> Image:
    """A copy of the RGB uint8 frame carrying the payload bits (``inplace``: the frame itself, changed).

    ``region`` (H x W, nonzero = may change): only blocks lying wholly inside it are changed,
    every other pixel stays exactly as it was. ``strength`` scales the pushes. ``frame``: the
    frame's index in its video (it picks the layout). ``texture``: scale each block's change by its
    texture_gain (texture masking; merge's whole-frame mark), else the same strength everywhere; ``within``
    (H x W, with ``texture``): a region (the swapped faces) whose blocks get no more energy than a uniform
    mark's either. ``lay``: the version to write (tests and benchmarks write version 2 to check its reading).
    ``phase``: where the tiling starts (pixels, multiples of the block: ``choose_phase``), the same for every frame
    of a video.
    """
    if phase[0] % lay.block or phase[1] % lay.block:
        raise ValueError(f"the tiling's phase must be a multiple of the block ({lay.block} px), got {phase}")
    bits = check_embed_args(rgb, payload_bits, strength, 4.0, lay.payload_bits)
    b = lay.block
    h, w = rgb.shape[:2]
    out: Image = rgb if inplace else rgb.copy()
    by0, by1, bx0, bx1 = 0, h // b, 0, w // b
    if region is not None:
        arr = np.asarray(region)[: by1 * b, : bx1 * b]
        if arr.dtype != np.uint8:
            arr = (arr != 0).astype(np.uint8)
        x, y, bw, bh = cv2.boundingRect(arr)
        by0, bx0, by1, bx1 = -(-y // b), -(-x // b), (y + bh) // b, (x + bw) // b
        if bw == 0 or by1 <= by0 or bx1 <= bx0:
            return out
    nby, nbx = by1 - by0, bx1 - bx0
    y0, x0 = by0 * b, bx0 * b
    area = rgb[y0:y0 + nby * b, x0:x0 + nbx * b]
    lum = luma_half(area)
    coeffs = _block_products(lum, lay.half, lay.basis_half32) * 4.0  # (nby, nbx, K), as block_coefficients reads
    inside = np.ones((nby, nbx), dtype=np.bool_) if region is None else _blocks_inside(region, y0, x0, nby, nbx, b)
    if not inside.any():
        return out
    sy, sx = layout_shift(frame)
    shift = ((sy + phase[0]) % lay.tile, (sx + phase[1]) % lay.tile)
    sigma, group, counts = _grid_tables(np.packbits(bits).tobytes(), by0, by1, bx0, bx1, shift, lay)
    gain2d = np.ones(inside.shape)
    near = None
    weights = None
    if texture:
        near = None if within is None else _blocks_inside(within, y0, x0, nby, nbx, b, wholly=False)
        gain2d, weights = _texture(lum, inside, near, lay)
    if lay.informed:
        # the face-only mark (no texture masking: the region is the swapped faces) gets the faces' energy share
        share = 1.0 if texture else lay.within_energy
        delta = sigma * _informed_delta(coeffs, sigma, gain2d, inside, near, lay.cap * strength, share)
    else:
        delta = _group_delta(coeffs, sigma, group, counts, gain2d, inside, strength)
    # The luma change is added equally to R, G and B (Y changes by exactly that, chroma not at all).
    # Drawn at half resolution, softened (SOFTEN) and doubled back bilinearly, so block edges leave no step a
    # viewer could see as a grid. Each block row's pixel rows come out of one batched product already in image
    # order: (nby, 1, nbx, K) @ (half, K, half) -> (nby, half, nbx, half).
    dy = np.matmul(delta.astype(np.float32)[:, None], lay.basis_rows32[None]).reshape(nby * lay.half, nbx * lay.half)
    if weights is not None:  # each pixel's share where the texture around it is lower (kernels.drawn)
        dy *= weights
    dy_soft = cv2.GaussianBlur(dy, (SOFTEN_KSIZE, SOFTEN_KSIZE), SOFTEN)
    hh, ww = nby * b, nbx * b
    # the full-size planes are the thread's scratch arrays (facelab.core.scratch: fresh ones were faulted in page
    # by page on every frame, session 18), kept at the frame's whole grid so that a region's box, which moves from
    # frame to frame, takes a view of the same arrays (OpenCV writes through such views)
    grid = (h // b * b, w // b * b)
    soft = scratch("syncmark.soft", grid, np.float32)[:hh, :ww]
    cv2.resize(dy_soft, (ww, hh), dst=soft, interpolation=cv2.INTER_LINEAR)
    if region is not None:
        soft *= np.asarray(region)[y0:y0 + hh, x0:x0 + ww] != 0
    if strength * lay.most_change >= 128.0:  # the offset below would fold a larger change back
        np.clip(soft, -127.0, 127.0, out=soft)
    # area + rint(soft), saturated to 0..255: the change rounded and offset by 128 into uint8 (convertScaleAbs,
    # which would fold a change below -128 back), then one saturating weighted sum removes the offset, written
    # straight into the output (uint8 arithmetic: a few times faster than widening the three channels to int16,
    # and fewer full-size passes than adding the positive and subtracting the negative part).
    off8 = cv2.convertScaleAbs(soft, dst=scratch("syncmark.off8", grid, np.uint8)[:hh, :ww], alpha=1.0, beta=128.0)
    offset = cv2.cvtColor(off8, cv2.COLOR_GRAY2RGB, dst=scratch("syncmark.off", (*grid, 3), np.uint8)[:hh, :ww])
    target = out[y0:y0 + hh, x0:x0 + ww]
    if target.flags.writeable and target.strides[1:] == (3, 1):  # rows of packed pixels: OpenCV writes through
        cv2.addWeighted(area, 1.0, offset, 1.0, -128.0, dst=target)
    else:  # a view OpenCV refuses to write into (flipped, transposed), or read-only: numpy's assignment decides
        target[...] = cv2.addWeighted(area, 1.0, offset, 1.0, -128.0)
    return out


def _informed_delta(coeffs: FloatArray, sigma: FloatArray, gain2d: FloatArray, inside: BoolArray,
                    near: BoolArray | None, unit: float, energy: float) -> FloatArray:
    """Version 3: each slot's push (nby, nbx, K; the sign is sigma's) by informed_pushes, the swapped faces'
    blocks (``near``) and the rest each with ``energy`` x a uniform mark's energy; 0 outside ``inside``."""
    whole = bool(inside.all())  # merge's whole-frame mark: flat views, no boolean gathers
    host = (sigma * coeffs / unit).reshape(-1, K) if whole else (sigma * coeffs / unit)[inside]  # (n, K)
    gain = np.repeat(gain2d.reshape(-1) if whole else gain2d[inside], K)
    labels = None
    if near is not None:
        near_in = near.reshape(-1) if whole else near[inside]
        if near_in.any():
            labels = np.repeat(near_in.astype(np.intp), K)
    pushes = informed_pushes(host.reshape(-1), gain, labels, energy) * unit
    if whole:
        out: FloatArray = pushes.reshape(coeffs.shape)
        return out
    out = np.zeros(coeffs.shape)
    out[inside] = pushes.reshape(host.shape)
    return out


def _group_delta(coeffs: FloatArray, sigma: FloatArray, group: npt.NDArray[np.intp], counts: FloatArray,
                 gain2d: FloatArray, inside: BoolArray, strength: float) -> FloatArray:
    """Version 2: each slot's change (nby, nbx, K): every slot moves BASE x its block's gain its bit's way;
    groups (a coded bit's slots) whose clipped mean is still short of MARGIN move further, each slot by its gain,
    up to CAP (a few rounds: a move does nothing to a value still beyond the clip)."""
    n_groups = counts.size
    whole = bool(inside.all())
    c_in: npt.NDArray[np.float64]
    s_in: npt.NDArray[np.float64]
    g_in: npt.NDArray[np.intp]
    if whole:  # every slot takes part: flat views, no boolean gathers
        c_in, s_in, g_in = coeffs.reshape(-1), sigma.reshape(-1), group.reshape(-1)
        limit = CLIP * np.median(np.abs(coeffs.reshape(-1, K)), axis=0)  # (K,), as the reader clips
    else:  # only the slots inside the region take part (the others do not move)
        sel3 = np.broadcast_to(inside[:, :, None], coeffs.shape)
        c_in, s_in, g_in = coeffs[sel3], sigma[sel3], group[sel3]
        limit = CLIP * np.median(np.abs(coeffs[inside]), axis=0)
        counts = np.maximum(np.bincount(g_in, minlength=n_groups), 1)
    gain = np.broadcast_to(gain2d[:, :, None], coeffs.shape)
    a_in = gain.reshape(-1) if whole else gain[sel3]
    l_in = np.tile(limit, coeffs.shape[0] * coeffs.shape[1]) if whole else np.broadcast_to(limit, coeffs.shape)[sel3]
    push = np.full(n_groups, BASE * strength)
    sa_in = s_in * a_in
    for _ in range(ROUNDS):
        stat = s_in * np.clip(c_in + sa_in * push[g_in], -l_in, l_in)
        mean = np.bincount(g_in, weights=stat, minlength=n_groups) / counts
        push = np.minimum(push + np.maximum(MARGIN * strength - mean, 0.0), CAP * strength)
    delta: FloatArray = sigma * push[group] * gain
    if not whole:
        delta *= inside[:, :, None]
    return delta


# ----------------------------------------------------------------------------------------------------
# read


def fold_frame(rgb: Image, region: npt.NDArray[np.generic] | None = None, lay: Layout = WRITTEN
               ) -> tuple[FloatArray, FloatArray]:
    """A frame's slot values at every pixel position (the coefficients of the block starting there), clipped
    and folded modulo the tile: (K, tile, tile) sums of the values and (K, tile, tile) sums of their
    magnitudes, over the block positions inside ``region`` (default: the whole frame)."""
    _check_frame(rgb)
    return _fold_luma(_luma(rgb), region, lay)


def _fold_luma(lum: npt.NDArray[np.float32], region: npt.NDArray[np.generic] | None, lay: Layout,
               step: int = 1) -> tuple[FloatArray, FloatArray]:
    """``fold_frame`` of a luma plane; ``step`` > 1: each coefficient's clipping limit from the median of every
    ``step``-th position down and across (an enlarged frame, whose neighbouring positions are interpolated)."""
    h, w = lum.shape
    b, tile = lay.block, lay.tile
    vh, vw = h - b + 1, w - b + 1  # positions whose block lies in the frame
    weight: npt.NDArray[np.float32] | None = None
    if region is not None:
        reg = (np.asarray(region) != 0).astype(np.float32)
        box = cv2.boxFilter(reg, -1, (b, b), anchor=(0, 0), normalize=True,
                            borderType=cv2.BORDER_CONSTANT)
        weight = (box[:vh, :vw] > 0.999).astype(np.float32)
        if weight.sum() < 1:
            weight = None
    sums = np.zeros((K, tile, tile))
    mags = np.zeros((K, tile, tile))
    for k in range(K):
        # each basis is separable (a row of the DCT matrix down, one across): two b-tap passes, about b / 3 times
        # faster than the b x b filter and the same to float rounding (1e-4 on values up to 440)
        u, v = COEFFS[k]
        resp = cv2.sepFilter2D(lum, cv2.CV_32F, lay.d32[v], lay.d32[u], anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
        d = np.asarray(resp[:vh, :vw], dtype=np.float32)
        inside = np.abs(d[::step, ::step] if weight is None else d[weight > 0])
        limit = max(CLIP * float(np.median(inside)), 1e-3)
        np.clip(d, -limit, limit, out=d)
        if weight is not None:
            d *= weight
        sums[k] = _fold(d, tile)
        mags[k] = _fold(np.abs(d), tile)
    return sums, mags


def _fold(arr: npt.NDArray[np.floating], tile: int) -> FloatArray:
    h, w = arr.shape
    ph, pw = -(-h // tile) * tile, -(-w // tile) * tile
    padded = np.zeros((ph, pw), dtype=np.float64)
    padded[:h, :w] = arr
    out: FloatArray = padded.reshape(ph // tile, tile, pw // tile, tile).sum(axis=(0, 2))
    return out


@lru_cache(maxsize=4)
def _slot_positions(lay: Layout) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The tile position (row px, col px) and coefficient of every slot, flattened like slot_table."""
    r, c, k = np.meshgrid(np.arange(TILE_BLOCKS), np.arange(TILE_BLOCKS), np.arange(K), indexing="ij")
    return (r * lay.block).reshape(-1), (c * lay.block).reshape(-1), k.reshape(-1)


def pilot_scores(sums: FloatArray, lay: Layout = WRITTEN) -> FloatArray:
    """The pilot correlation of folded values at every tile offset (oy, ox): (tile, tile)."""
    role, sign = slot_table(lay)
    ru, rv, rk = _slot_positions(lay)
    tile = lay.tile
    pilot = role.reshape(-1) < 0
    score = np.zeros((tile, tile))
    spectra = np.fft.rfft2(sums)
    for k in range(K):
        tmpl = np.zeros((tile, tile))
        m = pilot & (rk == k)
        tmpl[ru[m], rv[m]] = sign.reshape(-1)[m]
        score += np.fft.irfft2(spectra[k] * np.conj(np.fft.rfft2(tmpl)), s=(tile, tile))
    return score


def _shifted(score: FloatArray, shift: tuple[int, int]) -> FloatArray:
    """score(o + shift) as a map over o."""
    out: FloatArray = np.roll(score, (-shift[0], -shift[1]), axis=(0, 1))
    return out


def slot_values(sums: FloatArray, mags: FloatArray, oy: int, ox: int, lay: Layout = WRITTEN
                ) -> tuple[FloatArray, FloatArray]:
    """Every slot's keyed folded value and folded magnitude at the tile offset (slot_table order)."""
    _, sign = slot_table(lay)
    ru, rv, rk = _slot_positions(lay)
    u, v = (ru + oy) % lay.tile, (rv + ox) % lay.tile
    return sums[rk, u, v] * sign.reshape(-1), mags[rk, u, v]


def coefficient_weights(vals: FloatArray, sizes: FloatArray, lay: Layout = WRITTEN) -> FloatArray:
    """How much to trust each coefficient (K,): its pilot slots' soft value (what survived of the mark at
    that frequency; 0 where an attack wiped it out), floored at a small positive value."""
    _, _, rk = _slot_positions(lay)
    pilot = _slot_groups(lay).reshape(-1) == lay.coded_bits
    num = np.bincount(rk[pilot], weights=vals[pilot], minlength=K)
    den = np.bincount(rk[pilot], weights=sizes[pilot], minlength=K)
    out: FloatArray = np.maximum(num / np.maximum(den, 1e-9), 0.02)
    return out


def soft_values(vals: FloatArray, sizes: FloatArray, weights: FloatArray | None = None, lay: Layout = WRITTEN
                ) -> tuple[FloatArray, float]:
    """The coded bits' soft values in [-1, 1] (positive: 0) and the pilot's, from slot values; each
    coefficient's slots weighted (``coefficient_weights``) when given."""
    _, _, rk = _slot_positions(lay)
    group = _slot_groups(lay).reshape(-1)
    n = lay.coded_bits
    w = np.ones(K) if weights is None else weights
    num = np.bincount(group, weights=vals * w[rk], minlength=n + 1)
    den = np.bincount(group, weights=sizes * w[rk], minlength=n + 1)
    ratio = num / np.maximum(den, 1e-9)
    return ratio[:n], float(ratio[n])


@dataclass(frozen=True)
class Reading:
    found: bool
    """The payload at the synchronised offset passes the magic and CRC check."""
    soft: FloatArray
    """The voted soft coded bits."""
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
    scale: float = 1.0
    """The factor the frames were enlarged by before reading (``read_scaled``: a video scaled down after marking);
    1 for every other reading."""
    rank: int = 0
    """The decoded path's rank among the Viterbi paths the reading checked: 0, the best path; above 0, found by
    list decoding (the whole frames' reading, Layout.whole_list): a weak mark, whose model id is less certain."""

    @property
    def confidence(self) -> float:
        """The pilot's soft value, clipped to [0, 1]."""
        return float(np.clip(self.pilot, 0.0, 1.0))


def decode_score(soft: FloatArray, lay: Layout = WRITTEN) -> float:
    """How close soft coded values lie to the codeword they decode to: the correlation of that codeword's signs
    with them, over their total magnitude (1: every value agrees in sign; about 0.6 for noise, as the decoder
    picks the codeword that agrees best)."""
    return float(decode_scores(np.asarray(soft, dtype=np.float64)[None], lay)[0])


def decode_scores(soft: FloatArray, lay: Layout = WRITTEN) -> FloatArray:
    """``decode_score`` of many soft vectors at once: (n, coded) -> (n,)."""
    sv = np.asarray(soft, dtype=np.float64)
    words = np.where(encode_bits_many(decode_soft_many(sv, lay), lay), -1.0, 1.0)
    out: FloatArray = (words * sv).sum(axis=1) / np.maximum(np.abs(sv).sum(axis=1), 1e-12)
    return out


def _folded_soft(total: tuple[FloatArray, FloatArray], offset: tuple[int, int], lay: Layout) -> FloatArray:
    """The coded bits' soft values of folds summed over frames (sums, magnitudes), read at ``offset``."""
    vals, sizes = slot_values(total[0], total[1], offset[0], offset[1], lay)
    return soft_values(vals, sizes, coefficient_weights(vals, sizes, lay), lay)[0]


def soft_strength(total: tuple[FloatArray, FloatArray], lay: Layout = WRITTEN) -> FloatArray:
    """The mean square of the coded bits' soft values (``_folded_soft``) at every tile offset at once: (tile, tile).
    Each coded bit has one slot a tile, so its soft value is that slot's folded value over its folded magnitude
    (the coefficient weights cancel): one shifted plane per coded slot, about 20 ms for the whole tile where one
    offset at a time took about 60 us each (the reader's refinement looks at 121 offsets around each of some 140
    candidates)."""
    sums, mags = total
    role = slot_table(lay)[0].reshape(-1)
    ru, rv, rk = _slot_positions(lay)
    acc = np.zeros(sums.shape[1:])
    for slot in np.flatnonzero(role >= 0):
        shift = (-int(ru[slot]), -int(rv[slot]))
        ratio = np.roll(sums[rk[slot]], shift, axis=(0, 1)) / np.maximum(np.roll(mags[rk[slot]], shift, axis=(0, 1)),
                                                                          1e-9)
        acc += ratio * ratio
    out: FloatArray = acc / lay.coded_bits
    return out


def _decision(soft: FloatArray, lay: Layout, paths: int = 1) -> tuple[BoolArray, PayloadInfo, int]:
    """The decoded payload, its check, and its rank among the ``paths`` best Viterbi paths tried (the first that
    checks out; where none does, the best path, rank 0)."""
    bits = decode_soft(soft, lay)
    info = parse_payload(bits)
    if info.valid or paths <= 1:
        return bits, info, 0
    for rank, other in enumerate(decode_soft_list(soft, paths, lay)[1:], start=1):
        found = parse_payload(other)
        if found.valid:
            return other, found, rank
    return bits, info, 0


Slots = list[tuple[FloatArray, FloatArray]]
"""Each frame's keyed slot values and magnitudes (slot_table order)."""


def _summed(slots: Slots, lay: Layout) -> tuple[FloatArray, FloatArray, float]:
    """The frames' slots summed: the coded bits' soft values and the pilot's (no decode), and the
    coefficient weights they used."""
    vals, sizes = np.sum([v for v, _ in slots], axis=0), np.sum([z for _, z in slots], axis=0)
    weights = coefficient_weights(vals, sizes, lay)
    soft, pilot = soft_values(vals, sizes, weights, lay)
    return soft, weights, pilot


def _voted(slots: Slots, offset: tuple[int, int], located: float | None, lay: Layout, paths: int = 1
           ) -> tuple[Reading, FloatArray]:
    """The reading of the frames' slots summed (one decode; ``paths``: list-decoded, _decision), and the coefficient
    weights it used."""
    soft, weights, pilot = _summed(slots, lay)
    bits, info, rank = _decision(soft, lay, paths)
    return Reading(found=info.valid, soft=soft, bits=bits, payload=info, offset=offset, pilot=pilot,
                   located=located, rank=rank), weights


def _with_frames(reading: Reading, slots: Slots, weights: FloatArray, lay: Layout) -> Reading:
    """The reading with each frame's own decode (not part of the detection: ``found`` is the vote's)."""
    if not slots:
        return replace(reading, frames_found=[], frame_bits=[])
    bits = decode_soft_many(np.stack([soft_values(v, z, weights, lay)[0] for v, z in slots]), lay)  # every frame
    return replace(reading, frames_found=[parse_payload(b).valid for b in bits], frame_bits=list(bits))


# Threads folding the frames a reading turns or enlarges (the rotation and scale searches; session 28): folding is
# OpenCV's and numpy's work, which releases the GIL, and each frame's fold is its own, so the readings are the same
# on any number (tests compare 1 and 3); each thread holds one enlarged window (at most SCALE_WINDOW_READ px square).
READ_THREADS = max(1, min(os.cpu_count() or 1, 4))
READ_STAGES = 5  # read_best's readings: the regions, the whole frames, located, turned back, enlarged

# The located reading (where no face says where the mark is): the blocks on the synchronised grid are
# scored by their pilot slots, the scores smoothed over the layout's locate_smooth blocks each way (about 110 px),
# and the blocks scoring above LOCATE_SIGMAS standard deviations over the mean, with their neighbours within
# LOCATE_GROW blocks, are read. (Measured on the benchmark's three clips, 20 frames: without the
# neighbours the region is 0.3 to 0.45 of the marked area, almost all inside it; with them 0.45 to 0.8,
# and the coded bits come out right as often or more; a threshold of 1 deviation does about as well.)
LOCATE_SIGMAS = 1.5
LOCATE_GROW = 1
# The rotation search (a frame turned about its centre, which the synchronisation, a search over shifts, cannot
# undo): the whole frames are turned back by each of ROTATIONS degrees, the angle whose pilot is strongest on
# ROTATION_PROBE frames spread over the video is chosen, and all frames are read at that angle. A reading at
# the wrong angle by up to about half a degree still decodes (measured on the benchmark's swapped clips turned
# by 1 degree: read at 0.5, 1 and 1.5 degrees all decode), so the angles are a degree apart.
ROTATIONS: tuple[float, ...] = (-1.0, 1.0, -2.0, 2.0, -3.0, 3.0)
ROTATION_PROBE = 8
# The scale search (``VideoReader.read_scaled``, verify's last try, session 19): a platform that scales a video
# down delivers the small file, and the mark's blocks are then a fraction of their size. The reader enlarges the
# frames back by the factor whose pilot is strongest. A reading at a factor off by up to 2% still decodes
# (measured on the bundled swap halved and encoded at CRF 23, 240 px: read at 1.96-2.04 decodes, at 1.94 and
# 2.06 not), so the factors tried are the ones that bring a side of the frame to a common video size (the
# ladders platforms scale along: 1080 -> 720 -> 480 -> 360 -> 240 lines, and the widths), within SCALES_RANGE.
# An original of another size is found only when a factor within 2% of its own is among them.
SCALE_SIDES: tuple[int, ...] = (240, 256, 270, 288, 320, 352, 360, 384, 400, 432, 450, 480, 512, 540, 576, 600, 640,
                                720, 768, 800, 854, 864, 900, 960, 1024, 1080, 1152, 1200, 1280, 1366, 1440, 1536,
                                1600, 1920, 2048, 2160, 2560, 2880, 3840)
SCALES_RANGE = (1.2, 4.5)
# Two rounds choose the factor: every factor's pilot clarity (the standard score of its correlation's peak over
# all offsets) on SCALE_PROBE frames (the middle SCALE_WINDOW px of each, enlarged), then the SCALE_FINALISTS
# clearest by the code's fit (decode_score at their best offset) on SCALE_PROBE_FINAL frames (SCALE_WINDOW_FINAL
# px). Measured on five kept-small downscales of four clips (docs/provenance.md, session 19): the true factor
# ranked 2nd to 6th by clarity and first by the code's fit every time.
SCALE_PROBE = 4
SCALE_WINDOW = 480
SCALE_FINALISTS = 8
SCALE_PROBE_FINAL = 16
SCALE_WINDOW_FINAL = 640
# ``thorough`` (facelab verify --thorough): the code's fit on every frame for every factor (SCALE_WINDOW_FINAL px),
# and the SCALE_DECODES_THOROUGH best decoded in turn (each a chance of 2**-24). Measured on the benchmark's
# kept-small downscales (docs/provenance.md, session 21): the pilot's clarity ranked the true factor 9th-10th
# on lp_d0, where the fit on all 60 frames ranked it 1st to 3rd and the reading at it decodes.
SCALE_DECODES_THOROUGH = 3
# The reading at the chosen factor: the middle SCALE_WINDOW_READ px of each enlarged frame at most (a frame enlarged
# 4 times from 480 px would be 1,920 px square, twenty of them 4 s of folding on this project's CPU; the mark's
# 160 px tile repeats, so a 1,280 px window holds 64 copies of it).
SCALE_WINDOW_READ = 1280
# The synchronisation's candidates (session 17): the pilot's correlation peaks at the true offset only most of
# the time; on 60 swapped frames of the benchmark's four clips cropped (10% each border, 5% left, 10% + CRF 28)
# version 3's true offset (measured with the 24 px blocks first tried) was among its 6 strongest peaks every time,
# the strongest 3 times in 12. Of the SYNC_CANDIDATES strongest peaks, the reader reads the one whose soft values
# the code fits best. 16 since session 18 (8 before): after a 10% crop and CRF 28, the plain-walled lp_d10's true
# offset was the 11th peak (lp_d6's the 20th), and the code's fit there stood clear of every other candidate's (0.78
# against at most 0.61).
SYNC_CANDIDATES = 16
SYNC_APART = 3  # px: a peak is the largest within this many pixels either way
SYNC_REFINE = 4  # px (for 16 px blocks; in proportion to the block): how far a peak moves to its soft values' best
# The best-fitting candidates are then moved, within SYNC_FIT px, to where the code fits best (session 30): the soft
# values' strength peaks a pixel or two from where the code fits best after a downscale, and there lp_d9's 1/3
# downscale read (41, 81) at a fit of 0.684 (no payload) where (40, 82), the pilot's own peak, fitted at 0.714 and
# decoded. One decode still reads the chosen offset, so the false-positive rate per reading is unchanged.
SYNC_FITTED = 3  # the best-fitting candidates searched around
SYNC_FIT = 2  # px either way


def block_coefficients(lum: npt.NDArray[np.generic], phase: tuple[int, int], lay: Layout = WRITTEN) -> FloatArray:
    """The K coefficients of every whole block of the grid starting at pixel ``phase`` (y, x) of a
    luma plane: (blocks down, blocks across, K)."""
    py, px = phase
    return _block_products(np.asarray(lum)[py:, px:], lay.block, lay.basis_flat32)


def _block_products(plane: npt.NDArray[np.generic], side: int, basis: npt.NDArray[np.float32]) -> FloatArray:
    """Each whole side x side block of a plane (from its top left corner) times the flattened basis
    (side * side, K): (blocks down, blocks across, K)."""
    h, w = plane.shape
    nby, nbx = h // side, w // side
    area = np.asarray(plane[: nby * side, : nbx * side], dtype=np.float32)
    blocks = area.reshape(nby, side, nbx, side).transpose(0, 2, 1, 3).reshape(nby, nbx, side * side)
    out: FloatArray = (blocks @ basis).astype(np.float64)
    return out


def _tile_rows(n: int, offset: int, block: int) -> npt.NDArray[np.intp]:
    """The tile row (or column) of each of n grid blocks, the grid starting at ``offset % block``: block m
    lies at pixel offset % block + block x m, which the reader at tile offset ``offset`` reads as tile block
    (m - offset // block) mod TILE_BLOCKS."""
    out: npt.NDArray[np.intp] = (np.arange(n) - offset // block) % TILE_BLOCKS
    return out


def _clipped(coeffs: FloatArray) -> FloatArray:
    """Coefficients (..., K) clipped at CLIP x each coefficient's median magnitude, as the reader clips."""
    flat = np.abs(coeffs.reshape(-1, K))
    limit = np.maximum(CLIP * np.median(flat, axis=0), 1e-3) if flat.size else np.full(K, 1e-3)
    out: FloatArray = np.clip(coeffs, -limit, limit)
    return out


def _pilot_map(coeffs: FloatArray, offset: tuple[int, int], lay: Layout) -> FloatArray:
    """Each grid block's score: the sum of its pilot slots' clipped, keyed values (0 for a block without
    pilot slots)."""
    role, sign = slot_table(lay)
    rows, cols = _tile_rows(coeffs.shape[0], offset[0], lay.block), _tile_rows(coeffs.shape[1], offset[1], lay.block)
    keyed = np.where(role < 0, sign, 0.0)[rows[:, None], cols[None, :]]  # (nby, nbx, K)
    out: FloatArray = (_clipped(coeffs) * keyed).sum(axis=2)
    return out


def _block_slots(coeffs: FloatArray, chosen: BoolArray, offset: tuple[int, int], lay: Layout
                 ) -> tuple[FloatArray, FloatArray]:
    """The keyed slot values and magnitudes (slot_table order) of the chosen grid blocks, clipped at their
    median magnitude (as fold_frame clips inside a region) and summed over the tile copies."""
    _, sign = slot_table(lay)
    rows, cols = _tile_rows(coeffs.shape[0], offset[0], lay.block), _tile_rows(coeffs.shape[1], offset[1], lay.block)
    cell = (rows[:, None] * TILE_BLOCKS + cols[None, :])[chosen]  # each chosen block's tile block
    vals = _clipped(coeffs[chosen])  # (n, K)
    n_cells = TILE_BLOCKS * TILE_BLOCKS
    sums = np.stack([np.bincount(cell, weights=vals[:, k], minlength=n_cells) for k in range(K)], axis=1)
    mags = np.stack([np.bincount(cell, weights=np.abs(vals[:, k]), minlength=n_cells) for k in range(K)], axis=1)
    out: tuple[FloatArray, FloatArray] = (sums.reshape(-1) * sign.reshape(-1), mags.reshape(-1).astype(np.float64))
    return out


Frame = tuple[FloatArray, FloatArray, FloatArray]


def _frame(lum: npt.NDArray[np.generic], region: npt.NDArray[np.generic] | None, lay: Layout, step: int = 1) -> Frame:
    """A luma plane folded (``_fold_luma``) with its pilot scores: what a reader keeps of a frame."""
    sums, mags = _fold_luma(np.asarray(lum, dtype=np.float32), region, lay, step)
    return sums, mags, pilot_scores(sums, lay)
"""A frame's folded slot values, their magnitudes and its pilot scores at every offset."""


class VideoReader:
    """Accumulates frames of one video (or one image) and reads the mark once: sync over all frames (each
    frame's layout chosen by its own pilot), then the voted payload and each frame's own payload.

    It keeps each frame's luma (8 bits a pixel) for ``read_located``. ``lay``: the version it reads."""

    def __init__(self, lay: Layout = WRITTEN) -> None:
        self.lay = lay
        self.frames: list[Frame] = []
        self._lumas: list[npt.NDArray[np.uint8]] = []
        self._whole: list[Frame | None] = []  # each frame folded whole (computed when first needed)
        self._in_region: list[bool] = []  # was the frame added with a region?
        self._coeffs: dict[int, tuple[tuple[int, int], FloatArray]] = {}  # frame -> (grid phase, blocks)

    def add(self, rgb: Image, region: npt.NDArray[np.generic] | None = None) -> None:
        _check_frame(rgb)
        lum = _luma(rgb)
        self.frames.append(_frame(lum, region, self.lay))
        self._lumas.append(np.clip(np.rint(lum), 0, 255).astype(np.uint8))
        self._whole.append(self.frames[-1] if region is None else None)
        self._in_region.append(region is not None)

    def _smoothed(self, frames: list[Frame]) -> list[FloatArray]:
        """Each frame's pilot score map summed with its neighbours' (within LAYOUT_WINDOW): frames share
        a layout in runs of LAYOUT_FRAMES, so the layout is chosen on several frames' evidence."""
        scores = np.stack([f[2] for f in frames])
        tile = self.lay.tile
        cum = np.concatenate([np.zeros((1, tile, tile)), np.cumsum(scores, axis=0)])
        n = len(frames)
        return [cum[min(n, t + LAYOUT_WINDOW + 1)] - cum[max(0, t - LAYOUT_WINDOW)] for t in range(n)]

    def _offsets(self, smoothed: list[FloatArray], offset: tuple[int, int]) -> list[tuple[int, int]]:
        """Each frame's tile offset: the video's, moved by the layout its pilot (and its neighbours') prefers."""
        out, tile = [], self.lay.tile
        for score in smoothed:
            best = max(SHIFTS, key=lambda sh: score[(offset[0] + sh[0]) % tile, (offset[1] + sh[1]) % tile])
            out.append(((offset[0] + best[0]) % tile, (offset[1] + best[1]) % tile))
        return out

    @staticmethod
    def _pilot_total(smoothed: list[FloatArray]) -> FloatArray:
        """The pilot's correlation at every tile offset, summed over the frames (each at its preferred layout)."""
        out: FloatArray = np.sum([np.max([_shifted(sc, sh) for sh in SHIFTS], axis=0) for sc in smoothed], axis=0)
        return out

    @classmethod
    def _sync(cls, smoothed: list[FloatArray]) -> tuple[int, int]:
        """The offset where the pilot correlates best, summed over the frames."""
        total = cls._pilot_total(smoothed)
        oy, ox = np.unravel_index(int(np.argmax(total)), total.shape)
        return int(oy), int(ox)

    def _candidates(self, smoothed: list[FloatArray]) -> list[tuple[int, int]]:
        """The SYNC_CANDIDATES strongest peaks of the pilot's correlation (each the largest within SYNC_APART px
        of it, the tile wrapping around), strongest first."""
        total = self._pilot_total(smoothed).astype(np.float32)
        r = SYNC_APART
        wrapped = np.pad(total, r, mode="wrap")
        peak = cv2.dilate(wrapped, np.ones((2 * r + 1, 2 * r + 1), np.uint8))[r:-r, r:-r]
        flat = np.flatnonzero(total.ravel() >= peak.ravel())
        top = flat[np.argsort(total.ravel()[flat])[::-1][:SYNC_CANDIDATES]]
        return [(int(i) // total.shape[1], int(i) % total.shape[1]) for i in top]

    def _best_offset(self, frames: list[Frame], smoothed: list[FloatArray]) -> tuple[int, int]:
        """The offset to read: each of the pilot's candidate peaks moved, within SYNC_REFINE px, to where the
        coded slots' soft values are strongest (their mean square: the pilot's correlation is broad for low
        frequencies, and a neighbour of the true offset can outscore it; every coded slot is evidence there),
        then the candidate whose soft values lie closest to a codeword (the decoder's own likelihood,
        ``decode_score``). Choosing checks no payload: the magic and CRC are checked once, on the chosen offset's
        decode, so the false-positive rate per reading is unchanged."""
        if len(SHIFTS) == 1:  # every frame at the same offset: the frames' folds summed once
            total = (np.sum([f[0] for f in frames], axis=0), np.sum([f[1] for f in frames], axis=0))

            def soft_at(off: tuple[int, int]) -> FloatArray:
                return _folded_soft(total, off, self.lay)
        else:
            def soft_at(off: tuple[int, int]) -> FloatArray:
                return _summed(self._slots(frames, smoothed, off), self.lay)[0]
        tile, r = self.lay.tile, SYNC_REFINE * self.lay.block // 16
        b = self.lay.block
        # every block-aligned offset too: the embed may start its tiling at any block of the tile (choose_phase), and
        # where an attack leaves the geometry intact but the pilot too weak to peak there, the code's fit still can
        aligned = [(y * b, x * b) for y in range(TILE_BLOCKS) for x in range(TILE_BLOCKS)]
        if len(SHIFTS) == 1:  # the strength at every offset at once (soft_strength), looked up
            strength = soft_strength(total, self.lay)

            def strength_at(off: tuple[int, int]) -> float:
                return float(strength[off])
        else:
            def strength_at(off: tuple[int, int]) -> float:
                return float(np.mean(soft_at(off) ** 2))
        peaks = self._candidates(smoothed)
        refined = []
        for oy, ox in peaks + aligned:
            near = [((oy + dy) % tile, (ox + dx) % tile) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
            refined.append(max(near, key=strength_at))
        # the peaks as found too: the strongest soft values nearby can lie off the true offset, where the pilot's own
        # peak does not (lp_d0 at a third, session 34: the pilot's first peak 1 px from the offset, moved 20 px away)
        cands = list(dict.fromkeys(refined + peaks + aligned))
        if len(cands) == 1:
            return cands[0]
        scores = decode_scores(np.stack([soft_at(off) for off in cands]), self.lay)  # all candidates at once
        steps = range(-SYNC_FIT, SYNC_FIT + 1)
        fitted = list(dict.fromkeys(((cands[i][0] + dy) % tile, (cands[i][1] + dx) % tile)
                                    for i in np.argsort(-scores, kind="stable")[:SYNC_FITTED]
                                    for dy in steps for dx in steps))
        fits = decode_scores(np.stack([soft_at(off) for off in fitted]), self.lay)
        return fitted[int(np.argmax(fits))]

    def read(self, first: int | None = None, per_frame: bool = True) -> Reading:
        """The reading of the first ``first`` frames (default: all) in the regions they were added with.
        The offset tried first is the one where the pilot correlates best (summed over frames); then no
        offset (the frame's geometry intact). At most two decodes."""
        frames = self.frames[:first]
        if not frames:
            raise ValueError("no frames to read")
        return self._read_frames(frames, per_frame, listed=not any(self._in_region[:first]))

    def read_whole(self, first: int | None = None, per_frame: bool = True) -> Reading:
        """``read`` of the whole frames, whatever regions they were added with (merge's default mark covers
        the whole frame: its smooth swapped face alone may carry too little of it). At most two decodes."""
        n = len(self.frames[:first])
        if not n:
            raise ValueError("no frames to read")
        return self._read_frames(self._whole_frames(n), per_frame, listed=True)

    def _read_frames(self, frames: list[Frame], per_frame: bool, listed: bool = False) -> Reading:
        """The reading at the pilot's best offset, then at offset 0; ``listed`` (the whole frames as added, not
        turned or enlarged): the first list-decoded (the layout's whole_list paths)."""
        smoothed = self._smoothed(frames)
        reading: Reading | None = None
        slots: Slots = []
        weights: FloatArray = np.ones(K)
        best = self._best_offset(frames, smoothed)
        for offset in dict.fromkeys([best, (0, 0)]):
            slots = self._slots(frames, smoothed, offset)
            paths = self.lay.whole_list if listed and offset == best else 1
            reading, weights = _voted(slots, offset, None, self.lay, paths)
            if reading.found:
                break
        assert reading is not None
        return _with_frames(reading, slots, weights, self.lay) if per_frame else reading

    def _slots(self, frames: list[Frame], smoothed: list[FloatArray], offset: tuple[int, int]) -> Slots:
        """Each frame's slot values at the tile offset (moved by the layout each frame prefers)."""
        return [slot_values(sums, mags, oy, ox, self.lay) for (sums, mags, _), (oy, ox)
                in zip(frames, self._offsets(smoothed, offset), strict=True)]

    def _whole_frames(self, n: int) -> list[Frame]:
        missing = [i for i in range(n) if self._whole[i] is None]
        folded = self._each(lambda i: _frame(self._lumas[i], None, self.lay), missing)
        for i, frame in zip(missing, folded, strict=True):
            self._whole[i] = frame
        return [w for w in self._whole[:n] if w is not None]

    def _block_coefficients(self, index: int, phase: tuple[int, int]) -> FloatArray:
        cached = self._coeffs.get(index)
        if cached is None or cached[0] != phase:
            cached = self._coeffs[index] = (phase, block_coefficients(self._lumas[index], phase, self.lay))
        return cached[1]

    def _sync_whole(self, first: int | None) -> tuple[list[FloatArray], tuple[int, int]]:
        """The whole frames' smoothed pilot score maps, and the offset they agree on (``_best_offset``)."""
        frames = self._whole_frames(len(self.frames[:first]))
        if not frames:
            raise ValueError("no frames to read")
        smoothed = self._smoothed(frames)
        return smoothed, self._best_offset(frames, smoothed)

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
        b = self.lay.block
        maps = [_pilot_map(self._block_coefficients(i, (oy % b, ox % b)), (oy, ox), self.lay)
                for i, (oy, ox) in enumerate(offsets)]
        ny, nx = min(m.shape[0] for m in maps), min(m.shape[1] for m in maps)
        score = np.sum([m[:ny, :nx] for m in maps], axis=0).astype(np.float32)
        side = self.lay.locate_smooth
        smooth = cv2.boxFilter(score, -1, (side, side), normalize=False,
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
                bits = np.zeros(self.lay.payload_bits, dtype=np.bool_)
                reading = Reading(False, np.zeros(self.lay.coded_bits), bits, parse_payload(bits), offset, 0.0,
                                  located=share)
                continue
            ny, nx = chosen.shape
            b = self.lay.block
            slots = [_block_slots(self._block_coefficients(i, (oy % b, ox % b))[:ny, :nx], chosen, (oy, ox), self.lay)
                     for i, (oy, ox) in enumerate(offsets)]
            reading, weights = _voted(slots, offset, share, self.lay)
            if reading.found:
                return _with_frames(reading, slots, weights, self.lay) if per_frame else reading
        assert reading is not None
        return reading

    @staticmethod
    def _each(fold: Callable[[int], Frame], indices: Sequence[int]) -> list[Frame]:
        """``fold`` of each frame index, in order, on READ_THREADS threads."""
        pool: WorkerPool[Frame] = WorkerPool(min(READ_THREADS, len(indices)) or 1, "thread")
        try:
            return list(pool.map(fold, indices))
        finally:
            pool.close()

    def _rotated_frame(self, index: int, degrees: float) -> Frame:
        """Frame ``index`` whole, turned by ``degrees`` about its centre (counter-clockwise), folded."""
        lum = self._lumas[index]
        h, w = lum.shape
        mat = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        turned = cv2.warpAffine(lum, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return _frame(turned, None, self.lay)

    def _pilot_at_sync(self, frames: list[Frame]) -> float:
        """The pilot's soft value at the offset the frames synchronise on (no decode)."""
        smoothed = self._smoothed(frames)
        return _summed(self._slots(frames, smoothed, self._sync(smoothed)), self.lay)[2]

    def read_rotated(self, first: int | None = None, per_frame: bool = True) -> Reading:
        """``read_whole`` of the first ``first`` frames turned back by the angle of ROTATIONS whose pilot is
        strongest on ROTATION_PROBE frames spread over them (a rotated video: the synchronisation finds
        shifts only). At most two decodes, at the chosen angle."""
        n = len(self.frames[:first])
        if not n:
            raise ValueError("no frames to read")
        probe = sorted({int(i) for i in np.linspace(0, n - 1, min(n, ROTATION_PROBE)).round()})
        turned = {a: dict(zip(probe, self._each(partial(self._rotated_frame, degrees=a), probe), strict=True))
                  for a in ROTATIONS}
        angle = max(ROTATIONS, key=lambda a: self._pilot_at_sync(list(turned[a].values())))
        chosen = dict(turned[angle])  # the probe frames are folded at that angle already
        todo = [i for i in range(n) if i not in chosen]
        chosen.update(zip(todo, self._each(partial(self._rotated_frame, degrees=angle), todo), strict=True))
        frames = [chosen[i] for i in range(n)]
        reading = self._read_frames(frames, per_frame)
        return replace(reading, rotation=-angle)

    def _scaled_frame(self, index: int, factor: float, window: int | None = None) -> Frame:
        """Frame ``index`` whole, enlarged by ``factor`` (bilinear), folded; with ``window``, only the middle of the
        enlarged frame, at most ``window`` px square (the part of the small frame it comes from, enlarged)."""
        lum = self._lumas[index]
        h, w = lum.shape
        if window is not None:
            ch, cw = min(h, max(1, round(window / factor))), min(w, max(1, round(window / factor)))
            y0, x0 = (h - ch) // 2, (w - cw) // 2
            lum = lum[y0:y0 + ch, x0:x0 + cw]
            h, w = ch, cw
        big = cv2.resize(lum, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_LINEAR)
        return _frame(big, None, self.lay, step=max(1, int(factor)))

    def scale_factors(self) -> list[float]:
        """The factors ``read_scaled`` compares for these frames: each that brings a side of the frame to one of
        SCALE_SIDES, within SCALES_RANGE, those within 0.5% of a smaller one dropped."""
        if not self._lumas:
            return []
        h, w = self._lumas[0].shape
        lo, hi = SCALES_RANGE
        found = sorted({side / dim for side in SCALE_SIDES for dim in (h, w) if lo <= side / dim <= hi})
        out: list[float] = []
        for f in found:
            if not out or f > out[-1] * 1.005:
                out.append(f)
        return out

    def read_scaled(self, first: int | None = None, per_frame: bool = True, thorough: bool = False) -> Reading:
        """``read_whole`` of the first ``first`` frames enlarged by the factor of ``scale_factors`` chosen in two
        rounds (SCALE_PROBE and the constants after it): a video scaled down after marking. The pilot alone is no
        guide across factors (its raw value on lp_d9 at a third: 0.58 at 1.41 against 0.35 at the true 3), its
        clarity a rough one; the code's fit decides. Choosing checks no payload (the magic and CRC are checked on
        the chosen factor's reading only): at most two decodes. ``thorough``: every factor's fit on every frame,
        and the SCALE_DECODES_THOROUGH best read in turn until one decodes (several times the search's time; at
        most 2 x SCALE_DECODES_THOROUGH decodes). ValueError where no factor applies."""
        n = len(self.frames[:first])
        factors = self.scale_factors()
        if not n or not factors:
            raise ValueError("no frames to read" if not n else "no scale factor applies to frames this large")

        def probes(count: int) -> list[int]:
            return sorted({int(i) for i in np.linspace(0, n - 1, min(n, count)).round()})

        def clarity(factor: float) -> float:
            frames = self._each(partial(self._scaled_frame, factor=factor, window=SCALE_WINDOW), probes(SCALE_PROBE))
            total = self._pilot_total(self._smoothed(frames))
            spread = float(total.std())
            return float(total.max() - total.mean()) / spread if spread > 0 else 0.0

        def fit(factor: float, count: int = SCALE_PROBE_FINAL) -> float:
            frames = self._each(partial(self._scaled_frame, factor=factor, window=SCALE_WINDOW_FINAL), probes(count))
            total = (np.sum([f[0] for f in frames], axis=0), np.sum([f[1] for f in frames], axis=0))
            return decode_score(_folded_soft(total, self._best_offset(frames, self._smoothed(frames)), self.lay),
                                self.lay)

        if thorough:
            chosen = sorted(factors, key=lambda f: fit(f, n), reverse=True)[:SCALE_DECODES_THOROUGH]
        else:
            chosen = [max(sorted(factors, key=clarity, reverse=True)[:SCALE_FINALISTS], key=fit)]
        reading: Reading | None = None
        for factor in chosen:
            frames = self._each(partial(self._scaled_frame, factor=factor, window=SCALE_WINDOW_READ), range(n))
            reading = replace(self._read_frames(frames, per_frame), scale=factor)
            if reading.found:
                break
        assert reading is not None
        return reading

    def read_best(self, first: int | None = None, per_frame: bool = True, scaled: bool = True,
                  thorough: bool = False, step: Callable[[], None] | None = None) -> Reading:
        """What ``facelab verify`` reports: ``read``; failing that, where frames were added with regions,
        ``read_whole``; failing that, ``read_located``; failing that, ``read_rotated``; failing that, with
        ``scaled``, ``read_scaled`` (``thorough`` passed on) (at most ten decodes: ten chances of 2**-24 for an
        unmarked video to pass the magic and CRC check; eight without ``scaled``; with ``thorough``, 8 + 2 x
        SCALE_DECODES_THOROUGH; the whole frames' reading checks the layout's whole_list paths, whole_list - 1
        chances more). ``step`` is called as each of the READ_STAGES readings ends (or is skipped), for
        a progress bar; the ones a reading that decodes leaves are not called."""
        def done() -> None:
            if step is not None:
                step()

        plain = self.read(first, per_frame)
        done()
        if plain.found:
            return plain
        if any(self._in_region[:first]):  # (not ``_whole``: filled in by the first whole reading)
            whole = self.read_whole(first, per_frame)
            done()
            if whole.found:
                return whole
        else:
            done()
        located = self.read_located(first, per_frame)
        done()
        if located.found:
            return located
        rotated = self.read_rotated(first, per_frame)
        done()
        if rotated.found:
            return rotated
        if not scaled or not self.scale_factors():
            done()
            return plain
        enlarged = self.read_scaled(first, per_frame, thorough)
        done()
        return enlarged if enlarged.found else plain


__all__ = [
    "LAYOUTS",
    "MIN_SIDE",
    "SCHEME",
    "SCHEME_VERSION",
    "V2",
    "V3",
    "WRITTEN",
    "Layout",
    "Reading",
    "VideoReader",
    "block_coefficients",
    "choose_phase",
    "decode_score",
    "embed",
    "fold_frame",
    "make_payload",
    "model_prefix",
    "pilot_scores",
    "slot_table",
    "slot_values",
    "soft_values",
]

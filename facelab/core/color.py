"""Colour transfer: recolour an image so that its colour statistics match a reference image.

Shared by training (``ct_mode``: the src faces are recoloured towards dst faces, so the model does not
learn the src lighting) and merging (the swapped face is recoloured towards the frame's face).

``fit_color`` and ``transfer_color`` take float RGB images in [0, 1] of shape (H, W, 3) (``src`` and
``ref`` may differ in size) and optional masks of shape (H, W) or (H, W, 1) in [0, 1]. A mask weights the pixels whose
statistics count (the face, not the background); the mapping itself is applied to every pixel of
``src``, so pixels outside the mask change too (callers blend by the mask when they care). An empty
mask (total weight under one pixel) falls back to the whole image. The result is float32, clipped to
[0, 1], with the shape of ``src``.

| name | method                                                                                      |
|------|---------------------------------------------------------------------------------------------|
| rct  | Reinhard et al. 2001: per-channel mean and standard deviation in CIE L*a*b*, each           |
|      | channel's std ratio bounded by ``GAIN_BOUNDS`` (see below)                                  |
| lct  | linear: match the mean and covariance in RGB, x' = Cr^1/2 Cs^-1/2 (x - ms) + mr             |
| mkl  | Pitie & Kokaram 2007: the Monge-Kantorovich linear map (the optimal-transport map between   |
|      | two Gaussians), T = Cs^-1/2 (Cs^1/2 Cr Cs^1/2)^1/2 Cs^-1/2, in RGB                          |
| idt  | Pitie et al. 2005: iterative distribution transfer, 1-D quantile matching along the axes of |
|      | random rotations; matches the whole distribution, not only two moments                      |
| sot  | sliced optimal transport: per step, quantile matching along a batch of random directions;   |
|      | the mean displacement, scaled by 3 / batch, is the step (a relaxed sliced-OT gradient step) |
| mix  | in L*a*b*: Reinhard on the lightness L (mean/std, bounded ratio), Monge-Kantorovich on the  |
|      | chroma plane (a, b); keeps the src shape of the L histogram while taking the reference's    |
|      | colour cast                                                                                 |

Every method is a pointwise colour map fitted on (src, ref): ``fit_color`` returns it as a
``ColorMap`` whose ``apply`` recolours any image the same way (training recolours the network input
and the target with one map). ``transfer_color`` = fit on src, apply to src.

The methods are the entries of the registry ``COLOR_TRANSFERS``: name -> ``ColorTransfer`` (a fit
function from ``FitInput`` to a ``ColorMap``, and whether it draws random numbers). Adding one is a fit
function plus one ``COLOR_TRANSFERS.register`` line; the training option ``ct_mode`` offers every name,
and a merge colour transfer (facelab.merge.color) can name it.

Reinhard's gain (rct's three channels, mix's lightness) is the ratio of the reference's standard
deviation to src's, bounded per channel by ``GAIN_BOUNDS``: [1/2, 2] for L*, [1/2, 1] for a* and b*.
Inside a face mask the chroma spread is made mostly by a few features (lips, make-up, brows, beard,
glasses, hair at the mask's edge) rather than by the lighting, which moves the chroma means (matched
exactly whatever the gain). An unbounded ratio rescales those features with another face's: a made-up
woman onto a man with a nearly uniform b* (the bundled clips) got a b* gain of 0.2 next to an a* gain
of 0.8, which pulled the lips' b* to the skin's and turned them pink; a woman onto a man whose mask
holds dark hair and glasses (lp_d6 -> lp_d9) got a* and b* gains of 1.1-1.3 and 1.8-2.3, which made
her lips stand out from her skin more than in either face. So chroma is never amplified (a duller
result is a smaller error than a neon one) and shrinks at most by half; the lightness, whose spread is
the shading, may scale both ways.

``match_local`` is not a pointwise map, so it is not in the registry (training applies one map to a sample's
input and target): it shifts each pixel of src by the difference of the two images' local mean colours in
L*a*b* (Gaussian windows of ``LOCAL_SIGMA`` x the image's side, weighted by the masks). The reference's colour
and its shading (light from one side, a shadow under the brows) come over; src's own contrast does not change,
so dark eyes, brows and make-up keep their depth where rct's lightness gain, fitted on a face whose spread is
its features, halves it. The merge's ``local`` colour transfer.

idt and sot are random: they take ``rng`` (a numpy Generator) and are deterministic given its state.
They fit on at most ``MAX_STAT_PIXELS`` pixels per image (drawn with ``rng``) and each 1-D match is
piecewise linear through ``QUANTILE_KNOTS`` quantiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from facelab.core.registry import Registry
from facelab.core.types import F32, F64, FloatImage

MaskLike = ArrayLike

MAX_STAT_PIXELS = 8192  # idt/sot: pixels per image used to fit the 1-D matches
QUANTILE_KNOTS = 129  # idt/sot: knots of each piecewise-linear 1-D map (min, 127 quantiles, max)
LUT_SIZE = 4096  # idt/sot: table entries when applying a 1-D map to many pixels
_MIN_WEIGHT = 1.0  # a mask with less total weight than one full pixel counts as empty
_COV_EPS = 1e-5  # covariance ridge (RGB in [0, 1]): keeps flat or tiny regions invertible
_STD_FLOOR = 0.5  # Lab units: lower bound on a src channel's std before dividing by it
# rct, mix's lightness: bounds (low, high) on each channel's std ratio, reference / src; rows L*, a*, b*
GAIN_BOUNDS: tuple[tuple[float, float], ...] = ((0.5, 2.0), (0.5, 1.0), (0.5, 1.0))
# match_local: the window's sigma as a share of the image's longer side (1/8: 8 px on a 64 px face, wider
# than an eye, so the reference's features do not come over; 1/16 faded src's eyes towards dst's on the demo
# pair, 1/4 matched the shading more coarsely: docs/quality.md, session 23)
LOCAL_SIGMA = 0.125
_LOCAL_FLOOR = 1e-3  # match_local: the smallest window weight divided by (pixels far outside the mask)
_SOT_RELAX = 1.0  # sot: step relative to the unbiased full-displacement estimate
_LEVELS = np.concatenate([[0.0], (np.arange(QUANTILE_KNOTS - 2) + 0.5) / (QUANTILE_KNOTS - 2), [1.0]])


# ----------------------------------------------------------------------------------------------------
# input checks and statistics


def _image(img: ArrayLike, name: str) -> FloatImage:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name} must be an H x W x 3 RGB image, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be a float image in [0, 1], got dtype {arr.dtype}")
    out: FloatImage = np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)
    return out


def _weights(mask: MaskLike | None, shape: tuple[int, ...], name: str) -> F32 | None:
    """Flattened per-pixel weights in [0, 1], or None for "all pixels" (no mask or an empty one)."""
    if mask is None:
        return None
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.shape != tuple(shape[:2]):
        raise ValueError(f"{name} must have shape {tuple(shape[:2])} (or with a trailing 1), got {m.shape}")
    w: F32 = np.clip(m.reshape(-1), 0.0, 1.0)  # NaN stays NaN through clip: zero it
    w[np.isnan(w)] = 0.0
    if float(w.sum(dtype=np.float64)) < _MIN_WEIGHT:
        return None
    return w


def _moments(x: F32, w: F32 | None) -> tuple[F64, F64]:
    """Weighted mean (C,) and covariance (C, C) of the rows of x (N, C); float32 data, float64 results."""
    if w is None:
        mu: F64 = (np.ones(len(x), dtype=np.float32) @ x).astype(np.float64) / len(x)
        xc = x - mu.astype(np.float32)
        cov: F64 = (xc.T @ xc).astype(np.float64) / len(x)
    else:
        total = float(w.sum(dtype=np.float64))
        mu = (w @ x).astype(np.float64) / total
        xc = x - mu.astype(np.float32)
        cov = ((xc * w[:, None]).T @ xc).astype(np.float64) / total
    return mu, cov


def _sym_power(c: F64, power: float) -> F64:
    """c^power for a symmetric positive semi-definite matrix (callers add a ridge before inverse powers)."""
    vals, vecs = np.linalg.eigh((c + c.T) / 2)
    vals = np.maximum(vals, 1e-12) ** power
    out: F64 = (vecs * vals) @ vecs.T
    return out


def _ridge(c: F64) -> F64:
    out: F64 = c + _COV_EPS * np.eye(len(c))
    return out


def _lab(img: FloatImage) -> FloatImage:
    out: FloatImage = np.asarray(cv2.cvtColor(img, cv2.COLOR_RGB2Lab), dtype=np.float32)
    return out


def _rgb(lab: NDArray[Any]) -> FloatImage:
    lab32 = np.ascontiguousarray(lab, dtype=np.float32)
    out: FloatImage = np.asarray(cv2.cvtColor(lab32, cv2.COLOR_Lab2RGB), dtype=np.float32)
    return out


def _prepare(
    src: ArrayLike, ref: ArrayLike, src_mask: MaskLike | None, ref_mask: MaskLike | None
) -> tuple[FloatImage, FloatImage, F32 | None, F32 | None]:
    s = _image(src, "src")
    r = _image(ref, "ref")
    return s, r, _weights(src_mask, s.shape, "src_mask"), _weights(ref_mask, r.shape, "ref_mask")


# ----------------------------------------------------------------------------------------------------
# colour maps


class ColorMap(Protocol):
    """A fitted pointwise colour map."""

    def apply(self, img: ArrayLike) -> FloatImage:
        """Recolour an RGB float image (H, W, 3); float32 in [0, 1] with the same shape."""
        ...


@dataclass(frozen=True)
class IdentityMap:
    def apply(self, img: ArrayLike) -> FloatImage:
        return _image(img, "img").copy()


@dataclass(frozen=True)
class AffineMap:
    """x' = matrix @ x + offset, in RGB or in L*a*b*."""

    space: Literal["rgb", "lab"]
    matrix: F64  # (3, 3)
    offset: F64  # (3,)

    def apply(self, img: ArrayLike) -> FloatImage:
        x = _image(img, "img")
        if self.space == "lab":
            x = _lab(x)
        m = np.hstack([self.matrix, self.offset.reshape(3, 1)]).astype(np.float32)
        out = np.asarray(cv2.transform(x, m), dtype=np.float32)  # one vectorised pass over the pixels
        if self.space == "lab":
            out = _rgb(out)
        result: FloatImage = np.clip(out, 0.0, 1.0)
        return result


@dataclass(frozen=True)
class SliceStep:
    """One step of a sliced map: x += scale * sum_k (f_k(x . d_k) - x . d_k) d_k."""

    directions: F64  # (K, 3) unit vectors
    src_knots: F64  # (K, QUANTILE_KNOTS): src quantiles along each direction (non-decreasing)
    ref_knots: F64  # (K, QUANTILE_KNOTS): the reference's quantiles at the same levels
    scale: float

    def move(self, xt: F64) -> F64:
        """Move points given as columns, xt (3, N)."""
        # einsum, not @: OpenBLAS is slow (and threads) on these (K, 3) x (3, N) shapes
        proj = np.einsum("kc,cn->kn", self.directions, xt)
        disp = np.empty_like(proj)
        for k in range(len(self.directions)):
            disp[k] = _piecewise_linear(proj[k], self.src_knots[k], self.ref_knots[k])
        disp -= proj
        out: F64 = xt + self.scale * np.einsum("kc,kn->cn", self.directions, disp)
        return out


def _piecewise_linear(x: F64, knots: F64, values: F64) -> F64:
    """np.interp(x, knots, values), through a uniform table of LUT_SIZE entries for large x.

    np.interp binary-searches every point (slow on unordered pixels); the table turns the search into
    arithmetic. Its error is at most the map's slope change times a table step (about 1e-4 here).
    """
    lo, hi = float(knots[0]), float(knots[-1])
    if len(x) < 4 * LUT_SIZE or not hi - lo > 1e-9:
        out: F64 = np.interp(x, knots, values)
        return out
    table = np.interp(np.linspace(lo, hi, LUT_SIZE), knots, values)
    f = (x - lo) * ((LUT_SIZE - 1) / (hi - lo))
    np.clip(f, 0.0, LUT_SIZE - 1, out=f)
    i = f.astype(np.intp)
    np.minimum(i, LUT_SIZE - 2, out=i)
    f -= i
    a = table[i]
    out = a + f * (table[i + 1] - a)
    return out


@dataclass(frozen=True)
class SlicedMap:
    """A sequence of 1-D quantile matches along directions in RGB (idt, sot)."""

    steps: tuple[SliceStep, ...]

    def apply(self, img: ArrayLike) -> FloatImage:
        x = _image(img, "img")
        xt: F64 = np.ascontiguousarray(x.reshape(-1, 3).T, dtype=np.float64)  # (3, N)
        for step in self.steps:
            xt = step.move(xt)
        out: FloatImage = np.clip(xt.T.reshape(x.shape), 0.0, 1.0).astype(np.float32)
        return out


# ----------------------------------------------------------------------------------------------------
# the registry


@dataclass(frozen=True)
class FitInput:
    """What a colour transfer's fit function gets: the checked images and mask weights, the random
    generator (a generator only for transfers registered with ``random=True``) and the iterative
    methods' settings."""

    src: FloatImage
    ref: FloatImage
    src_w: F32 | None  # flattened pixel weights in [0, 1]; None: every pixel counts
    ref_w: F32 | None
    rng: np.random.Generator | None
    iterations: int = 10  # idt
    steps: int = 10  # sot
    batch: int = 16  # sot

    def generator(self) -> np.random.Generator:
        if self.rng is None:
            raise ValueError("a colour transfer that draws random numbers must be registered with random=True")
        return self.rng


@dataclass(frozen=True)
class ColorTransfer:
    """A colour transfer: its fit function, and whether the fit draws random numbers (then it gets a
    generator, fresh entropy when the caller passes none)."""

    fit: Callable[[FitInput], ColorMap]
    random: bool = False


# name -> colour transfer; the training option ct_mode names one, and every merge colour transfer maps to one
COLOR_TRANSFERS: Registry[ColorTransfer] = Registry("colour transfer")


# ----------------------------------------------------------------------------------------------------
# fitting: moment matching


def _reinhard_gain(var_s: F64, var_r: F64) -> F64:
    """Gains sd_r / sd_s (src std floored at _STD_FLOOR) of the first len(var_s) L*a*b* channels, each
    bounded by GAIN_BOUNDS."""
    sd_s = np.maximum(np.sqrt(np.maximum(var_s, 0.0)), _STD_FLOOR)
    bounds = np.asarray(GAIN_BOUNDS[: len(var_s)], dtype=np.float64)
    gain: F64 = np.clip(np.sqrt(np.maximum(var_r, 0.0)) / sd_s, bounds[:, 0], bounds[:, 1])
    return gain


def _mkl_matrix(cov_s: F64, cov_r: F64) -> F64:
    """The Monge-Kantorovich linear map between N(., cov_s) and N(., cov_r)."""
    cs = _ridge(cov_s)
    cs_half = _sym_power(cs, 0.5)
    cs_inv_half = _sym_power(cs, -0.5)
    mid = _sym_power(cs_half @ _ridge(cov_r) @ cs_half, 0.5)
    out: F64 = cs_inv_half @ mid @ cs_inv_half
    return out

def _fit_none(x: FitInput) -> IdentityMap:
    return IdentityMap()


def _fit_rct(x: FitInput) -> AffineMap:
    """Reinhard: each L*a*b* channel gets the reference's mean and standard deviation (the std ratio of each
    channel bounded by GAIN_BOUNDS)."""
    mu_s, cov_s = _moments(_lab(x.src).reshape(-1, 3), x.src_w)
    mu_r, cov_r = _moments(_lab(x.ref).reshape(-1, 3), x.ref_w)
    gain = _reinhard_gain(np.diag(cov_s), np.diag(cov_r))
    return AffineMap("lab", np.diag(gain), mu_r - gain * mu_s)


def _fit_lct(x: FitInput) -> AffineMap:
    """Linear: the RGB mean and covariance of the reference (symmetric square roots)."""
    mu_s, cov_s = _moments(x.src.reshape(-1, 3), x.src_w)
    mu_r, cov_r = _moments(x.ref.reshape(-1, 3), x.ref_w)
    a = _sym_power(_ridge(cov_r), 0.5) @ _sym_power(_ridge(cov_s), -0.5)
    return AffineMap("rgb", a, mu_r - a @ mu_s)


def _fit_mkl(x: FitInput) -> AffineMap:
    """Monge-Kantorovich linear transfer (Pitie & Kokaram 2007) in RGB."""
    mu_s, cov_s = _moments(x.src.reshape(-1, 3), x.src_w)
    mu_r, cov_r = _moments(x.ref.reshape(-1, 3), x.ref_w)
    t = _mkl_matrix(cov_s, cov_r)
    return AffineMap("rgb", t, mu_r - t @ mu_s)


def _fit_mix(x: FitInput) -> AffineMap:
    """L*a*b*: Reinhard (mean/std) on the lightness L, Monge-Kantorovich on the chroma plane (a, b).

    facelab's take on DFL's "mix-m": the lightness keeps its own histogram shape (only shifted and
    scaled, so shading and highlights survive), while the 2-D chroma distribution, whose axes are
    correlated for skin, is mapped with the optimal linear transport map rather than per channel.
    """
    mu_s, cov_s = _moments(_lab(x.src).reshape(-1, 3), x.src_w)
    mu_r, cov_r = _moments(_lab(x.ref).reshape(-1, 3), x.ref_w)
    mat = np.zeros((3, 3))
    mat[0, 0] = _reinhard_gain(cov_s[:1, 0], cov_r[:1, 0])[0]
    # chroma in Lab units (std ~ 5..20): the RGB-scale ridge inside _mkl_matrix is negligible here
    mat[1:, 1:] = _mkl_matrix(cov_s[1:, 1:], cov_r[1:, 1:])
    return AffineMap("lab", mat, mu_r - mat @ mu_s)


# ----------------------------------------------------------------------------------------------------
# fitting: distribution matching


def _stat_rows(n: int, w: F32 | None, rng: np.random.Generator) -> NDArray[np.intp]:
    """Rows that form the fitted distributions: the weighted ones, at most MAX_STAT_PIXELS."""
    rows: NDArray[np.intp] = np.arange(n) if w is None else np.flatnonzero(w > 0)
    if len(rows) > MAX_STAT_PIXELS:
        rows = np.sort(rng.choice(rows, MAX_STAT_PIXELS, replace=False))
    return rows


def _quantiles(xt: F64, w: F64 | None, directions: F64) -> F64:
    """(K, QUANTILE_KNOTS): the (weighted) quantiles of the projections of xt (3, N) on each direction."""
    proj = np.einsum("kc,cn->kn", directions, xt)
    out: F64 = np.empty((len(directions), QUANTILE_KNOTS))
    for k in range(len(directions)):
        p = proj[k]
        if w is None:
            values = np.sort(p)
            probs: F64 = (np.arange(len(values), dtype=np.float64) + 0.5) / len(values)
        else:
            order = np.argsort(p)
            values = p[order]
            ww = w[order]
            cum = np.cumsum(ww)
            probs = (cum - 0.5 * ww) / cum[-1]
        out[k] = np.interp(_LEVELS, probs, values)
        out[k, 0], out[k, -1] = values[0], values[-1]  # the knots span the whole range
    return out


def _fit_sliced(
    s: FloatImage,
    r: FloatImage,
    ws: F32 | None,
    wr: F32 | None,
    rng: np.random.Generator,
    draw: Callable[[np.random.Generator], tuple[F64, float]],
    steps: int,
) -> SlicedMap:
    """Fit steps of quantile matching on pixel samples; each step's directions and scale from ``draw``."""
    sx, rx = s.reshape(-1, 3), r.reshape(-1, 3)
    rows = _stat_rows(len(rx), wr, rng)
    ref_x = np.ascontiguousarray(rx[rows].T, dtype=np.float64)
    ref_w = None if wr is None else wr[rows].astype(np.float64)
    rows = _stat_rows(len(sx), ws, rng)
    x = np.ascontiguousarray(sx[rows].T, dtype=np.float64)  # (3, n): moves with the map as it is built
    x_w = None if ws is None else ws[rows].astype(np.float64)
    fitted = []
    for _ in range(steps):
        directions, scale = draw(rng)
        step = SliceStep(directions, _quantiles(x, x_w, directions), _quantiles(ref_x, ref_w, directions), scale)
        x = step.move(x)
        fitted.append(step)
    return SlicedMap(tuple(fitted))


def _random_rotation(rng: np.random.Generator) -> tuple[F64, float]:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    rot: F64 = (q * np.sign(np.diag(r))).T  # rows: an orthonormal basis
    return rot, 1.0


def _random_directions(batch: int) -> Callable[[np.random.Generator], tuple[F64, float]]:
    def draw(rng: np.random.Generator) -> tuple[F64, float]:
        dirs = rng.standard_normal((batch, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        # E[d d^T] = I / 3: scaled by 3 / batch, the summed displacement estimates the full one
        return dirs, 3.0 / batch * _SOT_RELAX

    return draw



def _fit_idt(x: FitInput) -> SlicedMap:
    """Iterative distribution transfer (Pitie, Kokaram & Dahyot 2005) in RGB.

    Each iteration draws a random rotation and matches the 1-D distribution of each rotated axis to
    the reference's (quantile mapping); the displacements, rotated back, move every pixel.
    """
    if x.iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {x.iterations}")
    return _fit_sliced(x.src, x.ref, x.src_w, x.ref_w, x.generator(), _random_rotation, x.iterations)


def _fit_sot(x: FitInput) -> SlicedMap:
    """Sliced optimal transport in RGB.

    Each step projects src and reference onto ``batch`` random unit directions, matches the sorted
    projections (1-D optimal transport) and moves every pixel by the summed displacement scaled by
    3 / batch: an unbiased estimate of the full displacement (E[d d^T] = I / 3), taken as a relaxed
    step, so the sliced distance shrinks over the steps without overshooting.
    """
    if x.steps < 0 or x.batch < 1:
        raise ValueError(f"steps must be >= 0 and batch >= 1, got {x.steps} and {x.batch}")
    return _fit_sliced(x.src, x.ref, x.src_w, x.ref_w, x.generator(), _random_directions(x.batch), x.steps)


COLOR_TRANSFERS.register("none", ColorTransfer(_fit_none))
COLOR_TRANSFERS.register("rct", ColorTransfer(_fit_rct))
COLOR_TRANSFERS.register("lct", ColorTransfer(_fit_lct))
COLOR_TRANSFERS.register("mkl", ColorTransfer(_fit_mkl))
COLOR_TRANSFERS.register("idt", ColorTransfer(_fit_idt, random=True))
COLOR_TRANSFERS.register("sot", ColorTransfer(_fit_sot, random=True))
COLOR_TRANSFERS.register("mix", ColorTransfer(_fit_mix))


# ----------------------------------------------------------------------------------------------------
# the local match (not a pointwise map)


def _local_mean(lab: FloatImage, w: F32 | None, sigma: float) -> FloatImage:
    """Each pixel's mean colour over a Gaussian window of ``sigma`` px, weighted by ``w`` (None: every pixel)."""
    h, wd = lab.shape[:2]
    m = np.ones((h, wd), np.float32) if w is None else w.reshape(h, wd)
    num = cv2.GaussianBlur(lab * m[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    out: FloatImage = num / np.maximum(den, _LOCAL_FLOOR)[..., None]
    return out


def match_local(src: ArrayLike, ref: ArrayLike, src_mask: MaskLike | None = None, ref_mask: MaskLike | None = None,
                sigma: float = LOCAL_SIGMA) -> FloatImage:
    """``src`` with the local mean colour of ``ref`` (see the module's notes): each pixel moved in L*a*b* by
    ref's mean minus src's over a Gaussian window of ``sigma`` x the side, inside the masks (an empty or missing
    mask: the whole image). Images of different sizes: ref's local means are resized to src's."""
    s, r, ws, wr = _prepare(src, ref, src_mask, ref_mask)
    lab_s = _lab(s)
    mean_s = _local_mean(lab_s, ws, sigma * max(s.shape[:2]))
    mean_r = _local_mean(_lab(r), wr, sigma * max(r.shape[:2]))
    if mean_r.shape != mean_s.shape:
        mean_r = np.asarray(cv2.resize(mean_r, (s.shape[1], s.shape[0]), interpolation=cv2.INTER_LINEAR),
                            dtype=np.float32)
    out: FloatImage = np.clip(_rgb(lab_s + mean_r - mean_s), 0.0, 1.0)
    return out


# ----------------------------------------------------------------------------------------------------
# public API


def fit_color(
    name: str,
    src: ArrayLike,
    ref: ArrayLike,
    src_mask: MaskLike | None = None,
    ref_mask: MaskLike | None = None,
    rng: np.random.Generator | None = None,
    *,
    iterations: int = 10,
    steps: int = 10,
    batch: int = 16,
) -> ColorMap:
    """Fit the named colour transfer (a COLOR_TRANSFERS name) of ``src`` towards ``ref`` ("none": the identity).

    ``iterations`` is idt's, ``steps`` and ``batch`` are sot's; ``rng`` serves the random transfers (None:
    fresh entropy).
    """
    if name not in COLOR_TRANSFERS:
        raise ValueError(f"unknown colour transfer {name!r}: choose one of {', '.join(COLOR_TRANSFERS.names())}")
    transfer = COLOR_TRANSFERS.get(name)
    s, r, ws, wr = _prepare(src, ref, src_mask, ref_mask)
    if transfer.random and rng is None:
        rng = np.random.default_rng()
    return transfer.fit(FitInput(s, r, ws, wr, rng if transfer.random else None, iterations, steps, batch))


def transfer_color(
    name: str,
    src: ArrayLike,
    ref: ArrayLike,
    src_mask: MaskLike | None = None,
    ref_mask: MaskLike | None = None,
    rng: np.random.Generator | None = None,
) -> FloatImage:
    """Recolour ``src`` towards ``ref`` with the named method ("none" returns a clipped float32 copy)."""
    return fit_color(name, src, ref, src_mask, ref_mask, rng).apply(src)

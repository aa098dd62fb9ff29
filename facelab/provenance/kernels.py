"""The embed's per-block arithmetic, compiled with numba (session 35).

syncmark's whole-frame mark holds each block's gain to an energy budget, spreads each block's change over its cells
(the edge weights) and solves each region's margin: on a 480p frame that is a few hundred numpy operations on arrays
of 24 x 24 blocks or 120 x 120 cells, each a few microseconds of call overhead, about 40% of the embed. Here each is a
loop over the blocks, compiled once (``cache=True``: the machine code is kept beside this module, so a later process
loads it in about a second) and run without the GIL (``nogil``: merge's worker threads mark side by side).

The formulas are syncmark's own (its docstrings and docs/provenance.md say why they are what they are); its numpy
versions gave the same marked pixels on all 420 frames of the seven benchmark clips. Sums run in order here, not
pairwise, so a value can differ from numpy's in its last bits; no marked pixel did.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


def _drawn_py(most: F32, gain: F64, side: int, boost: float) -> tuple[F32, F64]:
    nby, nbx = gain.shape
    out = np.empty_like(most)
    share = np.empty((nby, nbx))
    per_cell = 1.0 / (side * side)
    for by in range(nby):
        for bx in range(nbx):
            g = np.float32(max(gain[by, bx], 1e-9))
            total = 0.0
            for y in range(by * side, by * side + side):
                for x in range(bx * side, bx * side + side):
                    w = most[y, x] / g
                    if w > 1.0:
                        w = np.float32(1.0)
                    out[y, x] = w
                    total += np.float64(w * w)
            scale = np.float32(1.0 / np.sqrt(max(total * per_cell, 1e-12)))
            total = 0.0
            for y in range(by * side, by * side + side):
                for x in range(bx * side, bx * side + side):
                    v = out[y, x] * scale
                    if v > boost:
                        v = np.float32(boost)
                    out[y, x] = v
                    total += np.float64(v * v)
            share[by, bx] = total * per_cell
    return out, share


def _filled_py(gain: F64, share: F64, energy: float, gain_max: float, fill_most: float) -> F64:
    n = gain.size
    wanted = n * energy
    free = gain * gain * share
    if free.sum() >= wanted:
        return gain.copy()
    cap = np.maximum(gain_max, gain)
    top: F64 = np.minimum(fill_most * gain, cap)
    if (top * top * share).sum() < wanted:
        return top
    knots = cap / np.maximum(gain, 1e-12)  # the factor at which each block reaches its cap
    order = np.argsort(knots)
    spent = np.zeros(n + 1)  # with the first j blocks in knot order capped: wanted = spent[j] + factor**2 rising[j]
    for j in range(n):
        spent[j + 1] = spent[j] + cap[order[j]] * cap[order[j]] * share[order[j]]
    rising = np.zeros(n + 1)
    for j in range(n - 1, -1, -1):
        rising[j] = rising[j + 1] + free[order[j]]
    factor = fill_most
    for j in range(n + 1):
        low = 1.0 if j == 0 else knots[order[j - 1]]
        high = knots[order[j]] if j < n else np.inf
        if rising[j] <= 0.0:
            continue
        f = np.sqrt(max(wanted - spent[j], 0.0) / rising[j])
        if low <= f <= high:
            factor = min(f, fill_most)
            break
    out: F64 = np.minimum(factor * gain, cap)
    return out


def _count_sum_py(mask: Bools, values: F64) -> tuple[int, float]:
    """How many of ``mask`` are set, and the sum of ``values`` there."""
    n, total = 0, 0.0
    for i in range(values.size):
        if mask.flat[i]:
            n += 1
            total += values.flat[i]
    return n, total


def _held_py(raw: F64, share: F64, inside: Bools, within: Bools, rest: Bools, even: Bools, within_energy: float,
             rest_energy: float, gain_max: float, fill_most: float) -> F64:
    gain = raw.copy()
    spent = raw * raw * share  # each block's energy, kept in step with the gains
    n_inside, total = _count_sum_py(inside, spent)
    if n_inside > 0:
        f = max(1.0, np.sqrt(total / n_inside))
        gain /= f
        spent /= f * f
    n_within, total = _count_sum_py(within, spent)
    if n_within > 0:
        f = max(1.0, np.sqrt(total / n_within / within_energy))
        for i in range(raw.size):
            if within.flat[i]:
                gain.flat[i] /= f
                spent.flat[i] /= f * f
    n_even, n_rest, others = 0, 0, 0.0
    for i in range(raw.size):
        if even.flat[i]:
            n_even += 1
        if rest.flat[i]:
            n_rest += 1
            if not even.flat[i]:
                others += spent.flat[i]
    if rest_energy > 0 and n_even > 0:
        picked = np.empty(n_even, dtype=np.int64)
        k = 0
        for i in range(raw.size):
            if even.flat[i]:
                picked[k] = i
                k += 1
        raised = _filled_py(gain.ravel()[picked], share.ravel()[picked], (rest_energy * n_rest - others) / n_even,
                            gain_max, fill_most)
        for k in range(n_even):
            gain.flat[picked[k]] = raised[k]
    return gain


def _margin_py(a: F64, w: F64, budget: float, push_most: float, steps: int, tolerance: float) -> float:
    """The margin m at which slots at hosts ``a`` (in push units), weighted ``w``, moved clip(m - a, 0, push_most)
    spend ``budget``: sum(w * move**2) = budget (every slot at push_most where even that spends less). Newton's
    method on the energy, kept inside a bisection bracket (the energy is increasing and piecewise quadratic, but
    not convex: it flattens where slots reach push_most): 6-7 steps to the tolerance on merged frames, against 24
    bisection steps before (session 18)."""
    low, high = a.min(), a.max() + push_most
    if w.sum() * push_most**2 <= budget:
        return float(high)
    m = 0.5 * (low + high)
    for _ in range(steps):
        energy, slope = 0.0, 0.0
        for j in range(a.size):
            d = m - a[j]
            if d <= 0.0:
                continue
            if d >= push_most:
                energy += w[j] * push_most * push_most
            else:
                energy += w[j] * d * d
                slope += w[j] * d  # the slots still moving freely
        excess = energy - budget
        if abs(excess) <= tolerance * budget:
            return float(m)
        if excess > 0:
            high = m
        else:
            low = m
        step = m - excess / (2.0 * slope) if slope > 0 else low - 1.0
        m = step if low < step < high else 0.5 * (low + high)
    return float(low)


def _pushes_py(host: F64, gain: F64, labels: Ints, n_regions: int, energy: float, push_most: float, hopeless: float,
               steps: int, tolerance: float) -> F64:
    norm = host / gain
    g2 = gain * gain
    out = np.zeros_like(host)
    for region in range(n_regions):
        total, n_live = 0.0, 0
        for i in range(host.size):
            if labels[i] == region:
                total += g2[i]
                n_live += norm[i] >= -hopeless
        if n_live == 0:
            continue
        live = np.empty(n_live, dtype=np.int64)
        k = 0
        for i in range(host.size):
            if labels[i] == region and norm[i] >= -hopeless:
                live[k] = i
                k += 1
        a = norm[live]
        m = _margin_py(a, g2[live], energy * total, push_most, steps, tolerance)
        for k in range(n_live):
            out[live[k]] = min(max(m - a[k], 0.0), push_most) * gain[live[k]]
    return out


_compile = njit(cache=True, nogil=True)
_drawn_c = _compile(_drawn_py)
_filled_py = _compile(_filled_py)  # the compiled versions call each other
_count_sum_py = _compile(_count_sum_py)
_held_c = _compile(_held_py)
_margin_py = _compile(_margin_py)
_pushes_c = _compile(_pushes_py)


def drawn(most: F32, gain: F64, side: int, boost: float) -> tuple[F32, F64]:
    """syncmark's edge weights of every cell (``most``: what each cell may draw, syncmark._local_most; ``side`` x
    ``side`` cells a block): min(most / the block's gain, 1), so a block across an edge does not draw its textured
    side's change over its flat side (a pale blotch at 4x, session 31: the comment above syncmark.EDGE_RATIO), then
    scaled to a mean square of 1 per block where that raises none past ``boost`` (the energy moved to the textured
    side); and each block's mean square after that cap (its ``share``)."""
    out: tuple[F32, F64] = _drawn_c(np.ascontiguousarray(most), np.ascontiguousarray(gain, dtype=np.float64), side,
                                    float(boost))
    return out


def filled(gain: F64, share: F64, energy: float, gain_max: float, fill_most: float) -> F64:
    """syncmark's fill: the gains raised by one factor (solved exactly, at most ``fill_most``, none past its cap)
    until their mean drawn energy is ``energy``."""
    out: F64 = _filled_py(np.ascontiguousarray(gain, dtype=np.float64), np.ascontiguousarray(share, dtype=np.float64),
                          float(energy), float(gain_max), float(fill_most))
    return out


def held(raw: F64, share: F64, inside: Bools, within: Bools | None, rest: Bools, even: Bools, within_energy: float,
         rest_energy: float, gain_max: float, fill_most: float) -> F64:
    """syncmark's gains held to their energies (the inside blocks' mean at most 1, the ``within`` blocks' at most
    ``within_energy``, the rest raised towards ``rest_energy`` through its ``even`` blocks)."""
    faces = np.zeros_like(inside, dtype=np.bool_) if within is None else np.ascontiguousarray(within)
    out: F64 = _held_c(np.ascontiguousarray(raw, dtype=np.float64), np.ascontiguousarray(share, dtype=np.float64),
                       np.ascontiguousarray(inside), faces,
                       np.ascontiguousarray(rest), np.ascontiguousarray(even), float(within_energy),
                       float(rest_energy), float(gain_max), float(fill_most))
    return out


def pushes(host: F64, gain: F64, labels: npt.NDArray[np.integer] | None, energy: float, push_most: float,
           hopeless: float, steps: int, tolerance: float) -> F64:
    """syncmark's informed moves of every slot (flat arrays; ``labels``: each slot's region, default one), each region
    moved to the common margin at which it spends ``energy`` x its uniform mark's energy."""
    lab = np.zeros(host.size, dtype=np.int64) if labels is None else np.ascontiguousarray(labels, dtype=np.int64)
    out: F64 = _pushes_c(np.ascontiguousarray(host, dtype=np.float64), np.ascontiguousarray(gain, dtype=np.float64),
                         lab, int(lab.max()) + 1 if lab.size else 0, float(energy), float(push_most), float(hopeless),
                         int(steps), float(tolerance))
    return out


def warm_up() -> None:
    """Compile (or load from the cache) every kernel once, on tiny inputs: `make install` runs it, so that no merge,
    live session or test pays the first compile (about 10 s on two cores) on its first frame."""
    cells = np.ones((2, 2), dtype=np.float32)
    gains = np.ones((1, 1))
    flags = np.ones((1, 1), dtype=np.bool_)
    drawn(cells, gains, 2, 2.0)
    held(gains, gains, flags, flags, flags, flags, 1.0, 1.5, 2.0, 2.0)
    filled(np.ones(2), np.ones(2), 1.0, 2.0, 2.0)
    pushes(np.zeros(4), np.ones(4), np.array([0, 0, 1, 1]), 1.0, 2.0, 1.0, 60, 1e-10)

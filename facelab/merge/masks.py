"""Mask modes: which mask the swapped face is blended with, as data.

A mode is a ``MaskSpec``: a prediction-side mask (``FULL``: the whole crop, ``LEARNED_PRD``: the model's mask
of the swapped face, ``XSEG_PRD``: XSeg's), a dst-side mask (``HULL``: the dst face's landmark hull,
``LEARNED_DST``: the model's mask of the dst face, ``XSEG_DST``: XSeg's or the one stored in the dst face),
either of them absent, and how the two combine when both are there (``product``: only where both keep
the face; ``union``). Masks live in the model's crop (R x R float32 in [0, 1]).

What the rest of merge asks about a mode (must the model predict dst's own mask, is XSeg needed for the
predicted face or for dst) is derived from the specs' sides, so a mode is one spec plus one
``MASK_MODES.register`` line, and a new kind of mask one ``MaskSide``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facelab.core.errors import InputError
from facelab.core.registry import Registry
from facelab.core.types import F32


class MaskSources(Protocol):
    """What a mask side reads from a model's output (facelab.merge.compose.Prediction)."""

    @property
    def face(self) -> F32: ...
    @property
    def mask(self) -> F32: ...
    @property
    def dst_mask(self) -> F32 | None: ...
    @property
    def xseg_prd(self) -> F32 | None: ...
    @property
    def xseg_dst(self) -> F32 | None: ...


@dataclass(frozen=True)
class MaskSide:
    """One side's mask: ``get(prediction, hull)`` in crop space, or None when the prediction lacks it
    (then ``missing(mode)`` is the error). ``hull`` is the dst face's landmark hull in the crop, computed
    only for sides with ``needs_hull``. The flags say what the side needs before the merge starts."""

    get: Callable[[MaskSources, F32 | None], F32 | None]
    missing: Callable[[str], Exception] | None = None
    needs_hull: bool = False
    learned_dst: bool = False  # the model must predict the dst face's own mask
    xseg_prd: bool = False  # XSeg must run on the predicted face
    xseg_dst: bool = False  # the dst face needs an XSeg mask (stored, or XSeg run on it)


def _full(pred: MaskSources, hull: F32 | None) -> F32:
    r = pred.face.shape[0]
    return np.ones((r, r), dtype=np.float32)


FULL = MaskSide(_full)
LEARNED_PRD = MaskSide(lambda pred, hull: pred.mask)
XSEG_PRD = MaskSide(lambda pred, hull: pred.xseg_prd, xseg_prd=True, missing=lambda mode: InputError(
    f"mask mode {mode} needs the XSeg mask of the predicted face (--xseg-model)"))
HULL = MaskSide(lambda pred, hull: hull, needs_hull=True)
LEARNED_DST = MaskSide(lambda pred, hull: pred.dst_mask, learned_dst=True, missing=lambda mode: ValueError(
    f"mask mode {mode} needs the dst mask, which was not predicted"))
XSEG_DST = MaskSide(lambda pred, hull: pred.xseg_dst, xseg_dst=True, missing=lambda mode: InputError(
    f"mask mode {mode} needs the XSeg mask of the dst face (--xseg-model or xseg apply)"))


def product(prd: F32, dst: F32) -> F32:
    """Both sides keep the pixel."""
    out: F32 = prd * dst
    return out


def union(prd: F32, dst: F32) -> F32:
    """Either side keeps the pixel."""
    return np.clip(prd + dst, 0.0, 1.0)


@dataclass(frozen=True)
class MaskSpec:
    """A mask mode: its prediction-side and dst-side masks (at least one) and how both combine."""

    prd: MaskSide | None = None
    dst: MaskSide | None = None
    combine: Callable[[F32, F32], F32] = product

    def __post_init__(self) -> None:
        if self.prd is None and self.dst is None:
            raise ValueError("a mask mode needs a prediction-side or a dst-side mask")

    def _any(self, test: Callable[[MaskSide], bool]) -> bool:
        return any(test(side) for side in (self.prd, self.dst) if side is not None)

    @property
    def needs_hull(self) -> bool:
        return self._any(lambda s: s.needs_hull)

    @property
    def learned_dst(self) -> bool:
        return self._any(lambda s: s.learned_dst)

    @property
    def xseg_prd(self) -> bool:
        return self._any(lambda s: s.xseg_prd)

    @property
    def xseg_dst(self) -> bool:
        return self._any(lambda s: s.xseg_dst)

    def merged(self, prd: F32 | None, dst: F32 | None) -> F32:
        """The mode's mask from its sides' masks (one side alone is the mask)."""
        if prd is not None and dst is not None:
            return self.combine(prd, dst)
        mask = prd if prd is not None else dst
        assert mask is not None
        return mask


FULL_CROP = "full"  # the mask mode of the merge modes that blend the whole crop (raw-rgb, raw-predict)

MASK_MODES: Registry[MaskSpec] = Registry("mask mode")
MASK_MODES.register(FULL_CROP, MaskSpec(prd=FULL))
MASK_MODES.register("dst", MaskSpec(dst=HULL))
MASK_MODES.register("learned-prd", MaskSpec(prd=LEARNED_PRD))
MASK_MODES.register("learned-dst", MaskSpec(dst=LEARNED_DST))
MASK_MODES.register("learned-prd*learned-dst", MaskSpec(LEARNED_PRD, LEARNED_DST, product))
MASK_MODES.register("learned-prd+learned-dst", MaskSpec(LEARNED_PRD, LEARNED_DST, union))
MASK_MODES.register("xseg-prd", MaskSpec(prd=XSEG_PRD))
MASK_MODES.register("xseg-dst", MaskSpec(dst=XSEG_DST))
MASK_MODES.register("xseg-prd*xseg-dst", MaskSpec(XSEG_PRD, XSEG_DST, product))


# modes whose mask uses the mask the model predicts for the dst face itself (the model computes it only for these)
LEARNED_DST_MODES: AbstractSet[str] = MASK_MODES.view(lambda s: s.learned_dst)
XSEG_PRD_MODES: AbstractSet[str] = MASK_MODES.view(lambda s: s.xseg_prd)  # need an XSeg model
XSEG_DST_MODES: AbstractSet[str] = MASK_MODES.view(lambda s: s.xseg_dst)  # model or stored dst masks
XSEG_MASK_MODES: AbstractSet[str] = MASK_MODES.view(lambda s: s.xseg_prd or s.xseg_dst)


def _side(side: MaskSide | None, mode: str, pred: MaskSources, hull: F32 | None) -> F32 | None:
    if side is None:
        return None
    if side.needs_hull and hull is None:
        raise ValueError(f"mask mode {mode} needs the dst face's landmark hull")
    mask = side.get(pred, hull)
    if mask is None:
        assert side.missing is not None, f"mask mode {mode}: a side without its mask and without an error"
        raise side.missing(mode)
    return mask


def side_masks(mode: str, pred: MaskSources, hull: F32 | None = None) -> tuple[F32 | None, F32 | None]:
    """A mask mode's prediction-side and dst-side masks in crop space (None: the mode has no such side)."""
    spec = MASK_MODES.get(mode)
    return _side(spec.prd, mode, pred, hull), _side(spec.dst, mode, pred, hull)

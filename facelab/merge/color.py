"""Merge colour transfers: the ``color_transfer`` option's choices, each a core colour transfer
(facelab.core.color.COLOR_TRANSFERS) and where its statistics are fitted.

A masked transfer fits on the pixels the blend mask weights, on both the predicted face and the dst
crop; an unmasked one on the whole crop (background, hair and clothes too). rct and lct have no -m twin
and fit inside the mask: fitted on the whole crop, the dst side's statistics are those of its background,
so the face's mean colour is not matched (it ended 7-17 Lab units from dst's on four pairs of the bundled
and shared clips) and the spread ratios blow the lips up to neon (HSV S 0.47 -> 0.68-0.85) or bleach the
skin around pink lips. mkl and idt keep DFL's whole-crop fit; mkl-m and idt-m are their masked variants.
local (facelab.core.color.match_local) is not a global map: it moves each pixel by the difference of the two
faces' local mean colours inside the mask, so dst's colour and shading come over and the swapped face keeps its
own contrast (rct's lightness gain halved the depth of a made-up src's eyes on the demo pair).

Adding one is one ``MERGE_COLOR_TRANSFERS.register`` line (after registering its core transfer, if new).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelab.core.color import fit_color, match_local
from facelab.core.registry import Registry
from facelab.core.types import F32


@dataclass(frozen=True)
class MergeColor:
    """A merge colour transfer: the core method it runs (None: the face is left as it is, unless ``local``) and
    whether its statistics are fitted inside the blend mask."""

    method: str | None
    masked: bool = True
    local: bool = False  # match_local instead of a core method (always inside the mask)


MERGE_COLOR_TRANSFERS: Registry[MergeColor] = Registry("colour transfer")
MERGE_COLOR_TRANSFERS.register("none", MergeColor(None, masked=False))
MERGE_COLOR_TRANSFERS.register("rct", MergeColor("rct"))
MERGE_COLOR_TRANSFERS.register("lct", MergeColor("lct"))
MERGE_COLOR_TRANSFERS.register("mkl", MergeColor("mkl", masked=False))
MERGE_COLOR_TRANSFERS.register("mkl-m", MergeColor("mkl"))
MERGE_COLOR_TRANSFERS.register("idt", MergeColor("idt", masked=False))
MERGE_COLOR_TRANSFERS.register("idt-m", MergeColor("idt"))
MERGE_COLOR_TRANSFERS.register("sot-m", MergeColor("sot"))
MERGE_COLOR_TRANSFERS.register("mix-m", MergeColor("mix"))
MERGE_COLOR_TRANSFERS.register("local", MergeColor(None, local=True))


def recolor(name: str, face: F32, dst_face: F32, face_mask: F32, dst_mask: F32,
            rng: np.random.Generator | None = None) -> F32:
    """The predicted face recoloured towards the dst face with a merge colour transfer (masked ones fit on
    the pixels the masks weight; ``rng`` None: a generator seeded 0)."""
    transfer = MERGE_COLOR_TRANSFERS.get(name)
    if transfer.local:
        return match_local(face, dst_face, face_mask, dst_mask)
    if transfer.method is None:
        return face
    masked = transfer.masked
    cmap = fit_color(transfer.method, face, dst_face, face_mask if masked else None, dst_mask if masked else None,
                     rng if rng is not None else np.random.default_rng(0))
    return cmap.apply(face)

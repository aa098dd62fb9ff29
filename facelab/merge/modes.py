"""Merge modes: how the swapped face goes into the frame, as data.

A mode is a ``MergeModeSpec`` of switches that the compositor (facelab.merge.compose) reads: whether the
frame changes at all, which mask (the mask mode's, or the whole crop), which face stages run in the crop
(recolour, histogram match, the sharpen/denoise/degrade stages), and how the face is blended back (detail
transfer, Poisson cloning, a feathered or a hard mask). A mode is one spec plus one ``MERGE_MODES.register``
line.
"""

from __future__ import annotations

from dataclasses import dataclass

from facelab.core.registry import Registry


@dataclass(frozen=True)
class MergeModeSpec:
    """The switches of one merge mode."""

    changes_frame: bool = True  # False: the frame is written unchanged
    full_mask: bool = False  # blend with the whole crop instead of the mask mode's mask
    recolor: bool = True  # the colour transfer (color_transfer)
    hist_match: bool = False  # per-channel histogram matching to the dst face (hist_match_threshold)
    face_stages: bool = True  # motion blur, sharpen, denoise, bicubic and colour degradation
    detail_transfer: bool = True  # add dst's fine detail to the warped face (detail_transfer)
    seamless: bool = False  # Poisson cloning into the frame before the blend
    hard_mask: bool = False  # no erode/blur: the mask is thresholded at 0.5


MERGE_MODES: Registry[MergeModeSpec] = Registry("merge mode")
MERGE_MODES.register("original", MergeModeSpec(changes_frame=False))
MERGE_MODES.register("overlay", MergeModeSpec())
MERGE_MODES.register("hist-match", MergeModeSpec(hist_match=True))
MERGE_MODES.register("seamless", MergeModeSpec(seamless=True))
MERGE_MODES.register("seamless-hist-match", MergeModeSpec(hist_match=True, seamless=True))
MERGE_MODES.register("raw-rgb", MergeModeSpec(full_mask=True, recolor=False, face_stages=False,
                                              detail_transfer=False, hard_mask=True))
MERGE_MODES.register("raw-predict", MergeModeSpec(full_mask=True, recolor=False, detail_transfer=False))

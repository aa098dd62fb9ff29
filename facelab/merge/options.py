"""Merge options, shared by the CLI, config files (section [merge]) and session files.

Two groups: ``FrameOptions``, which a merge session may override for single frames (the compositing
knobs), and ``RunOptions``, which hold for a whole run (what the model call, the output files or the
worker pool depend on). ``MergeOptions`` is both as one flat model, so users see one set of flags and
keys; every list of names the merge code needs (what may not change per frame, what the resume journal
ignores) is derived from these classes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from facelab.core.choices import ImageFormat, MergeDirection, SharpenMode
from facelab.core.config import marked_fields
from facelab.core.errors import InputError
from facelab.face.superres import check_available
from facelab.merge.color import MERGE_COLOR_TRANSFERS
from facelab.merge.masks import MASK_MODES
from facelab.merge.modes import MERGE_MODES

# the mark of a per-run option that changes how a run executes, never what it writes (so a resumed run may
# change it and keep the frames already merged): Field(..., json_schema_extra=EXECUTION)
EXECUTION: dict[str, Any] = {"execution": True}


class FrameOptions(BaseModel):
    """Per-frame options: how each face is shaped, recoloured and blended into its frame. A merge session
    may change any of them for a single frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Annotated[str, MERGE_MODES.choice()] = Field(
        "overlay", description="how the swapped face is blended into the frame: overlay (alpha blend), hist-match, "
        "seamless (Poisson), seamless-hist-match, raw-rgb (the predicted square, no mask), raw-predict (the "
        "predicted face, full mask), original (frame unchanged)")
    mask_mode: Annotated[str, MASK_MODES.choice()] = Field(
        "learned-prd*learned-dst", description="blend mask: full (the whole crop), dst (landmark hull of the dst "
        "face), learned-prd / learned-dst (the model's predicted masks) and their product (*) or union (+); xseg-* "
        "need XSeg masks")
    erode: float = Field(0.0, ge=-100, le=100, description="erode the mask by this percent of the face size "
                         "(negative grows it)")
    blur: float = Field(5.0, ge=0, le=100, description="feather the mask edge over this percent of the face size")
    skin_mask: bool = Field(True, description="leave out of the mask the swapped face's border pixels that are "
                            "not its skin colour (src's hair or shadow drawn at the temples and cheeks)")
    face_scale: float = Field(0.0, ge=-50, le=50, description="scale the swapped face about its centre by this "
                              "percent")
    motion_blur: float = Field(0.0, ge=0, le=100, description="blur the swapped face along the face's motion "
                               "between neighbouring frames, strength in percent (0: off)")
    color_transfer: Annotated[str, MERGE_COLOR_TRANSFERS.choice()] = Field(
        "rct", description="recolour the swapped face towards the frame's face; rct, lct and the -m variants fit the "
        "statistics inside the mask, mkl and idt on the whole crop (background too)")
    sharpen_mode: SharpenMode = Field("none", description="sharpen the swapped face: box, gaussian or unsharp")
    sharpen_amount: float = Field(0.0, ge=0, le=100, description="sharpening strength in percent")
    detail_transfer: float = Field(50.0, ge=0, le=100, description="add this percent of dst's own detail finer "
                                   "than the model's pixels (skin texture, stubble, glasses' edges) to the face")
    denoise: float = Field(0.0, ge=0, le=10, description="denoise the swapped face, strength 0..10 (0: off)")
    bicubic_degrade: float = Field(0.0, ge=0, le=100, description="downscale and upscale the swapped face by up "
                                   "to this percent, to match a soft frame")
    color_degrade: float = Field(0.0, ge=0, le=100, description="reduce the swapped face's colour depth "
                                 "(posterise), strength in percent")
    watermark_region: Literal["frame", "face"] = Field(
        "frame", description="where the invisible watermark goes on a frame with a swapped face: frame (the whole "
        "frame, scaled to each place's texture: weak on flat, smooth skin, stronger on hair, edges and real texture; "
        "survives re-encoding far better) or face (only inside the blended face mask, so every other pixel stays "
        "exactly as in dst)")
    hist_match_threshold: int = Field(238, ge=0, le=255, description="hist-match: ignore predicted pixels brighter "
                                      "than this")


class RunOptions(BaseModel):
    """Per-run options: the same for every frame of a run, since the model call (direction, XSeg model),
    the upscaling, the output files or the workers depend on them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    super_resolution: bool = Field(False, description="upscale the swapped face with Real-ESRGAN x4 before it is "
                                   "warped back (to its size in the frame, at most 4x the model's resolution; slow "
                                   "on a CPU)")
    direction: MergeDirection = Field("src2dst", description="src2dst: src identity into the frames; dst2src: the "
                                      "reverse (DF models only)")
    workers: int = Field(
        default_factory=lambda: max(1, min(os.cpu_count() or 1, 8)), ge=1, le=64, json_schema_extra=EXECUTION,
        description="compositing workers: threads beside the model (worker processes only with the Python API's "
                    "run_merge(pool=\"process\")); default: CPU count, up to 8")
    image_format: ImageFormat = Field("png", description="image format of the merged frames")
    morph_value: float = Field(1.0, ge=0, le=1, description="for a DeepFaceLab AMP .dfm (a morph_value input): how "
                               "far towards src the face is morphed, 0..1 (other models ignore it)")
    xseg_model: Path | None = Field(None, description="XSeg model folder (facelab xseg train) for the xseg-* mask "
                                    "modes; without it xseg-dst uses the masks `facelab xseg apply` stored in the "
                                    "dst faces")


class MergeOptions(RunOptions, FrameOptions):
    """All merge options as one flat model (the CLI flags, the config section [merge] and a session's
    ``options``): the per-frame fields first, then the per-run ones. ``.frame`` and ``.run`` are the two parts."""

    config_section: ClassVar[str] = "merge"

    @property
    def frame(self) -> FrameOptions:
        return FrameOptions.model_construct(**{k: getattr(self, k) for k in FRAME_KEYS})

    @property
    def run(self) -> RunOptions:
        return RunOptions.model_construct(**{k: getattr(self, k) for k in RUN_KEYS})


FRAME_KEYS: frozenset[str] = frozenset(FrameOptions.model_fields)
RUN_KEYS: frozenset[str] = frozenset(RunOptions.model_fields)
# per-run options that do not change the output (marked EXECUTION on their field)
EXECUTION_KEYS: frozenset[str] = frozenset(marked_fields(RunOptions, "execution"))

def check_supported(opts: MergeOptions, dst_masks: bool = False, xseg: bool = True) -> None:
    """Refuse options whose machinery is not available here, with a clear message.

    ``dst_masks``: every dst face carries a stored XSeg mask (so xseg-dst works without a model).
    ``xseg=False`` skips the XSeg checks (the compositor, whose predictions carry the masks or not).
    """
    spec = MASK_MODES.get(opts.mask_mode) if xseg else None
    if spec is not None and spec.xseg_prd and opts.xseg_model is None:
        raise InputError(f"mask mode {opts.mask_mode} needs an XSeg model for the predicted face: pass --xseg-model "
                         "DIR (train one with `facelab xseg train`)")
    if spec is not None and spec.xseg_dst and opts.xseg_model is None and not dst_masks:
        raise InputError(f"mask mode {opts.mask_mode} needs XSeg masks: pass --xseg-model DIR, or store masks in the "
                         "dst faces first with `facelab xseg apply`")
    if opts.super_resolution:
        check_available()  # InputError when the Real-ESRGAN model files or ncnn are missing

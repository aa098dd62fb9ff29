"""Training options: one pydantic model, shared by the CLI, config files, presets and the model folder.

Fields marked FIXED (``json_schema_extra=FIXED``) shape the networks and are fixed when a model is created;
resuming with other values is refused (``facelab.core.model_folder``). The rest may change between runs
(e.g. turn GAN on late in training, as DFL users do).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from facelab.core.choices import (
    DeviceName,
    FaceType,
    InitName,
    OptimizerName,
    Precision,
)
from facelab.core.color import COLOR_TRANSFERS
from facelab.core.errors import InputError
from facelab.core.model_folder import FIXED


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    config_section: ClassVar[str] = "train"

    # -- architecture (FIXED) --
    arch: str = Field("liae-ud", description="df or liae, with modifiers u (pixel norm), d (double resolution "
                      "head), t (deeper, residual), c (x*cos(x)), e.g. liae-udt; fixed at creation",
                      json_schema_extra=FIXED)
    resolution: int = Field(128, ge=64, le=640, description="face resolution, multiple of 16 (32 with -d); fixed",
                            json_schema_extra=FIXED)
    face_type: FaceType = Field("whole_face", description="face type the model sees; fixed", json_schema_extra=FIXED)
    ae_dims: int = Field(256, ge=16, le=1024, description="autoencoder (bottleneck) dimensions; fixed",
                         json_schema_extra=FIXED)
    e_dims: int = Field(64, ge=8, le=256, description="encoder dimensions; fixed", json_schema_extra=FIXED)
    d_dims: int = Field(64, ge=8, le=256, description="decoder dimensions; fixed", json_schema_extra=FIXED)
    d_mask_dims: int = Field(22, ge=4, le=256, description="mask decoder dimensions; fixed", json_schema_extra=FIXED)
    init: InitName = Field("default", description="weight init at creation: default, he, or ca (conv-aware)",
                           json_schema_extra=FIXED)

    # -- optimisation --
    batch_size: int = Field(8, ge=1, le=1024, description="samples per iteration (split over DDP processes)")
    optimizer: OptimizerName = Field("adam", description="optimizer")
    lr: float = Field(5e-5, gt=0, le=1.0, description="learning rate")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam/AdaBelief beta1")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam/AdaBelief beta2 (RMSprop alpha)")
    lr_dropout: float = Field(0.0, ge=0, lt=1, description="probability of dropping each weight update")
    clipgrad: bool = Field(False, description="clip the gradient norm to 1")
    lr_warmup: int = Field(0, ge=0, le=1_000_000, description="raise the learning rate linearly over the first N "
                           "iterations of the model (0: off)")
    lr_decay: float = Field(0.0, ge=0, lt=1, description="over this last share of a run's budget (its iterations or "
                            "minutes, counted from the model's start), lower the learning rate linearly to a tenth "
                            "(0: off)")
    weight_average: float = Field(0.0, ge=0, lt=1, description="keep an exponential moving average of the "
                                  "autoencoder's weights with this decay per iteration (e.g. 0.99: about the last "
                                  "100 iterations); the model's saved weights, which merge uses, are the average "
                                  "(0: off)")
    precision: Precision = Field("fp32", description="fp32, bf16 (autocast), fp16 (autocast + loss scaling) or "
                                                   "auto (bf16 where the CPU or GPU computes it natively, else fp32)")
    compile: bool = Field(False, description="torch.compile the model")

    # -- losses --
    masked_training: bool = Field(True, description="reconstruction loss inside the face mask only")
    skin_mask: bool = Field(False, description="train on the face mask without the border pixels that are not "
                            "the face's skin colour (hair over the temples and cheeks; faces with XSeg masks keep "
                            "them): the model neither learns that hair nor its mask blends it in")
    eyes_mouth_prio: bool = Field(False, description="extra loss weight on eyes and mouth")
    perceptual_power: float = Field(0.0, ge=0, le=100, description="weight of a perceptual loss (ImageNet "
                                    "MobileNetV2 feature distance) beside DSSIM + MSE (0: off)")
    blur_out_mask: bool = Field(False, description="smooth the background around the face mask in targets")
    true_face_power: float = Field(0.0, ge=0, le=1, description="TrueFace: latent-code discriminator power")
    gan_power: float = Field(0.0, ge=0, le=10, description="patch GAN power on the src reconstruction")
    gan_patch_size: int = Field(0, ge=0, le=640, description="GAN patch size in pixels (0: resolution / 8)")
    gan_dims: int = Field(16, ge=4, le=512, description="GAN discriminator dimensions")
    face_style_power: float = Field(0.0, ge=0, le=100, description="pull the swap's face colours towards dst")
    bg_style_power: float = Field(0.0, ge=0, le=100, description="pull the swap's background towards dst")

    # -- samples --
    random_warp: bool = Field(True, description="random warp of the network input")
    warp_off: float = Field(0.0, ge=0, lt=1, description="over this last share of a run's budget (its iterations or "
                            "minutes, counted from the model's start), train without random warp: the model then "
                            "learns the faces as they are (DeepFaceLab's advice once a model follows expressions; "
                            "0: off)")
    random_flip_src: bool = Field(True, description="random horizontal flips of src samples")
    random_flip_dst: bool = Field(True, description="random horizontal flips of dst samples")
    random_hsv_power: float = Field(0.0, ge=0, le=0.3, description="random hue/saturation/value jitter")
    ct_mode: Annotated[str, COLOR_TRANSFERS.choice()] = Field("none", description="colour transfer of src samples "
                                                              "towards dst")
    uniform_yaw: bool = Field(False, description="sample faces evenly across yaw")
    uniform_mouth: bool = Field(False, description="sample faces evenly across mouth openings (closed, slightly "
                                "open, open, wide), so each side's rare expressions are learnt too")
    mouth_match: Annotated[float, Field(ge=0, le=1)] | Literal["auto"] = Field(
        0.0, description="draw src's faces with mouth openings in dst's proportions (closed, slightly open, open, "
        "wide): 0 src's own, 1 dst's, between a mix; src's decoder then learns the expressions dst will ask of it "
        "(replaces uniform_mouth on the src side); auto: 0.5 where src's mean mouth opening is well above dst's "
        "(by 0.05 inter-ocular distances), else 0")
    pretrain: bool = Field(False, description="pretrain on the src set alone; turning it off restarts at 0")
    from_scratch: bool = Field(False, description="start a new model from random weights, not from the shipped "
                               "face prior of its shape (see facelab pretrain list)")
    workers: int = Field(2, ge=0, le=64, description="sample loader processes per side")
    seed: int = Field(0, description="random seed")

    # -- run control --
    device: DeviceName = Field("auto", description="auto, cpu, cuda or mps")
    autosave_minutes: float = Field(15.0, gt=0, description="save every N minutes")
    autosave_iterations: int = Field(0, ge=0, description="also save every N iterations (0: off)")
    backup_hours: float = Field(2.0, ge=0, description="rotating backups every N hours (0: off)")
    backup_keep: int = Field(5, ge=1, description="backups to keep")
    target_iteration: int = Field(0, ge=0, description="stop at this iteration (0: no target)")
    preview_every: int = Field(200, ge=0, description="write a preview every N iterations (0: off)")
    log_every: int = Field(10, ge=1, description="log metrics every N iterations")

    @field_validator("mouth_match", mode="before")
    @classmethod
    def _mouth_match(cls, value: Any) -> Any:
        """A number from 0 to 1 or "auto" (one clear message, not one per member of the union)."""
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number from 0 to 1 or auto, got {value!r}") from None
        if isinstance(value, bool) or not 0.0 <= number <= 1.0:
            raise ValueError(f"expected a number from 0 to 1 or auto, got {value!r}")
        return number

    @model_validator(mode="after")
    def _check(self) -> TrainOptions:
        from facelab.train.nets import validate_resolution

        validate_resolution(self.arch, self.resolution)
        return self

    @property
    def patch_size(self) -> int:
        return self.gan_patch_size or max(8, self.resolution // 8)



PRESETS: dict[str, dict[str, Any]] = {
    # DeepFaceLab SAEHD defaults
    "saehd": {"arch": "liae-ud", "resolution": 128, "face_type": "whole_face", "ae_dims": 256, "e_dims": 64,
              "d_dims": 64, "d_mask_dims": 22, "batch_size": 8},
    # DeepFaceLab Quick96
    "quick96": {"arch": "df-ud", "resolution": 96, "face_type": "full", "ae_dims": 128, "e_dims": 64,
                "d_dims": 64, "d_mask_dims": 16, "batch_size": 8},
    # sized for a visible result on a 2-core CPU within the demo's budget; batch 16 rather than 8 because bf16
    # convolutions are too small at batch 8 to reach the CPU's peak (measured: docs/training.md), but 8 where
    # precision auto resolves to fp32 (FP32_BATCH); the last
    # quarter of the budget without random warp (measured on four pairs: docs/quality.md); precision auto: bf16
    # only where the CPU computes it natively (an AVX2-only CPU runs bf16 convolutions about 100 times slower
    # than fp32: facelab/train/device.py); src's mouths matched halfway to dst's where src's open far more
    # (mouth_match auto: the mouth error about halves on the four pairs where it fires, held-out ones included;
    # pose 0.3-0.9 degrees worse on three of them: docs/quality.md, session 26)
    "demo": {"arch": "df-ud", "resolution": 64, "face_type": "full", "ae_dims": 128, "e_dims": 32,
             "d_dims": 32, "d_mask_dims": 12, "batch_size": 16, "lr": 2e-4, "precision": "auto",
             "preview_every": 100, "autosave_minutes": 2.0, "lr_warmup": 100, "warp_off": 0.25,
             "mouth_match": "auto"},
}

# A preset's batch where its precision (auto) resolves to fp32 on the machine that creates the model: fp32
# convolutions reach a CPU's peak at smaller batches than bf16, so more, cheaper steps fit the same time (the demo
# at batch 8 ran about 1.75x the iterations of batch 16 on an AVX2-only CPU: docs/quality.md, session 22).
FP32_BATCH: dict[str, int] = {"demo": 8}


def preset_values(name: str) -> dict[str, Any]:
    """The options of training preset ``name`` on this machine: ``PRESETS[name]``, with the batch of
    ``FP32_BATCH`` where the preset's precision resolves to fp32 on its device (written into the model's config
    like any option, so a user sees and may change it). InputError for an unknown name."""
    from facelab.train.device import resolve_device, resolve_precision

    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    values = dict(PRESETS[name])
    if name in FP32_BATCH:
        device = resolve_device(values.get("device", "auto"))
        if resolve_precision(device, values.get("precision", "fp32")) == "fp32":
            values["batch_size"] = FP32_BATCH[name]
    return values

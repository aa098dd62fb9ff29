"""XSeg training options: one pydantic model feeding the CLI flags and the model folder's config.json."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from facelab.core.model_folder import FIXED

XSegPrecision = Literal["fp32", "bf16"]


class XSegOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # FIXED: they shape the network, so they are fixed when a model folder is created
    resolution: int = Field(256, ge=64, le=1024, multiple_of=32, json_schema_extra=FIXED,
                            description="network input size in pixels; faces are resized to it")
    base_channels: int = Field(16, ge=4, le=64, json_schema_extra=FIXED, description="width of the U-Net's first level")
    batch_size: int = Field(8, ge=1, le=256, description="faces per iteration")
    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate")
    precision: XSegPrecision = Field("fp32", description="fp32, or bf16 autocast")
    save_every: int = Field(500, ge=1, description="save (and preview) every N iterations")
    preview: bool = Field(True, description="write previews/latest.png at each save")
    seed: int = Field(0, ge=0, description="random seed of the augmentation stream")
    target_iteration: int = Field(0, ge=0, description="stop at this iteration (0: no target); unlike --iterations, "
                                  "a run interrupted and run again ends at the same iteration")

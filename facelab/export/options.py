"""Options of `facelab export`: flags, config file section [export], library calls."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from facelab.export.contract import ExportFormat, Quantization


class ExportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    config_section: ClassVar[str] = "export"

    format: ExportFormat = Field("dfm", description="dfm: DeepFaceLab's interface (DeepFaceLive, FaceFusion), faces "
                                 "framed as DFL's whole face; onnx: facelab's own (NCHW RGB, the model's face type)")
    fp16: bool = Field(False, description="weights and compute in half precision (half the file; the inputs and "
                       "outputs stay float32)")
    quantize: Quantization = Field("none", description="int8: the generator's weights and activations in 8-bit "
                                   "integers (onnxruntime, calibrated on aligned faces; several times faster on "
                                   "CPUs, a quarter of the file; inputs and outputs stay float32)")
    calibration: Path | None = Field(None, description="aligned faces to calibrate --quantize int8 on (default: "
                                     "the dst/aligned folder of the model's workspace)")

"""`facelab export`: a trained model as an ONNX file (DeepFaceLab's .dfm interface or facelab's own)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facelab.cli.options import model_parameters, with_parameters
from facelab.cli.progress import console, progress_bar
from facelab.core.config import build_options
from facelab.export.exporter import export_model
from facelab.export.options import ExportOptions

_STEPS = ("loading the model", "tracing the generator", "quantizing", "writing")


def export(
    model_dir: Annotated[Path, typer.Option(help="The trained model folder.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The file to write (e.g. model.dfm).",
                                         show_default=False)],
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file of these options (section export).")] = None,
    **flags: Any,
) -> None:
    """Export a trained model for DeepFaceLive and FaceFusion (.dfm) or as facelab's own ONNX interface."""
    opts = build_options(ExportOptions, config, flags)
    with progress_bar("exporting", total=len(_STEPS)) as bar:
        r = export_model(model_dir, output, opts, progress=lambda step: bar.update(_STEPS.index(step), len(_STEPS)))
        bar.update(len(_STEPS), len(_STEPS))
    precision = "int8 (calibrated on " + str(r.calibration) + ")" if r.quantize == "int8" else \
        "fp16" if r.fp16 else "fp32"
    console.print(f"{r.format} -> {r.path}: {r.bytes / 1e6:.1f} MB, {r.resolution} px {r.face_type} faces "
                  f"(model: {r.model_resolution} px {r.model_face_type}), {precision}, "
                  f"{r.seconds:.1f} s", highlight=False)


with_parameters(export, model_parameters(ExportOptions))

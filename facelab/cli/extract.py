"""`facelab extract`: detect, align and save faces from a video or a folder of frames."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facelab.cli.options import model_parameters, with_parameters
from facelab.cli.progress import console, progress_bar
from facelab.core.config import build_options
from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import run_extract


def extract(
    input: Annotated[Path, typer.Argument(help="A video file or a folder of frames.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the aligned faces.")],
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file of these options (section extract).")] = None,
    **flags: Any,
) -> None:
    """Detect, align and save every face of a video or frame folder (resumable)."""
    opts = build_options(ExtractOptions, config, flags)
    with progress_bar("extracting faces") as bar:
        s = run_extract(input, output, opts, progress=bar.advance, total=bar.set_total)
    console.print(
        f"{s.frames} frames, {s.faces} faces in {s.frames_with_faces} frames, "
        f"{len(s.frames_without_faces)} without a face -> {output} "
        f"({s.frames_per_second} frames/s; summary in {output}/_extract/summary.json)"
    )


with_parameters(extract, model_parameters(ExtractOptions, renames={"image_format": "--format"}))

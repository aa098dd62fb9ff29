"""`facelab verify`: report the watermark and provenance record of a merged image or video."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from facelab.cli.progress import progress_bar
from facelab.provenance.verify import DEFAULT_MAX_FRAMES, report_lines
from facelab.provenance.verify import verify as run_verify


def verify(
    file: Annotated[Path, typer.Argument(help="An image or video made by facelab merge.", show_default=False)],
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    frames: Annotated[int, typer.Option(help="Video frames to check, spread over the video.", min=1)] = (
        DEFAULT_MAX_FRAMES
    ),
    thorough: Annotated[bool, typer.Option(
        help="For a video kept small after a downscale: try every scale factor on every frame and read the three "
             "that fit best (several times slower on an unmarked video; 4 more chances of 2^-24).")] = False,
) -> None:
    """Check a file for facelab's invisible watermark and provenance record (exit code 0 either way)."""
    with progress_bar("verifying", transient=True) as bar:  # frames read, then the mark's searches
        report = run_verify(file, max_frames=frames, thorough=thorough, progress=bar.update)
    if json_out:
        typer.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        for line in report_lines(report):
            typer.echo(line)

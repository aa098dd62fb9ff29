"""`facelab demo`: run the pipeline on the bundled sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facelab.cli.progress import console
from facelab.demo import run_demo


def demo(
    workspace: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("demo_workspace"),
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: CPU count].")] = None,
) -> None:
    """Split the sample clips into frames and extract their faces (training and merging come next)."""
    with console.status("running the demo on samples/src.mp4 and samples/dst.mp4"):
        sides = run_demo(workspace, workers)
    for s in sides:
        console.print(f"[bold]{s.name}[/bold]: {s.frames.frame_count} frames in {s.frames.folder}; "
                      f"{s.summary.faces} faces in {s.aligned} "
                      f"({len(s.summary.frames_without_faces)} frames without a face, listed in "
                      f"{s.aligned}/_extract/frames_without_faces.txt)")

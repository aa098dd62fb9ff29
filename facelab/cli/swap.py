"""`facelab swap SRC DST -o OUT`: the whole pipeline in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from facelab.cli.c2pa_options import CertOption, CreditOption, DirOption, KeyOption, credentials
from facelab.cli.options import model_parameters, with_parameters
from facelab.cli.progress import console
from facelab.cli.train import PRESET_METAVAR, status_text
from facelab.core.config import build_options
from facelab.merge.options import MergeOptions
from facelab.train.options import preset_values
from facelab.workflow.swap import SwapResult, run_swap


def print_result(r: SwapResult) -> None:
    console.print(f"[bold]result video[/bold]: {r.video}")
    console.print(f"[bold]side-by-side (dst | result)[/bold]: {r.comparison}")
    console.print(f"[bold]training preview[/bold]: {r.preview} (model trained {r.iterations} iterations)")
    console.print(f"workspace: {r.workspace}; `facelab verify {r.video}` shows the provenance mark")


def swap(
    src: Annotated[Path, typer.Argument(help="Video of the identity (the face to put in).", show_default=False)],
    dst: Annotated[Path, typer.Argument(help="Video of the performance (pose, expression, audio).",
                                        show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The result video (.mp4).")],
    workspace: Annotated[Path | None, typer.Option(help="Folder for every step's output (default: OUTPUT "
                                                   "name + _workspace); re-running resumes.")] = None,
    preset: Annotated[str, typer.Option(metavar=PRESET_METAVAR, help="Training preset.")] = "demo",
    minutes: Annotated[float | None, typer.Option(help="Training time budget in minutes.")] = 15.0,
    iterations: Annotated[int | None, typer.Option(help="Training budget in iterations instead.")] = None,
    workers: Annotated[int | None, typer.Option(help="Workers for extraction (processes) and merging "
                                                "(threads).")] = None,
    from_scratch: Annotated[bool, typer.Option("--from-scratch", help="Train from random weights, not from the "
                                               "shipped face prior of the preset's shape.")] = False,
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file of merge options (section merge).")] = None,
    credit: CreditOption = None,
    c2pa_cert: CertOption = None,
    c2pa_key: KeyOption = None,
    c2pa_dir: DirOption = None,
    **flags: Any,
) -> None:
    """Swap SRC's face into DST: frames, extraction, training, merging and video with DST's audio."""
    preset_values(preset)  # an unknown preset is a one-line error before any work
    merge = build_options(MergeOptions, config, flags)
    ws = workspace or output.with_name(output.stem + "_workspace")
    creds = credentials(credit, c2pa_cert, c2pa_key, c2pa_dir)
    budget_minutes = None if iterations is not None else minutes
    with Live(Text(""), console=console, refresh_per_second=2, transient=True) as live:
        result = run_swap(src, dst, output, ws, preset=preset, minutes=budget_minutes, iterations=iterations,
                          merge=merge, workers=workers, from_scratch=from_scratch, credentials=creds,
                          say=lambda m: console.print(m),
                          on_status=lambda s: live.update(status_text(s)))
    print_result(result)


with_parameters(swap, model_parameters(MergeOptions, renames={"image_format": "--format"},
                                       exclude=("workers", "direction")))

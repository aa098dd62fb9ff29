"""`facelab demo`: the whole pipeline on the bundled sample (src: samples/src.mp4, dst: samples/dst.mp4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.text import Text

from facelab.cli.progress import console
from facelab.cli.swap import print_result
from facelab.cli.train import status_text
from facelab.workflow.swap import run_swap

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def demo(
    workspace: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("demo_workspace"),
    minutes: Annotated[float, typer.Option(help="Training time budget in minutes.")] = 15.0,
    workers: Annotated[int | None, typer.Option(help="Workers for extraction (processes) and merging "
                                                "(threads); default: CPU count.")] = None,
    from_scratch: Annotated[bool, typer.Option("--from-scratch", help="Train from random weights, not from the "
                                               "shipped face prior.")] = False,
) -> None:
    """Swap the bundled src face into the bundled dst clip (about 16 minutes on a 2-core CPU)."""
    with Live(Text(""), console=console, refresh_per_second=2, transient=True) as live:
        result = run_swap(SAMPLES / "src.mp4", SAMPLES / "dst.mp4", workspace / "result.mp4", workspace,
                          preset="demo", minutes=minutes, workers=workers, from_scratch=from_scratch,
                          say=lambda m: console.print(m),
                          on_status=lambda s: live.update(status_text(s)))
    print_result(result)

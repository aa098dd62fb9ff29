"""`facelab evaluate`: swap-quality metrics of a result against dst and the src faces."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facelab.cli.options import model_parameters, with_parameters
from facelab.cli.progress import progress_bar
from facelab.core.config import build_options
from facelab.evaluate.options import EvaluateOptions
from facelab.evaluate.report import summary_lines, write_reports
from facelab.evaluate.runner import evaluate_swap


def evaluate(
    result: Annotated[Path, typer.Option("--result", help="The swapped video (or frame folder).", show_default=False)],
    dst: Annotated[Path, typer.Option("--dst", help="The dst video (or frame folder) it was merged onto.",
                                      show_default=False)],
    src_faces: Annotated[Path | None, typer.Option("--src-faces", help="src's aligned faces (identity reference).",
                                                   show_default=False)] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the summary JSON here.",
                                                  show_default=False)] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the per-frame CSV here.",
                                                 show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file of these options (section evaluate).")] = None,
    **flags: Any,
) -> None:
    """Score a swap as the DeepFaceLab paper does: SSIM, perceptual, identity, landmarks, pose, jitter (mean +- std);
    and how the result follows dst's mouth and eyes, keeps its detail and takes src's identity."""
    opts = build_options(EvaluateOptions, config, flags)
    with progress_bar("evaluating frames") as bar:
        ev = evaluate_swap(result, dst, src_faces, opts, progress=bar.update)
    write_reports(ev, csv_out, json_out)
    for line in summary_lines(ev.summary):
        typer.echo(line)
    for path, what in ((csv_out, "per-frame CSV"), (json_out, "summary JSON")):
        if path is not None:
            typer.echo(f"{what}: {path}")


with_parameters(evaluate, model_parameters(EvaluateOptions))

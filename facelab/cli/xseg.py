"""`facelab xseg ...`: label, train and apply XSeg face segmentation. Thin: parse, call facelab.xseg, report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from facelab.cli.options import model_parameters, with_parameters
from facelab.cli.progress import console, emit_progress, progress_bar, progress_json_enabled
from facelab.core.errors import InputError
from facelab.xseg import apply as ops
from facelab.xseg.infer import load_xseg
from facelab.xseg.model import read_config, resolve_options
from facelab.xseg.options import XSegOptions
from facelab.xseg.train import Status, XSegTrainer

app = typer.Typer(help="XSeg: trainable face segmentation (labels, training, masks).", no_args_is_help=True)

Folder = Annotated[Path, typer.Argument(help="Folder of aligned faces.")]


def _report(verb: str, result: ops.FolderResult) -> None:
    console.print(f"{verb} {result.changed} of {result.faces} faces", highlight=False)
    for path, reason in result.skipped:
        console.print(f"skipped {path}: {reason}", highlight=False)


def _status(s: Status) -> Text:
    left = "" if s.remaining is None else f"  {s.remaining} left"
    return Text(f"it {s.iteration}  loss {s.loss:.4f}  {s.it_per_s:.2f} it/s  data {s.data_share:.0%}{left}")


@app.command("train")
def train(
    faces: Annotated[list[Path], typer.Option("--faces", help="Folder of labelled faces (repeat for more).")],
    model_dir: Annotated[Path, typer.Option(help="XSeg model folder: created, or resumed if it exists.")],
    iterations: Annotated[int | None, typer.Option(help="Train this many iterations in this run.")] = None,
    minutes: Annotated[float | None, typer.Option(help="Train for this many minutes in this run.")] = None,
    **flags: Any,
) -> None:
    """Train (or resume) an XSeg model on the faces that have XSeg polygons. Ctrl+C saves and exits."""
    if iterations is not None and iterations < 1:
        raise InputError("--iterations must be at least 1")
    if minutes is not None and minutes <= 0:
        raise InputError("--minutes must be positive")
    stored = read_config(model_dir)
    opts = resolve_options(stored, flags)
    trainer = XSegTrainer(model_dir, opts, faces, new=stored is None)
    try:
        console.print(f"{'resuming' if stored else 'new'} XSeg model {model_dir}: {opts.resolution}px, "
                      f"iteration {trainer.state.iteration}, {len(trainer.faces)} labelled faces", highlight=False)
        start, t0, as_json = trainer.state.iteration, time.monotonic(), progress_json_enabled()
        with Live(Text("starting..."), console=console, refresh_per_second=2) as live:

            def report(s: Status) -> None:
                live.update(_status(s))
                if as_json:  # the studio's jobs: (done, total) of this run, in iterations or seconds
                    what = f"xseg training, iteration {s.iteration}"
                    if iterations is not None:
                        emit_progress(what, s.iteration - start, iterations)
                    elif minutes is not None:
                        emit_progress(what, round(time.monotonic() - t0), round(minutes * 60))
                    else:
                        emit_progress(what, s.iteration, None)

            state = trainer.train(iterations, minutes, on_status=report)
        console.print(f"saved at iteration {state.iteration} in {model_dir} "
                      f"(preview: {model_dir}/previews/latest.png)", highlight=False)

    finally:
        trainer.close()

with_parameters(train, model_parameters(XSegOptions))


@app.command("apply")
def apply(
    folder: Folder,
    model_dir: Annotated[Path, typer.Option(help="Trained XSeg model folder.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Faces per forward pass.")] = 16,
) -> None:
    """Predict each face's mask and store it in the face file (pixels untouched)."""
    model = load_xseg(model_dir)
    with progress_bar("xseg apply") as bar:
        result = ops.apply_model(model, folder, batch_size, progress=bar.update)
    _report("masked", result)


@app.command("remove")
def remove(folder: Folder) -> None:
    """Remove the XSeg masks (written by apply) from the faces of a folder."""
    with progress_bar("xseg remove") as bar:
        result = ops.remove_masks(folder, progress=bar.update)
    _report("removed the mask of", result)


@app.command("remove-labels")
def remove_labels(folder: Folder) -> None:
    """Remove the XSeg polygons (labels) from the faces of a folder."""
    with progress_bar("xseg remove-labels") as bar:
        result = ops.remove_labels(folder, progress=bar.update)
    _report("removed the labels of", result)


@app.command("fetch")
def fetch(
    folder: Folder,
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder to copy the labelled faces into.")],
) -> None:
    """Copy the faces that have XSeg polygons into another folder."""
    with progress_bar("xseg fetch") as bar:
        result = ops.fetch_labelled(folder, out, progress=bar.update)
    _report(f"copied into {out}", result)


@app.command("import-labels")
def import_labels(
    folder: Folder,
    labels: Annotated[Path, typer.Option(help="JSON label file (see README, 'facelab xseg').")],
) -> None:
    """Set the XSeg polygons of faces from a JSON label file keyed by face file name."""
    plan = ops.plan_import(folder, labels)  # a bad file fails here, before the progress bar
    with progress_bar("xseg import-labels") as bar:
        result = ops.import_labels(folder, labels, progress=bar.update, plan=plan)
    _report("labelled", result)

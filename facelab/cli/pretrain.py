"""`facelab pretrain gather | train | export | list`: build the face prior a new model starts from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from facelab.cli.options import model_parameters, with_parameters
from facelab.cli.progress import console
from facelab.cli.train import PRESET_METAVAR, resolve_options, run_training
from facelab.core.config import option_error
from facelab.core.errors import InputError
from facelab.core.model_folder import read_state
from facelab.extract.options import ExtractOptions
from facelab.train.options import TrainOptions
from facelab.train.prior import PRIORS_DIR, export_prior, origin_prior, shipped_priors
from facelab.workflow.pretrain import gather_faces, parse_source, read_sources

app = typer.Typer(no_args_is_help=True, help="Pretrain a face prior on many people's faces (see docs/prior.md).")

# pretraining sees many people under many lights: jitter colours unless asked otherwise; and a prior keeps
# its random warp to the end of every run (warp_off 0 over the preset's): it must generalise, and each
# pair's fine-tuning is what learns exact faces
PRETRAIN_DEFAULTS: dict[str, Any] = {"random_hsv_power": 0.05, "warp_off": 0.0}


@app.command("gather")
def gather(
    sources: Annotated[list[str], typer.Argument(help="Videos or folders of photos/frames, as PATH or NAME=PATH.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Workspace: OUT/faces gets every face.")],
    face_type: Annotated[str, typer.Option(help="Face type of the gathered faces.")] = "whole_face",
    size: Annotated[int, typer.Option(help="Aligned face size in pixels.")] = 128,
    min_face_size: Annotated[int, typer.Option(help="Ignore faces whose box is smaller (pixels).")] = 48,
    max_faces: Annotated[int, typer.Option(help="Keep the N largest faces per frame or photo.")] = 12,
    video_fps: Annotated[float, typer.Option(help="Sample videos at this rate (near-duplicate frames add "
                                                   "little).")] = 10.0,
    workers: Annotated[int | None, typer.Option(help="Extraction worker processes.")] = None,
) -> None:
    """Extract the faces of every source into one faceset (resumable)."""
    values: dict[str, Any] = {"face_type": face_type, "size": size, "min_face_size": min_face_size,
                              "max_faces": max_faces}
    if workers is not None:
        values["workers"] = workers
    try:
        opts = ExtractOptions.model_validate(values)
    except ValidationError as exc:
        raise option_error(exc) from None
    summary = gather_faces([parse_source(s) for s in sources], output, opts, video_fps,
                           say=lambda m: console.print(m))
    console.print(f"{summary.faces} faces from {len(summary.sources)} sources in {summary.faces_dir}")


def train(
    faces: Annotated[Path, typer.Option(help="The gathered faces (OUT/faces of `pretrain gather`).")],
    model_dir: Annotated[Path, typer.Option(help="Pretraining model folder: created, or resumed.")],
    preset: Annotated[str | None, typer.Option(metavar=PRESET_METAVAR, help="Shape and options of the prior.")
                      ] = "demo",
    iterations: Annotated[int | None, typer.Option(help="Train this many iterations in this run.")] = None,
    minutes: Annotated[float | None, typer.Option(help="Train for this many minutes in this run.")] = None,
    **flags: Any,
) -> None:
    """Pretrain on many people (src = dst = FACES); a new folder continues the shipped prior of its shape."""
    if not faces.exists():
        raise InputError("faceset folder not found", faces)
    requested = {**PRETRAIN_DEFAULTS, **{k: v for k, v in flags.items() if v is not None}, "pretrain": True}
    opts, stored = resolve_options(model_dir, preset, None, requested)
    run_training(model_dir, opts, stored, faces, faces, iterations, minutes)


app.command("train")(with_parameters(train, model_parameters(TrainOptions, exclude=("pretrain",))))


@app.command("export")
def export(
    model_dir: Annotated[Path, typer.Option(help="The pretraining model folder.")],
    sources: Annotated[Path, typer.Option(help="sources.json written by `pretrain gather`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Prior folder to write, e.g. "
                                         "facelab/train/priors/NAME.")],
    notes: Annotated[str, typer.Option(help="Free text for the model card.")] = "",
) -> None:
    """Write a prior (float16 safetensors, card.json, MODEL_CARD.md) from a pretraining folder."""
    origin = origin_prior(str((read_state(model_dir) or {}).get("prior", "")))
    prior = export_prior(model_dir, output, read_sources(sources), notes, started_from=origin)
    console.print(f"prior {prior.name}: {prior.iterations} iterations, {prior.card['hours']} h, "
                  f"{prior.card['faces']} faces -> {output}")


@app.command("list")
def list_priors() -> None:
    """The priors shipped in the package, and the shapes they fit."""
    priors = shipped_priors()
    if not priors:
        console.print(f"no priors in {PRIORS_DIR}")
    for p in priors:
        shape = " ".join(f"{k}={v}" for k, v in p.card["shape"].items())
        console.print(f"{p.name}: {p.iterations} iterations, {p.card['hours']} h, {p.card['faces']} faces; {shape}")

"""`facelab train`: train (or resume) a face-swap model on two folders of aligned faces."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.live import Live
from rich.text import Text

from facelab.cli.options import choice_metavar, model_parameters, with_parameters
from facelab.cli.progress import console, emit_progress, progress_json_enabled
from facelab.core.config import option_error, read_config_file
from facelab.core.errors import InputError
from facelab.faceset.coverage import store_coverage
from facelab.train.checkpoint import merge_options, read_config
from facelab.train.device import precision_note
from facelab.train.options import PRESETS, TrainOptions, preset_values
from facelab.train.trainer import Status, Trainer


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(s))


def status_text(s: Status) -> Text:
    losses = "  ".join(f"{k} {v:.4f}" for k, v in s.losses.items() if k in ("src_loss", "dst_loss", "total"))
    return Text(f"it {s.iteration}  {losses}  {s.it_per_s:.2f} it/s  {s.samples_per_s:.1f} samples/s  "
                f"data wait {s.data_wait:.0%}  eta {_fmt_eta(s.eta_s)}")


PRESET_METAVAR = choice_metavar(sorted(PRESETS))


def resolve_options(model_dir: Path, preset: str | None, config: Path | None, flags: dict[str, Any]
                    ) -> tuple[TrainOptions, TrainOptions | None]:
    """(options for this run, options stored in the model folder or None for a new model)."""
    requested: dict[str, Any] = {}
    if preset is not None:
        requested.update(preset_values(preset))
    if config is not None:
        requested.update(read_config_file(config, section="train"))
    requested.update({k: v for k, v in flags.items() if v is not None})
    stored = read_config(model_dir)
    try:
        return merge_options(stored, requested, set(requested)), stored
    except ValidationError as exc:
        raise option_error(exc) from None


def train(
    src: Annotated[Path, typer.Option(help="Aligned src faces (the identity): a folder or a .fpack pack.")],
    dst: Annotated[Path, typer.Option(help="Aligned dst faces (the performance): a folder or a .fpack pack.")],
    model_dir: Annotated[Path, typer.Option(help="Model folder: created, or resumed if it exists.")],
    preset: Annotated[str | None, typer.Option(metavar=PRESET_METAVAR, help="Start from a preset.")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file of training options (section train).")] = None,
    iterations: Annotated[int | None, typer.Option(help="Train this many iterations in this run.")] = None,
    minutes: Annotated[float | None, typer.Option(help="Train for this many minutes in this run.")] = None,
    no_preview: Annotated[bool, typer.Option("--no-preview", help="Write no preview images.")] = False,
    ddp: Annotated[bool, typer.Option("--ddp", help="Distributed data parallel under torchrun.")] = False,
    **flags: Any,
) -> None:
    """Train a DF/LIAE autoencoder for a src/dst pair; Ctrl+C saves and exits. Re-run to resume."""
    if no_preview:
        flags["preview_every"] = 0
    opts, stored = resolve_options(model_dir, preset, config, flags)
    if stored is None and not (src.exists() and dst.exists()):
        raise InputError(f"faceset folder not found: {src if not src.exists() else dst}")
    run_training(model_dir, opts, stored, src, dst, iterations, minutes, ddp)


def run_training(model_dir: Path, opts: TrainOptions, stored: TrainOptions | None, src: Path, dst: Path,
                 iterations: int | None, minutes: float | None, ddp: bool = False) -> None:
    """Train with a live status line; shared by `facelab train` and `facelab pretrain train`."""
    trainer = Trainer(model_dir, opts, src, dst, previous=stored, ddp=ddp)
    try:
        if trainer.is_main:
            start = trainer.state.iteration
            origin = f", from prior {trainer.state.prior.split()[0]}" if stored is None and trainer.state.prior else ""
            precision = precision_note(trainer.device, opts.precision)
            console.print(f"{'resuming' if stored else 'new'} model {model_dir}: {opts.arch} {opts.resolution}px "
                          f"{opts.face_type}, iteration {start}{origin}, device {trainer.device}, {precision}, "
                          f"{len(trainer.src_set)} src / {len(trainer.dst_set)} dst faces")
            if opts.mouth_match == "auto" and not opts.pretrain:
                console.print(f"mouth-match auto: {trainer.mouth_match:g} (src's mean mouth opening "
                              f"{trainer.mouth_gap:+.3f} inter-ocular distances against dst's)", highlight=False)
            if stored is None and not opts.pretrain:  # a new pair: what src does not show, the swap can only guess
                coverage = store_coverage(trainer.src_set.store, trainer.dst_set.store, src, dst, opts.random_flip_src)
                for line in coverage.gaps():
                    console.print(f"note: {line} (facelab faceset coverage)", highlight=False, markup=False,
                                  soft_wrap=True)
            with Live(Text("starting..."), console=console, refresh_per_second=2, transient=False) as live:
                state = trainer.train(iterations, minutes, on_status=_status_reporter(live, start, iterations, minutes))
            console.print(f"saved at iteration {state.iteration} in {model_dir} "
                          f"(preview: {model_dir}/previews/latest.png, metrics: {model_dir}/metrics.jsonl)")
        else:
            trainer.train(iterations, minutes)
    finally:
        trainer.close()


def _status_reporter(live: Live, start: int, iterations: int | None, minutes: float | None
                     ) -> Callable[[Status], None]:
    """The live status line; under FACELAB_PROGRESS=json also (done, total) of this run (iterations or seconds)."""
    t0, as_json = time.monotonic(), progress_json_enabled()

    def report(s: Status) -> None:
        live.update(status_text(s))
        if not as_json:
            return
        if iterations is not None:
            emit_progress(f"training, iteration {s.iteration}", s.iteration - start, iterations)
        elif minutes is not None:
            emit_progress(f"training, iteration {s.iteration}", round(time.monotonic() - t0), round(minutes * 60))
        else:
            emit_progress(f"training, iteration {s.iteration}", s.iteration, None)

    return report


with_parameters(train, model_parameters(TrainOptions))

"""`facelab video ...`: split a video into frame images and build a video back from them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from facelab.cli.c2pa_options import CertOption, CreditOption, DirOption, KeyOption, credentials
from facelab.cli.options import model_parameters, with_parameters
from facelab.cli.progress import progress_bar
from facelab.core.config import build_options
from facelab.core.errors import InputError
from facelab.media.encode import build_video
from facelab.media.frames import extract_frames
from facelab.media.options import BuildOptions, FramesOptions
from facelab.media.video import probe_video
from facelab.provenance.marker import folder_marker

app = typer.Typer(
    help="Split a video into frame images, and build a video from a folder of frames.",
    no_args_is_help=True,
)

def frames_command(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="The video to split into frames.", show_default=False)],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Folder for the frames (created if missing).", show_default=False
        ),
    ],
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file of these options (section video_frames).")] = None,
    **flags: Any,
) -> None:
    """Write every frame of VIDEO as DIR/000000.png, 000001.png, ... plus DIR/video.json.

    An interrupted run can be resumed by running the same command again.
    """
    opts = build_options(FramesOptions, config, flags)
    with progress_bar("extracting frames", transient=True) as bar:
        info = extract_frames(video, out, fps=opts.fps, fmt=opts.format, jpeg_quality=opts.jpeg_quality,
                              progress=bar.update)
    details = f"{info.width}x{info.height} {info.format}, {info.fps_fraction} fps, " + (
        f"audio: {info.audio_codec}" if info.has_audio else "no audio"
    )
    if info.written == 0:
        typer.echo(f"{info.folder} already holds all {info.frame_count} frames ({details})")
    else:
        reused = f", {info.skipped} were already there" if info.skipped else ""
        typer.echo(f"Wrote {info.written} of {info.frame_count} frames to {info.folder}{reused} ({details})")


def build_command(
    frames_dir: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder of frame images (000000.png, ...).", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="OUT", help="The video file to write, e.g. out.mp4.", show_default=False),
    ],
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file of these options (section video_build).")] = None,
    credit: CreditOption = None,
    c2pa_cert: CertOption = None,
    c2pa_key: KeyOption = None,
    c2pa_dir: DirOption = None,
    **flags: Any,
) -> None:
    """Encode the frames in DIR, in order, into a video. A folder of merged frames (it holds facelab
    merge's provenance.json) gives a video with the provenance record and a signed C2PA manifest."""
    opts = build_options(BuildOptions, config, flags)
    if opts.lossless and opts.crf is not None:
        raise InputError("--crf and --lossless cannot be used together")
    crf = 18 if opts.crf is None else opts.crf
    with progress_bar("encoding video", transient=True) as bar:
        build_video(
            frames_dir,
            out,
            fps=opts.fps,
            audio_from=opts.audio_from,
            codec=opts.codec,
            crf=crf,
            lossless=opts.lossless,
            progress=bar.update,
        )
    marker = folder_marker(frames_dir)
    if marker is not None:
        creds = credentials(credit, c2pa_cert, c2pa_key, c2pa_dir)
        replace(marker, credentials=creds).finish_video(out, parent=opts.audio_from)
    info = probe_video(out)
    if info.has_audio:
        audio = f"audio: {info.audio_codec} from {opts.audio_from}"
    elif opts.audio_from is not None:
        audio = f"no audio ({opts.audio_from} has none)"
    else:
        audio = "no audio"
    quality = "lossless" if opts.lossless else f"crf {crf}"
    typer.echo(
        f"Wrote {out} ({info.frame_count} frames, {info.width}x{info.height}, {info.fps_fraction} fps, "
        f"{opts.codec} {quality}, {audio})"
    )


app.command("frames")(with_parameters(frames_command, model_parameters(FramesOptions)))
app.command("build")(with_parameters(build_command, model_parameters(BuildOptions)))

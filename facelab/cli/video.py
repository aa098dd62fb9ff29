"""`facelab video ...`: split a video into frame images and build a video back from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facelab.cli.progress import progress_bar
from facelab.core.choices import ImageFormat, VideoCodec
from facelab.core.errors import InputError
from facelab.media.encode import build_video
from facelab.media.frames import extract_frames
from facelab.media.video import probe_video

app = typer.Typer(
    help="Split a video into frame images, and build a video from a folder of frames.",
    no_args_is_help=True,
)

@app.command("frames")
def frames_command(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="The video to split into frames.", show_default=False)],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Folder for the frames (created if missing).", show_default=False
        ),
    ],
    fps: Annotated[
        str | None,
        typer.Option(help="Resample to this frame rate (e.g. 10, 29.97 or 30000/1001). Default: the video's."),
    ] = None,
    fmt: Annotated[ImageFormat, typer.Option("--format", help="Image format of the frames.")] = "png",
    jpeg_quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality for --format jpg.")] = 95,
) -> None:
    """Write every frame of VIDEO as DIR/000000.png, 000001.png, ... plus DIR/video.json.

    An interrupted run can be resumed by running the same command again.
    """
    with progress_bar("extracting frames", transient=True) as bar:
        info = extract_frames(video, out, fps=fps, fmt=fmt, jpeg_quality=jpeg_quality, progress=bar.update)
    details = f"{info.width}x{info.height} {info.format}, {info.fps_fraction} fps, " + (
        f"audio: {info.audio_codec}" if info.has_audio else "no audio"
    )
    if info.written == 0:
        typer.echo(f"{info.folder} already holds all {info.frame_count} frames ({details})")
    else:
        reused = f", {info.skipped} were already there" if info.skipped else ""
        typer.echo(f"Wrote {info.written} of {info.frame_count} frames to {info.folder}{reused} ({details})")


@app.command("build")
def build_command(
    frames_dir: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder of frame images (000000.png, ...).", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="OUT", help="The video file to write, e.g. out.mp4.", show_default=False),
    ],
    audio_from: Annotated[
        Path | None,
        typer.Option(help="Copy the audio track of this video (or audio file) into the output."),
    ] = None,
    fps: Annotated[
        str | None,
        typer.Option(help="Frame rate (e.g. 30 or 30000/1001). Default: from DIR/video.json, else 30."),
    ] = None,
    codec: Annotated[VideoCodec, typer.Option(help="Video codec.")] = "h264",
    crf: Annotated[
        int | None,
        typer.Option(min=0, max=51, help="Quality, 0-51: lower is better and larger. Default: 18."),
    ] = None,
    lossless: Annotated[
        bool, typer.Option("--lossless", help="Lossless: decodes back to the exact frame pixels.")
    ] = False,
) -> None:
    """Encode the frames in DIR, in order, into a video."""
    if lossless and crf is not None:
        raise InputError("--crf and --lossless cannot be used together")
    with progress_bar("encoding video", transient=True) as bar:
        build_video(
            frames_dir,
            out,
            fps=fps,
            audio_from=audio_from,
            codec=codec,
            crf=18 if crf is None else crf,
            lossless=lossless,
            progress=bar.update,
        )
    info = probe_video(out)
    if info.has_audio:
        audio = f"audio: {info.audio_codec} from {audio_from}"
    elif audio_from is not None:
        audio = f"no audio ({audio_from} has none)"
    else:
        audio = "no audio"
    quality = "lossless" if lossless else f"crf {18 if crf is None else crf}"
    typer.echo(
        f"Wrote {out} ({info.frame_count} frames, {info.width}x{info.height}, {info.fps_fraction} fps, "
        f"{codec} {quality}, {audio})"
    )

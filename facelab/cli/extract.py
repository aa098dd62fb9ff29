"""`facelab extract`: detect, align and save faces from a video or a folder of frames."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facelab.cli.options import helptext
from facelab.cli.progress import console, progress_bar
from facelab.core.choices import DetectorName, FaceType, ImageFormat, LandmarkName
from facelab.core.config import build_options
from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import run_extract


def _h(field: str, text: str) -> str:
    return helptext(ExtractOptions, field, text)


def extract(
    input: Annotated[Path, typer.Argument(help="A video file or a folder of frames.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the aligned faces.")],
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file of these options.")] = None,
    face_type: Annotated[FaceType | None, typer.Option(help=_h("face_type", "Face type."))] = None,
    size: Annotated[int | None, typer.Option(help=_h("size", "Aligned face size in pixels, 64..1024."))] = None,
    detector: Annotated[DetectorName | None, typer.Option(help=_h("detector", "Face detector."))] = None,
    landmarks: Annotated[LandmarkName | None, typer.Option(help=_h("landmarks", "Landmark model."))] = None,
    max_faces: Annotated[int | None, typer.Option(help=_h("max_faces", "Keep the N largest faces; 0 = all."))] = None,
    min_face_size: Annotated[int | None, typer.Option(help=_h("min_face_size", "Ignore smaller faces (px)."))] = None,
    debug: Annotated[bool | None, typer.Option("--debug/--no-debug",
                                               help=_h("debug", "Annotated frames in OUTPUT/_extract/debug."))] = None,
    smooth: Annotated[int | None, typer.Option(help=_h("smooth", "Average landmarks over +-N frames."))] = None,
    only_like: Annotated[Path | None, typer.Option(help="Keep faces like the one in this image/folder.")] = None,
    identity_threshold: Annotated[float | None,
                                  typer.Option(help=_h("identity_threshold", "Max identity distance."))] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: CPU count, up to 8).")] = None,
    jpeg_quality: Annotated[int | None, typer.Option(help=_h("jpeg_quality", "JPEG quality of the faces."))] = None,
    image_format: Annotated[ImageFormat | None, typer.Option("--format", help=_h("image_format", "Format."))] = None,
    fps: Annotated[float | None, typer.Option(help="Sample the video at this rate instead of every frame.")] = None,
    track: Annotated[int | None, typer.Option(help=_h("track", "Full detection every N frames, windowed between."))
                     ] = None,
    detect_max_side: Annotated[int | None,
                               typer.Option(help=_h("detect_max_side", "Detect on frames downscaled to this."))] = None,
) -> None:
    """Detect, align and save every face of a video or frame folder (resumable)."""
    opts = build_options(ExtractOptions, config, {
        "face_type": face_type, "size": size, "detector": detector, "landmarks": landmarks,
        "max_faces": max_faces, "min_face_size": min_face_size, "debug": debug, "smooth": smooth,
        "only_like": only_like, "identity_threshold": identity_threshold, "workers": workers,
        "jpeg_quality": jpeg_quality, "image_format": image_format, "fps": fps, "track": track,
        "detect_max_side": detect_max_side,
    })
    with progress_bar("extracting faces") as bar:
        s = run_extract(input, output, opts, progress=bar.advance, total=bar.set_total)
    console.print(
        f"{s.frames} frames, {s.faces} faces in {s.frames_with_faces} frames, "
        f"{len(s.frames_without_faces)} without a face -> {output} "
        f"({s.frames_per_second} frames/s; summary in {output}/_extract/summary.json)"
    )

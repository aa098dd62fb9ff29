"""`facelab extract`: detect, align and save faces from a video or a folder of frames."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facelab.cli.progress import console, progress_bar
from facelab.core.choices import DetectorName, FaceType, ImageFormat, LandmarkName
from facelab.core.config import build_options
from facelab.extract.options import ExtractOptions
from facelab.extract.pipeline import run_extract


def extract(
    input: Annotated[Path, typer.Argument(help="A video file or a folder of frames.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the aligned faces.")],
    config: Annotated[Path | None, typer.Option(help="TOML/JSON file with these options ([extract] table).")] = None,
    face_type: Annotated[FaceType | None, typer.Option(help="Face type [default: whole_face].")] = None,
    size: Annotated[int | None, typer.Option(help="Aligned face size in pixels, 64..1024 [default: 256].")] = None,
    detector: Annotated[DetectorName | None, typer.Option(help="Face detector [default: dlib].")] = None,
    landmarks: Annotated[LandmarkName | None, typer.Option(help="Landmark model [default: auto].")] = None,
    max_faces: Annotated[int | None, typer.Option(help="Keep the N largest faces per frame; 0 = all.")] = None,
    min_face_size: Annotated[int | None, typer.Option(help="Ignore faces smaller than PX [default: 40].")] = None,
    debug: Annotated[bool | None, typer.Option("--debug/--no-debug",
                                               help="Write annotated frames to OUTPUT/_extract/debug.")] = None,
    smooth: Annotated[int | None, typer.Option(help="Average landmarks over +-N frames of a shot.")] = None,
    only_like: Annotated[Path | None, typer.Option(help="Keep faces like the person in this image/folder.")] = None,
    identity_threshold: Annotated[float | None, typer.Option(help="Max identity distance for --only-like.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: CPU count].")] = None,
    jpeg_quality: Annotated[int | None, typer.Option(help="JPEG quality of the faces [default: 95].")] = None,
    image_format: Annotated[ImageFormat | None, typer.Option("--format", help="Face image format [default: jpg].")] = None,
    fps: Annotated[float | None, typer.Option(help="Sample the video at this rate instead of every frame.")] = None,
) -> None:
    """Detect, align and save every face of a video or frame folder (resumable)."""
    opts = build_options(ExtractOptions, config, {
        "face_type": face_type, "size": size, "detector": detector, "landmarks": landmarks,
        "max_faces": max_faces, "min_face_size": min_face_size, "debug": debug, "smooth": smooth,
        "only_like": only_like, "identity_threshold": identity_threshold, "workers": workers,
        "jpeg_quality": jpeg_quality, "image_format": image_format, "fps": fps,
    })
    with progress_bar("extracting") as (advance, set_total):
        s = run_extract(input, output, opts, progress=advance, total=set_total)
    console.print(
        f"{s.frames} frames, {s.faces} faces in {s.frames_with_faces} frames, "
        f"{len(s.frames_without_faces)} without a face -> {output} "
        f"({s.frames_per_second} frames/s; summary in {output}/_extract/summary.json)"
    )

"""`facelab faceset enhance`: Real-ESRGAN x4 on every face of a faceset, back to its size, records kept."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facelab.cli.options import model_parameters, with_parameters
from facelab.cli.progress import console, progress_bar
from facelab.core.config import build_options
from facelab.face.superres import SuperResOptions
from facelab.faceset.enhance import enhance_faceset


def enhance(
    folder: Annotated[Path, typer.Argument(help="The faceset folder (aligned faces).", show_default=False)],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the enhanced faces here (same "
                                                "names); re-running skips the files already there.",
                                                show_default=False)] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Overwrite the faces in FOLDER instead (resumable; "
                                           "a folder is never enhanced twice).")] = False,
    jpeg_quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality of rewritten .jpg faces.")] = 95,
    **flags: Any,
) -> None:
    """Enhance every face with Real-ESRGAN x4 (then back to its size); each face keeps its metadata."""
    opts = build_options(SuperResOptions, None, flags)
    with progress_bar("enhancing faces") as bar:
        s = enhance_faceset(folder, output, opts, in_place=in_place, jpeg_quality=jpeg_quality,
                            progress=bar.advance, total=bar.set_total)
    dest = folder if output is None else output
    console.print(f"{s.faces} faces: {s.enhanced} enhanced ({s.seconds_per_face} s each), {s.resumed} already done "
                  f"-> {dest}" + (f"; {len(s.skipped)} files skipped (not faces or invalid)" if s.skipped else ""))


with_parameters(enhance, model_parameters(SuperResOptions))

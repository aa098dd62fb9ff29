"""`facelab faceset import-dfl`: a DeepFaceLab faceset as facelab faces (its pickles are read, never run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facelab.cli.progress import console, progress_bar
from facelab.faceset.dfl.importer import import_dfl as run_import

_LISTED = 5


def import_dfl(
    source: Annotated[Path, typer.Argument(metavar="DIR", show_default=False,
                                           help="A DFL aligned folder, a folder holding faceset.pak, or the pak.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="OUT", show_default=False,
                                      help="Folder for the facelab faces (new, empty, or an interrupted import's).")],
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first face whose DFL metadata is bad, "
                                                          "instead of skipping it.")] = False,
    rewarp: Annotated[bool, typer.Option("--rewarp", help="Re-warp each face to facelab's crop of its face type "
                                                          "(re-encoded) instead of keeping DFL's pixels and crop.")]
    = False,
    jpeg_quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality of re-warped .jpg faces.")] = 95,
) -> None:
    """Import DeepFaceLab's aligned faces: pixels kept byte for byte (or re-warped to facelab's crops with
    --rewarp), metadata converted to facelab records. DFL's pickles are read, never run."""
    with progress_bar("importing", transient=True) as bar:
        result = run_import(source, out, strict=strict, rewarp=rewarp, jpeg_quality=jpeg_quality,
                            progress=bar.update)
    if result.ignored:
        console.print(f"read {result.source} as DFL does; {result.ignored} loose image(s) beside it ignored",
                      highlight=False, markup=False)
    if result.foreign:
        console.print(f"skipped {len(result.foreign)} image(s) without DFL metadata", highlight=False)
    if result.invalid:
        unsafe = f", {result.unsafe} refused as unsafe (nothing in them was run)" if result.unsafe else ""
        console.print(f"skipped {len(result.invalid)} file(s) that could not be imported{unsafe}:", highlight=False)
        for name, reason in result.invalid[:_LISTED]:
            console.print(f"  {name}: {reason}", highlight=False, markup=False)
        if len(result.invalid) > _LISTED:
            console.print(f"  ... and {len(result.invalid) - _LISTED} more", highlight=False)
    for note, count in result.notes.most_common():
        console.print(f"{count} face(s): {note}", highlight=False, markup=False)
    if result.approximate:
        console.print(f"{result.approximate} face(s) of DFL's *_no_align types: imported as full/head, not "
                      "rotated upright", highlight=False)
    types = ", ".join(f"{k} {v}" for k, v in result.face_types.most_common()) or "-"
    resumed = f" ({result.resumed} already there from an earlier run)" if result.resumed else ""
    typer.echo(f"Imported {result.imported} faces into {out}{resumed}; DFL face types: {types}")

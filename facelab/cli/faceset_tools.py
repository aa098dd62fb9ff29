"""`facelab faceset pack/unpack/info/coverage/resize/metadata`: packed facesets and whole-faceset tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from facelab.cli.progress import console, progress_bar
from facelab.core.choices import FaceType
from facelab.faceset.coverage import Bin, faceset_coverage
from facelab.faceset.info import faceset_info, pose_histogram, write_pose_histogram
from facelab.faceset.metadata_io import export_metadata, import_metadata
from facelab.faceset.pack import PACK_SUFFIX, pack_faceset, unpack_faceset
from facelab.faceset.resize import resize_faceset

_LISTED = 5  # skipped files named one per line before "... and N more"

FacesetArg = Annotated[
    Path, typer.Argument(metavar="FACESET", help=f"A folder of aligned faces or a {PACK_SUFFIX} pack.",
                         show_default=False)
]


def _skipped(foreign: list[Path], invalid: list[tuple[Path, str]]) -> None:
    """Name the files that were left out, on stderr."""
    if foreign:
        console.print(f"skipped {len(foreign)} image(s) without facelab metadata:", highlight=False)
        for path in foreign[:_LISTED]:
            console.print(f"  {path}", highlight=False, markup=False)
        if len(foreign) > _LISTED:
            console.print(f"  ... and {len(foreign) - _LISTED} more", highlight=False)
    if invalid:
        console.print(f"skipped {len(invalid)} invalid face file(s):", highlight=False)
        for path, reason in invalid[:_LISTED]:
            console.print(f"  {path}: {reason}", highlight=False, markup=False)
        if len(invalid) > _LISTED:
            console.print(f"  ... and {len(invalid) - _LISTED} more", highlight=False)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def pack(
    folder: Annotated[Path, typer.Argument(metavar="FOLDER", help="Folder of aligned faces.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", metavar=f"OUT{PACK_SUFFIX}", help="The pack file to write.",
                                      show_default=False)],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
) -> None:
    """Pack every face file of FOLDER into one file (byte for byte), for fast loading of large sets."""
    with progress_bar("packing", transient=True) as bar:
        result = pack_faceset(folder, out, overwrite=overwrite, progress=bar.update)
    _skipped(result.foreign, result.invalid)
    typer.echo(f"Packed {result.count} faces into {out} ({_mib(result.bytes)})")


def unpack(
    pack_file: Annotated[Path, typer.Argument(metavar=f"PACK{PACK_SUFFIX}", help="The pack to unpack.",
                                              show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FOLDER", help="New or empty folder for the faces.",
                                      show_default=False)],
) -> None:
    """Write every face of a pack back as a face file, byte for byte identical to the packed one."""
    with progress_bar("unpacking", transient=True) as bar:
        count = unpack_faceset(pack_file, out, progress=bar.update)
    typer.echo(f"Unpacked {count} faces into {out}")


def info(
    faceset: FacesetArg,
    histogram: Annotated[Path | None, typer.Option(metavar="PNG", help="Write a yaw/pitch histogram image here.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Counts of a faceset: faces, face types, sizes, formats, bytes, pose ranges (metadata only)."""
    summary = faceset_info(faceset)
    if histogram is not None:
        write_pose_histogram(summary, histogram)
    if as_json:
        data = summary.to_dict()
        data["histogram"] = pose_histogram(summary.yaws, summary.pitches)
        typer.echo(json.dumps(data, indent=2))
        return
    _skipped(summary.foreign, summary.invalid)
    types = ", ".join(f"{k} {v}" for k, v in summary.face_types.items()) or "-"
    sizes = ", ".join(f"{k} px {v}" for k, v in summary.sizes.items()) or "-"
    formats = ", ".join(f"{k} {v}" for k, v in summary.formats.items()) or "-"
    typer.echo(f"{summary.location} ({summary.kind}): {summary.count} faces, {_mib(summary.bytes)}")
    typer.echo(f"  face types: {types}")
    typer.echo(f"  sizes:      {sizes}")
    typer.echo(f"  formats:    {formats}")
    typer.echo(f"  with pose:  {summary.with_pose}")
    for name, rng in (("yaw", summary.yaw_range), ("pitch", summary.pitch_range)):
        if rng is not None:
            typer.echo(f"  {name + ':':<11} {rng[0]:.1f} .. {rng[1]:.1f} degrees")
    if histogram is not None:
        typer.echo(f"  histogram:  {histogram}")


def coverage(
    src: Annotated[Path, typer.Argument(metavar="SRC", help="The src faceset (the identity): folder or pack.",
                                        show_default=False)],
    dst: Annotated[Path, typer.Argument(metavar="DST", help="The dst faceset (the performance): folder or pack.",
                                        show_default=False)],
    mirror: Annotated[bool, typer.Option(help="Count src's yaws mirrored too, as training flips src's faces "
                                         "(its random_flip_src, on by default).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Whether src's faces show the mouth openings and head turns dst makes (metadata only)."""
    cov = faceset_coverage(src, dst, mirror_src=mirror)
    if as_json:
        typer.echo(json.dumps(cov.to_dict(), indent=2))
        return

    def table(title: str, bins: tuple[Bin, ...]) -> None:
        typer.echo(f"  {title:<16} {'src':>15} {'dst':>15}")
        for b in bins:
            if b.src or b.dst:
                flag = "  <- gap" if b.gap else ""
                typer.echo(f"  {b.name:<16} {b.src:>6} ({b.src_share:>6.1%}) {b.dst:>6} ({b.dst_share:>6.1%}){flag}")

    typer.echo(f"src: {cov.src} ({cov.src_faces} faces); dst: {cov.dst} ({cov.dst_faces} faces)")
    table("mouth", cov.mouth)
    if cov.yaw:
        table("yaw, mirrored src" if mirror else "yaw (degrees)", cov.yaw)
        if cov.src_posed < cov.src_faces or cov.dst_posed < cov.dst_faces:
            typer.echo(f"  (yaw: the faces with a pose only, src {cov.src_posed} of {cov.src_faces}, "
                       f"dst {cov.dst_posed} of {cov.dst_faces})")
    else:
        typer.echo("  yaw: not compared (no face of one side has a pose)")
    for r in cov.reach:
        flag = "  <- gap" if r.gap else ""
        span = f"{r.src_low:+6.1f}..{r.src_high:+5.1f} {r.dst_low:+6.1f}..{r.dst_high:+5.1f}"
        typer.echo(f"  {r.name + ' reach':<16} {span}  ({r.beyond} dst faces beyond){flag}")
    gaps = cov.gaps()
    typer.echo("gaps: none" if not gaps else "gaps:")
    for line in gaps:
        typer.echo(f"  {line}")


def resize(
    faceset: FacesetArg,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="OUT",
                                      help=f"New folder, or a {PACK_SUFFIX} file, for the resized faces.",
                                      show_default=False)],
    size: Annotated[int | None, typer.Option(min=64, max=1024, help="New size in pixels. Default: keep.")] = None,
    face_type: Annotated[FaceType | None, typer.Option(help="A smaller (or the same) face type. Default: keep.")]
    = None,
    jpeg_quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality of re-encoded .jpg faces.")] = 95,
) -> None:
    """Re-warp every face to a new size and/or a smaller face type; landmarks and transforms follow."""
    with progress_bar("resizing", transient=True) as bar:
        result = resize_faceset(faceset, out, size=size, face_type=face_type, jpeg_quality=jpeg_quality,
                                progress=bar.update)
    _skipped(result.foreign, result.invalid)
    typer.echo(f"Resized {result.count} faces into {out}")


metadata_app = typer.Typer(
    help="Export every face's metadata to JSON, and embed it back into faces edited in an image editor.",
    no_args_is_help=True,
)


@metadata_app.command("export")
def metadata_export(
    faceset: FacesetArg,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="JSON", help="The JSON file to write.",
                                      show_default=False)],
) -> None:
    """Write every face's record, keyed by file name, to a versioned JSON file."""
    with progress_bar("exporting", transient=True) as bar:
        count = export_metadata(faceset, out, progress=bar.update)
    typer.echo(f"Exported the metadata of {count} faces to {out}")


@metadata_app.command("import")
def metadata_import(
    export: Annotated[Path, typer.Argument(metavar="JSON", help="A file written by `metadata export`.",
                                           show_default=False)],
    folder: Annotated[Path, typer.Argument(metavar="FOLDER", help="The folder of edited faces.",
                                           show_default=False)],
) -> None:
    """Embed the exported records back into the (edited) files of FOLDER; sizes must be unchanged."""
    with progress_bar("importing", transient=True) as bar:
        result = import_metadata(export, folder, progress=bar.update)
    typer.echo(f"Embedded metadata into {len(result.updated)} faces in {folder}")
    if result.missing:
        typer.echo(f"  {len(result.missing)} exported faces have no file in the folder (deleted?)")
    if result.unmatched:
        typer.echo(f"  {len(result.unmatched)} files have no exported record and were left as they are")

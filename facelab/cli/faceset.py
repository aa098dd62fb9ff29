"""`facelab faceset ...`: sort, clean, pack and inspect folders of aligned faces.

Each command is a thin wrapper over ``facelab.faceset``; the commands are registered below, one line each.
"""

from __future__ import annotations

import typer

from facelab.cli import faceset_dfl, faceset_enhance, faceset_sort, faceset_tools

app = typer.Typer(
    help="Sort, clean, pack and inspect facesets (folders of aligned faces).",
    no_args_is_help=True,
)
app.command("pack")(faceset_tools.pack)
app.command("unpack")(faceset_tools.unpack)
app.command("info")(faceset_tools.info)
app.command("coverage")(faceset_tools.coverage)
app.command("resize")(faceset_tools.resize)
app.add_typer(faceset_tools.metadata_app, name="metadata")
app.command("sort")(faceset_sort.sort)
app.command("dedupe")(faceset_sort.dedupe)
app.command("filter")(faceset_sort.filter_faces)
app.command("enhance")(faceset_enhance.enhance)
app.command("import-dfl")(faceset_dfl.import_dfl)

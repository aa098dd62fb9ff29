"""The `facelab` command."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.markup import escape

from facelab import __version__
from facelab.cli import (
    demo,
    evaluate,
    export,
    extract,
    faceset,
    merge,
    pretrain,
    studio,
    swap,
    train,
    verify,
    video,
    xseg,
)
from facelab.cli.live import live
from facelab.cli.progress import console
from facelab.core.errors import FacelabError, storage_error

app = typer.Typer(
    name="facelab",
    help="Multi-shot face swapping: extract, train, merge. Every merged output is marked as synthetic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(video.app, name="video")
app.add_typer(faceset.app, name="faceset")
app.add_typer(xseg.app, name="xseg")
app.add_typer(pretrain.app, name="pretrain")
app.command("extract")(extract.extract)
app.command("train")(train.train)
app.command("merge")(merge.merge)
app.command("export")(export.export)
app.command("verify")(verify.verify)
app.command("swap")(swap.swap)
app.command("demo")(demo.demo)
app.command("evaluate")(evaluate.evaluate)
app.command("studio")(studio.studio)
app.command("live")(live)


@app.command("version")
def version() -> None:
    """Print facelab's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point: user errors (and a full disk, an I/O error) become one line on stderr and exit code 2, never a
    traceback."""
    try:
        app()
    except FacelabError as exc:
        _fail(exc)
    except OSError as exc:  # a full disk or an I/O error below facelab's own writers (a codec's, a library's)
        err = storage_error(exc)
        if err is None:
            raise
        _fail(err)


def _fail(exc: FacelabError) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    sys.exit(2)


if __name__ == "__main__":
    main()

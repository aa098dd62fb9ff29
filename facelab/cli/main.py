"""The `facelab` command."""

from __future__ import annotations

import sys

import typer

from facelab import __version__
from facelab.cli import extract, video
from facelab.cli.progress import console
from facelab.core.errors import FacelabError

app = typer.Typer(
    name="facelab",
    help="Multi-shot face swapping: extract, train, merge. Every merged output is marked as synthetic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(video.app, name="video")
app.command("extract")(extract.extract)


@app.command("version")
def version() -> None:
    """Print facelab's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except FacelabError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted: finished work is kept; run the same command again to resume")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()

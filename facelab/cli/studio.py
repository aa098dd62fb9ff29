"""`facelab studio [WORKSPACE]`: the local web app over a workspace (see docs/studio.md)."""

from __future__ import annotations

import contextlib
import threading
import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from facelab.cli.progress import console


def studio(
    workspace: Annotated[Path, typer.Argument(help="The workspace folder (made by `facelab swap` or by hand).")]
    = Path("."),
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --token.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 7860,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the studio in the browser.")] = True,
    token: Annotated[str | None, typer.Option(help="Use this access token instead of a random one (required "
                                                   "with a non-loopback --host).")] = None,
) -> None:
    """Serve the studio (workspace, training dashboard, merge tuner) until Ctrl+C."""
    from facelab.studio.layout import Layout
    from facelab.studio.server import check_bind, check_port, new_token, serve, studio_url

    check_bind(host, token)
    layout = Layout.open(workspace)
    check_port(host, port)
    secret = token or new_token()
    url = studio_url(host, port, secret)

    def ready() -> None:  # the address is printed once the server listens (and handles Ctrl+C itself)
        console.print(f"facelab studio for {layout.root}\n  open {url}\n  (Ctrl+C stops it; a running job is "
                      "stopped first, so training saves)", highlight=False, soft_wrap=True)
        if open_browser:
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl+C after its clean shutdown
        serve(layout, host, port, secret, on_ready=ready)
    console.print("facelab studio stopped")

"""Running the studio: uvicorn with the app, a shutdown that ends the event streams first."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn

from facelab.core.errors import InputError
from facelab.studio.app import create_app
from facelab.studio.layout import Layout


class StudioServer(uvicorn.Server):
    """uvicorn's server, closing the app's event bus before waiting for connections (open SSE streams), and
    calling ``on_ready`` once it listens."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit and self.on_ready is not None:
            self.on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app: Any = self.config.app
        ctx = getattr(getattr(app, "state", None), "studio", None)
        if ctx is not None:
            ctx.events.close()
        await super().shutdown(sockets)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def check_bind(host: str, token: str | None) -> None:
    """A non-loopback address needs an explicit --token (anyone on the network could reach the studio)."""
    if not is_loopback(host) and not token:
        raise InputError(f"--host {host} is reachable from other machines: give --token VALUE to serve it "
                         "(or use the default --host 127.0.0.1)")


def check_port(host: str, port: int) -> None:
    """A clear one-line error when the address cannot be bound (port in use, unknown address)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): "
                             "choose another --port") from None


def studio_url(host: str, port: int, token: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?token={token}"


def serve(layout: Layout, host: str, port: int, token: str, host_allowed: Sequence[str] = (),
          on_ready: Callable[[], None] | None = None) -> None:
    """Serve the studio until Ctrl+C (a running job is stopped with SIGINT first, so training saves);
    ``on_ready`` is called once it listens."""
    allowed = [*host_allowed] + ([host] if host not in ("0.0.0.0", "::") else [])
    app = create_app(layout, token, host_allowed=allowed)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=3)
    StudioServer(config, on_ready).run()

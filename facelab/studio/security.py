"""The studio's security: the per-start token, the Host and Origin checks, and path confinement.

* Token: every request needs it. The first load carries it in the URL (``/?token=...``); the server answers
  with a cookie (``facelab_studio_<port>``, HttpOnly, SameSite=Strict) and, for a page, a redirect to the
  same URL without the token. Scripts may send the ``X-Studio-Token`` header instead. No token: 401; a
  wrong one: 403. Comparisons are constant-time.
* Host: the Host header must name the server as the browser reached it: an IP address literal, localhost,
  or a name given with ``host_allowed``. A page of another site whose DNS name was rebound to 127.0.0.1
  sends its own name and gets 403 (DNS rebinding).
* Origin: a request carrying an Origin header (fetch POSTs, EventSource, websockets) must come from the
  server's own origin (same host and port as the Host header): 403 otherwise.
* ``confine(layout, rel)``: every path that comes from the browser, resolved inside the workspace.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http.cookies import SimpleCookie
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import HTTPException

from facelab.studio.layout import Layout
from facelab.studio.pages import PAGES

COOKIE = "facelab_studio"
HEADER = "x-studio-token"
LOCAL_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def cookie_name(host_header: str) -> str:
    """The cookie's name: one per port, so two studios on one machine keep their own tokens."""
    _, port = split_host(host_header)
    return f"{COOKIE}_{port}" if port else COOKIE


def split_host(value: str) -> tuple[str, str]:
    """("host", "port") of a Host header value ("[::1]:7860" -> ("::1", "7860"))."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, ""
        host, rest = value[1:end], value[end + 1:]
        return host, rest[1:] if rest.startswith(":") else ""
    host, _, port = value.partition(":")
    return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_ok(host_header: str, allowed: frozenset[str]) -> bool:
    host, port = split_host(host_header)
    if not host or (port and not port.isdigit()):
        return False
    return _is_ip(host) or host in LOCAL_NAMES or host in allowed


def origin_ok(origin: str, host_header: str) -> bool:
    """An Origin header is fine only as this server's own origin (scheme http, same host and port)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.strip().lower()


def token_ok(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


class SecurityMiddleware:
    """ASGI middleware applying the checks of the module docstring to every HTTP and websocket request."""

    def __init__(self, app: ASGIApp, token: str, host_allowed: Sequence[str] = ()) -> None:
        self.app, self.token = app, token
        self.allowed = frozenset(h.strip().lower().strip("[]") for h in host_allowed if h.strip())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not host_ok(host, self.allowed):
            await _deny(scope, send, 403, "this studio answers only to its own address (Host header refused)")
            return
        origin = headers.get("origin")
        if origin is not None and not origin_ok(origin, host):
            await _deny(scope, send, 403, "cross-origin request refused")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        from_query = query.get("token")
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:
            cookies = SimpleCookie()
        name = cookie_name(host)
        candidates = [from_query, headers.get(HEADER)] + [cookies[n].value for n in (name, COOKIE) if n in cookies]
        given = [c for c in candidates if c is not None]
        if not given:
            await _deny(scope, send, 401, "this studio needs its token: open the URL `facelab studio` printed")
            return
        if not any(token_ok(c, self.token) for c in given):
            await _deny(scope, send, 403, "wrong studio token: open the URL `facelab studio` printed")
            return
        if from_query is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie = f"{name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        if scope.get("method") == "GET" and scope.get("path") in PAGES:  # drop the token from the address bar
            rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
            location = scope["path"] + (f"?{rest}" if rest else "")
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", location.encode("latin-1")),
                                    (b"set-cookie", cookie.encode("latin-1")), (b"content-length", b"0"),
                                    (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


async def _deny(scope: Scope, send: Send, status: int, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    body = json.dumps({"detail": detail}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


def confine(layout: Layout, rel: str, *, must_exist: bool = True) -> Path:
    """The workspace path named by ``rel`` (a relative path from the browser), or HTTPException.

    403: an absolute path, a ``..`` component, a NUL byte, or a path that leaves the workspace through a
    symlink. 404: it does not exist (unless ``must_exist`` is False, for a file about to be written).
    """
    if not isinstance(rel, str) or "\x00" in rel or "\\" in rel:
        raise HTTPException(403, "path refused: use a relative path inside the workspace")
    posix, win = PurePosixPath(rel), PureWindowsPath(rel)
    if posix.is_absolute() or win.is_absolute() or win.drive or rel.startswith("~"):
        raise HTTPException(403, "path refused: absolute paths are not allowed")
    if ".." in posix.parts:
        raise HTTPException(403, "path refused: '..' is not allowed")
    root = layout.root.resolve()
    path = root / posix
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise HTTPException(403, "path refused: unresolvable link") from None
    if not resolved.is_relative_to(root):
        raise HTTPException(403, "path refused: it leads outside the workspace")
    if must_exist and not resolved.exists():
        raise HTTPException(404, f"not found in the workspace: {posix.as_posix()}")
    return resolved

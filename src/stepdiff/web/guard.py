"""Refuse requests that a browser sends on another site's behalf.

A page on any site can make the user's browser POST to ``http://127.0.0.1:<port>`` (a
"simple" cross-origin request needs no permission), and a site whose DNS name is made
to point at 127.0.0.1 (DNS rebinding) can even read the answers. So, before any route:

* bound to loopback, the Host header must name a loopback host and the server's port
  (a rebound site's name fails this);
* a POST whose Origin header is present must come from this same origin;
* each POST must declare the body type its route reads: an upload (a file as the raw
  body) ``application/octet-stream`` or ``video/*``, the JSON routes ``application/json``.
  A cross-origin ``text/plain`` or form post is "simple" and needs no preflight; these
  types do, and this server answers no preflight, so a browser never sends them from
  another site.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UPLOAD_PATH = "/api/upload"
DEFAULT_PORTS = {"http": 80, "https": 443}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Refusal(Exception):
    """A request refused before it reached a route, with its status and one-line reason."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, IPv6 with or without brackets) is this machine
    only: ``localhost`` or a loopback address such as 127.0.0.1 or ::1."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_and_port(authority: str, scheme: str) -> tuple[str, int]:
    """(lower-case host, port) of a ``host[:port]`` string; ValueError if malformed."""
    parts = urlsplit(f"//{authority}")
    if not parts.hostname:
        raise ValueError(authority)
    return parts.hostname, parts.port or DEFAULT_PORTS.get(scheme, 80)


def check_host(host_header: str | None, scheme: str, server_port: int | None) -> None:
    """Refusal(403) unless Host names a loopback host at ``server_port`` (the port the
    request arrived on; None where unknown, e.g. a Unix socket)."""
    if not host_header:
        raise Refusal("the request has no Host header", 403)
    try:
        name, port = _host_and_port(host_header, scheme)
    except ValueError:
        raise Refusal(f"malformed Host header {host_header!r}", 403) from None
    if not is_loopback(name) or (server_port is not None and port != server_port):
        expected = f"localhost:{server_port}" if server_port is not None else "localhost"
        raise Refusal(
            f"Host {host_header!r} is not this server: open it as http://{expected}/ "
            "(or 127.0.0.1, [::1])",
            403,
        )


def same_origin(origin: str, host_header: str | None, scheme: str) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) is the server the request names."""
    try:
        parts = urlsplit(origin)
        source = (parts.scheme, *_host_and_port(parts.netloc, parts.scheme))
        return source == (scheme, *_host_and_port(host_header or "", scheme))
    except ValueError:
        return False  # "null" (sandboxed pages, local files) or malformed


def check_origin(origin: str | None, host_header: str | None, scheme: str) -> None:
    """Refusal(403) when an Origin is given and is not this server's own."""
    # No Origin: not a browser acting for another site (browsers send it on every
    # cross-origin POST), so nothing to refuse here.
    if origin is not None and not same_origin(origin, host_header, scheme):
        raise Refusal(f"cross-origin request from {origin!r} refused", 403)


def check_content_type(path: str, content_type: str | None) -> None:
    """Refusal(415) unless a POST to ``path`` declares the body type its route reads."""
    media = (content_type or "").split(";")[0].strip().lower()
    if path == UPLOAD_PATH:
        if media == "application/octet-stream" or media.startswith("video/"):
            return
        wanted = "application/octet-stream or video/*"
    else:
        if media == "application/json":
            return
        wanted = "application/json"
    got = f"Content-Type {media!r}" if media else "no Content-Type"
    raise Refusal(f"{path} needs Content-Type {wanted}, got {got}", 415)


def check_request(scope: Scope, loopback_only: bool) -> None:
    """Refusal for a request that may come from another site, else None."""
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
    scheme = scope.get("scheme", "http")
    host_header = headers.get("host")
    if loopback_only:
        server = scope.get("server")
        check_host(host_header, scheme, server[1] if server else None)
    if scope["method"] not in SAFE_METHODS:
        check_origin(headers.get("origin"), host_header, scheme)
        check_content_type(scope["path"], headers.get("content-type"))


class RequestGuard:
    """ASGI middleware: requests failing :func:`check_request` get ``{"error": ...}``.

    Plain ASGI rather than an ``http`` middleware function: that kind wraps the request
    body, and uploads must stream through untouched.
    """

    def __init__(self, app: ASGIApp, *, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                check_request(scope, self.loopback_only)
            except Refusal as refusal:
                await _send_error(send, refusal.status, str(refusal))
                return
        await self.app(scope, receive, send)


async def _send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""Who may call which route: an ingest key for writes, a read key for reads, the admin token for
managing flash sales. Keys are compared in constant time; on loopback they are optional, off
it the API refuses to start without them, with one shorter than MIN_KEY_CHARS, or with the demo
admin token."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from shopstream.core.errors import ConfigError
from shopstream.core.settings import DEMO_ADMIN_TOKEN, Settings
from shopstream.http_common import CTX, error

#: Routes anyone who reaches the API may call: probes, metrics, the API document, the page.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/openapi.json", "/",
                        "/dashboard/app.js", "/dashboard/draw.js", "/dashboard/money.js",
                        "/dashboard/style.css"})

#: Off loopback every key and the admin token have at least this many characters (the webhook
#: secret's floor too): short keys are guessed.
MIN_KEY_CHARS = 16

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _key_for(settings: Settings, request: web.Request) -> tuple[str, str | None] | None:
    """(name, expected key) guarding this request, or None when the route guards itself or
    is open. Flash-sale management checks the admin token in its own handlers."""
    path, method = request.path, request.method
    if path in OPEN_PATHS or method == "OPTIONS":
        return None
    if method == "POST" and (path == "/v1/events" or path.endswith("/claims")):
        return "ingest", settings.ingest_key
    if method in ("GET", "HEAD"):
        return "read", settings.read_key
    return None


@web.middleware
async def require_keys(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = _key_for(request.app[CTX].settings, request)
    if guard is not None and guard[1] is not None:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {guard[1]}".encode()):
            return error(401, f"{guard[0]} key required: Authorization: Bearer <key>",
                         reason="unauthorized")
    return await handler(request)


def admin_refusal(request: web.Request) -> web.Response | None:
    """The 401 of a request without the admin token (routes that manage state check it
    themselves), None when it has it."""
    given = request.headers.get("Authorization", "").encode()
    if hmac.compare_digest(given, f"Bearer {request.app[CTX].settings.admin_token}".encode()):
        return None
    return error(401, "admin token required: Authorization: Bearer <token>",
                 reason="unauthorized")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse to serve beyond this machine with open routes, weak keys or the demo admin
    token."""
    if is_loopback(settings.api_host):
        return
    problems = []
    for name, value in (("ingest_key", settings.ingest_key), ("read_key", settings.read_key),
                        ("admin_token", settings.admin_token)):
        if not value:
            problems.append(name)
        elif value == DEMO_ADMIN_TOKEN:
            problems.append(f"{name} (not the demo default)")
        elif len(value.strip()) < MIN_KEY_CHARS:
            problems.append(f"{name} (at least {MIN_KEY_CHARS} characters, got {len(value)})")
    if problems:
        raise ConfigError(
            f"api_host {settings.api_host!r} is reachable from other machines: set "
            f"{', '.join(problems)} (SHOPSTREAM_INGEST_KEY, SHOPSTREAM_READ_KEY, "
            "SHOPSTREAM_ADMIN_TOKEN), or bind 127.0.0.1")

"""What the API's route modules share: the context they read, JSON answers, parameters.

Route modules import this, never ``shopstream.api``, so the API can import them plainly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.monitoring.metrics import ApiMetrics
from shopstream.sinks.redis_state import Redis


@dataclass
class ApiContext:
    """What route handlers share."""

    settings: Settings
    redis: Redis
    producer: EnvelopeProducer
    metrics: ApiMetrics


CTX: web.AppKey[ApiContext] = web.AppKey("ctx", ApiContext)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=codec.dumps(body), status=status, content_type="application/json")


def error(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status)


def bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=codec.dumps({"error": message}).decode(),
                              content_type="application/json")


def int_param(request: web.Request, name: str, default: int | None = None) -> int:
    """Query parameter as an integer; raises HTTPBadRequest naming it."""
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise bad_request(f"{name}: required")
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name}: expected epoch milliseconds, got {raw!r}") from None


#: The ``res`` query parameter and the bucket code the queries use.
RESOLUTIONS = {"minute": "m", "hour": "h", "day": "d"}


def window_params(request: web.Request) -> tuple[int, int, str]:
    """``from``/``to`` (epoch ms, default everything) and ``res`` (default minute) as a bucket
    code; raises HTTPBadRequest naming the parameter."""
    from_ms = int_param(request, "from", 0)
    to_ms = int_param(request, "to", 2**62)
    if to_ms < from_ms:
        raise bad_request("to: expected >= from")
    res = request.query.get("res", "minute")
    if res not in RESOLUTIONS:
        raise bad_request(f"res: expected one of {list(RESOLUTIONS)}, got {res!r}")
    return from_ms, to_ms, RESOLUTIONS[res]

"""What the API's route modules share: the context they read, JSON answers, parameters.

Route modules import this, never ``shopstream.api``, so the API can import them plainly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from shopstream.agents.read_caps import ReadTooLarge
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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CTX: web.AppKey[ApiContext] = web.AppKey("ctx", ApiContext)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=codec.dumps(body), status=status, content_type="application/json")


def error(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status)


def bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=codec.dumps({"error": message}).decode(),
                              content_type="application/json")


#: Largest time parameter: the largest integer a JSON number carries exactly (2**53 - 1).
MAX_TIME_MS = 2**53 - 1
#: Seconds a client is told to wait when Redis does not answer.
RETRY_AFTER_S = 5


def int_param(request: web.Request, name: str, default: int | None = None, *, low: int = 0,
              high: int = MAX_TIME_MS, unit: str = "epoch milliseconds") -> int:
    """Query parameter as an integer in ``low..high``; raises HTTPBadRequest naming it and the
    accepted range (an unchecked huge integer could not even be echoed back as JSON)."""
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise bad_request(f"{name}: required")
        return default
    value: int | None
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise web.HTTPBadRequest(
            text=codec.dumps({"error": f"{name}: expected {unit} {low}..{high}, got {raw[:40]!r}",
                              "parameter": name, "min": low, "max": high}).decode(),
            content_type="application/json")
    return value


#: The ``res`` query parameter and the bucket code the queries use.
RESOLUTIONS = {"minute": "m", "hour": "h", "day": "d"}


def time_window(request: web.Request) -> tuple[int, int]:
    """``from``/``to`` (epoch ms, 0..MAX_TIME_MS, default everything); raises HTTPBadRequest
    naming the parameter."""
    from_ms = int_param(request, "from", 0)
    to_ms = int_param(request, "to", MAX_TIME_MS)
    if to_ms < from_ms:
        raise bad_request("to: expected >= from")
    return from_ms, to_ms


def window_params(request: web.Request) -> tuple[int, int, str]:
    """``from``/``to`` (see ``time_window``) and ``res`` (default minute) as a bucket code;
    raises HTTPBadRequest naming the parameter."""
    from_ms, to_ms = time_window(request)
    res = request.query.get("res", "minute")
    if res not in RESOLUTIONS:
        raise bad_request(f"res: expected one of {list(RESOLUTIONS)}, got {res!r}")
    return from_ms, to_ms, RESOLUTIONS[res]


@web.middleware
async def read_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A read over its cap: 400 JSON naming the cap and how to narrow the read. Redis down,
    stalled past its timeout or refusing: a JSON 503 with ``Retry-After``, never a bare 500
    (the state is unreadable for now, the request itself was fine)."""
    try:
        return await handler(request)
    except ReadTooLarge as exc:
        return error(400, str(exc), reason="too_large", limit=exc.what, cap=exc.cap)
    except RedisError as exc:
        resp = error(503, f"state store unavailable: {type(exc).__name__}",
                     reason="redis_unavailable", retry=f"after {RETRY_AFTER_S} s")
        resp.headers["Retry-After"] = str(RETRY_AFTER_S)
        return resp

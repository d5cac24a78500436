"""HTTP API (aiohttp): ingest events, query state, health and metrics.

Each capability's routes live in a module of their own, ``http_<capability>`` (and
``http_pipeline``, ``http_dashboard``) with ``setup(app, ctx)``; all of them share only
``http_common``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import generate_latest

from shopstream import (
    http_ads,
    http_anomalies,
    http_customers,
    http_dashboard,
    http_event_stats,
    http_flash_sale,
    http_funnel,
    http_live,
    http_ops,
    http_pipeline,
    http_stock,
    http_traffic,
)
from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.http_auth import require_keys
from shopstream.http_common import (
    CTX,
    ApiContext,
    error,
    json_response,
    read_errors,
)
from shopstream.http_metrics import count_requests
from shopstream.kafka_io.envelope import classify
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.errors import ProduceError
from shopstream.monitoring.metrics import ApiMetrics
from shopstream.schemas import decode
from shopstream.schemas.events import ROOM_WIDE_TYPES, Event, routing_key
from shopstream.schemas.validate import FieldError, field_errors, future_bound, judge
from shopstream.sinks.redis_state import READY_TIMEOUT_S, answers, make_redis

log = logging.getLogger(__name__)

#: Modules that add routes, each with ``setup(app, ctx)``.
ROUTE_MODULES: tuple[ModuleType, ...] = (http_event_stats, http_funnel, http_flash_sale, http_live,
                                         http_ops, http_anomalies, http_pipeline, http_dashboard,
                                         http_stock, http_ads, http_traffic, http_customers)

#: The API's contract (OpenAPI 3.1), served as it is in the repository.
OPENAPI = (Path(__file__).parent / "openapi.json").read_bytes()
#: Largest request body accepted by POST /v1/events.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Deepest nesting the JSON encoder writes (orjson's limit).
ENCODER_DEPTH = 254

#: The items of a JSON array, each as its own bytes.
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(frozen=True, slots=True)
class _Malformed:
    detail: str


@dataclass(frozen=True, slots=True)
class _Invalid:
    """JSON that is not a valid event: the decoded value, for the checks that name why."""

    doc: Any


#: One item of a body: its bytes, and the event (valid) or why it is not one.
_Item = tuple[bytes, Event | _Invalid | _Malformed]


def _decode_item(raw: bytes) -> Event | _Invalid:
    """The valid event in ``raw`` (one pass), else its JSON value; codec.DecodeError when
    ``raw`` is not JSON."""
    try:
        return decode.decode_event(raw)
    except decode.DecodeFailed:
        return _Invalid(codec.loads(raw))


def _parse_body(body: bytes, content_type: str) -> list[_Item] | web.Response:
    """One event, an array of events, or NDJSON, item by item.

    The Content-Type decides: ``application/json`` is one document (an event or an array),
    ``application/x-ndjson`` one event per line; only without a type is the form guessed.
    Each item keeps its own bytes: they are what is produced, unknown fields and all.
    """
    if content_type == "application/json":
        ndjson = False
    elif "ndjson" in content_type:
        ndjson = True
    else:
        ndjson = body.count(b"\n") > 1 and not body.lstrip().startswith(b"[")
    if ndjson:
        items: list[_Item] = []
        for n, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append((line, _decode_item(line)))
            except codec.DecodeError as exc:
                items.append((line, _Malformed(f"line {n}: {exc}")))
        return items
    try:
        if body.lstrip()[:1] == b"[":
            try:
                raws = _ITEMS.decode(body)
            except decode.DecodeFailed:
                # Malformed (the error names where), or deeper than the decoder recurses.
                return [(b"", _Invalid(doc)) for doc in codec.loads(body)]
            return [(raw, _decode_item(raw)) for raw in map(bytes, raws)]
        return [(body, _decode_item(body))]
    except codec.DecodeError as exc:
        return error(400, "malformed JSON", reason="malformed_json", detail=str(exc))


async def post_events(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    too_big = error(413, f"body over {MAX_BODY_BYTES} bytes", reason="oversized")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        ctx.metrics.api_events.labels("rejected").inc()
        return too_big
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:  # a chunked body with no length, cut at the limit
        ctx.metrics.api_events.labels("rejected").inc()
        return too_big
    content_type = request.content_type if "Content-Type" in request.headers else ""
    parsed = _parse_body(body, content_type)
    if isinstance(parsed, web.Response):
        ctx.metrics.api_events.labels("rejected").inc()
        return parsed
    results: list[dict[str, Any]] = []
    valid: list[tuple[bytes, str, bool]] = []
    bound = future_bound(ctx.settings.max_future_ms, int(time.time() * 1000), "the API's clock")
    for index, (data, item) in enumerate(parsed):
        if isinstance(item, _Malformed):
            results.append({"index": index, "status": "rejected", "reason": "malformed_json",
                            "detail": item.detail})
            continue
        doc = None
        if isinstance(item, _Invalid):
            judged = judge(item.doc)
            if isinstance(judged, FieldError):
                results.append(_rejected(index, judged, field_errors(item.doc, judged)))
                continue
            ev, doc = judged, item.doc
        else:
            ev = item
        if bound is not None and ev.ts > bound.latest:
            err = bound.error(ev.ts)
            results.append(_rejected(index, err, [err]))
            continue
        stored = _stored(data, doc)
        if isinstance(stored, codec.EncodeError):
            results.append({"index": index, "status": "rejected", "reason": "malformed_json",
                            "detail": f"cannot be stored as JSON: {stored}"})
            continue
        if len(stored) > ctx.settings.max_record_bytes:
            results.append({"index": index, "status": "rejected", "reason": "oversized"})
            continue
        valid.append((stored, routing_key(ev), ev.type in ROOM_WIDE_TYPES))
        results.append({"index": index, "status": "accepted", "event_id": ev.event_id})
    # Every item was judged before the first one is produced: no answer after partial queueing
    # but the 503 below, which says what may have landed.
    accepted = len(valid)
    try:
        for data, key, room_wide in valid:
            ctx.producer.add_encoded(data, key, room_wide)
        await ctx.producer.flush_async(ctx.settings.api_produce_timeout_s)
    except ProduceError as exc:
        return error(503, f"broker unavailable: {exc}", reason="broker_unavailable",
                     may_have_been_accepted=accepted,
                     retry="safe: send the same events again; repeated event_ids are "
                           "deduplicated")
    rejected = len(results) - accepted
    ctx.metrics.api_events.labels("accepted").inc(accepted)
    ctx.metrics.api_events.labels("rejected").inc(rejected)
    status = 200 if rejected == 0 else (400 if accepted == 0 else 207)
    return json_response({"accepted": accepted, "rejected": rejected, "results": results}, status)


def _stored(data: bytes, doc: Any) -> bytes | codec.EncodeError:
    """The bytes a valid item is produced as: its own, unknown fields and all; ``doc``
    encoded again when the one-pass decoder could not read them (nested deeper than it
    recurses). What the encoder cannot write is refused (its error), as the worker encodes a
    rejected item of an envelope again for its dead letter: only an item with more than
    ``ENCODER_DEPTH`` brackets is encoded to find out."""
    if doc is None and data.count(b"{") + data.count(b"[") <= ENCODER_DEPTH:
        return data
    try:
        encoded = codec.dumps(codec.loads(data) if doc is None else doc)
    except codec.EncodeError as exc:
        return exc
    return data if doc is None else encoded


def _rejected(index: int, err: FieldError, errors: list[FieldError]) -> dict[str, Any]:
    return {"index": index, "status": "rejected", "reason": classify(err).value,
            "error": err.as_dict(), "errors": [e.as_dict() for e in errors], "detail": str(err)}


async def healthz(request: web.Request) -> web.Response:
    """Redis answers (a stalled or absent Redis: 503 with Retry-After, ``read_errors``)."""
    await request.app[CTX].redis.ping()
    return json_response({"status": "ok"})


async def livez(_: web.Request) -> web.Response:
    """The process serves requests (for a supervisor's restart decision)."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when Redis and the brokers answer (for a load balancer's routing decision)."""
    ctx = request.app[CTX]
    checks = {"redis": await answers(ctx.redis),
              "broker": await asyncio.to_thread(ctx.producer.broker_reachable, READY_TIMEOUT_S)}
    ready = all(checks.values())
    return json_response({"status": "ready" if ready else "not ready", "checks": checks},
                         200 if ready else 503)


async def openapi(_: web.Request) -> web.Response:
    return web.Response(body=OPENAPI, content_type="application/json")


async def metrics_page(request: web.Request) -> web.Response:
    reg = request.app[CTX].metrics.registry
    return web.Response(body=generate_latest(reg), content_type="text/plain")


def create_api(settings: Settings, metrics: ApiMetrics | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES,
                          middlewares=[count_requests, require_keys, read_errors])
    ctx = ApiContext(settings, make_redis(settings), EnvelopeProducer(settings, max_events=500),
                     metrics or ApiMetrics())
    app[CTX] = ctx
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/openapi.json", openapi)
    for routes in ROUTE_MODULES:
        routes.setup(app, ctx)

    async def close(_: web.Application) -> None:
        # Every accepted event was flushed before its answer; what is left was answered 503
        # (may have been accepted), so a broker that is gone must not hold the stop for long.
        try:
            await ctx.producer.flush_async(ctx.settings.api_produce_timeout_s)
        except ProduceError as exc:
            log.warning("api stopping: %s", exc)
            ctx.producer.purge()
        await ctx.redis.aclose()

    app.on_cleanup.append(close)
    return app


def run_api(settings: Settings, reuse_port: bool = False) -> None:
    """Serve until stopped; with ``reuse_port`` other processes may listen on the same port
    (SO_REUSEPORT), and the kernel spreads new connections over them."""
    log.info("api listening", extra={"url": f"http://{settings.api_host}:{settings.api_port}"})
    web.run_app(create_api(settings), host=settings.api_host, port=settings.api_port,
                print=None, access_log=None, reuse_port=reuse_port or None)

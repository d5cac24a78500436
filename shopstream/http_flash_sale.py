"""Flash-sale routes: create/restock/end (admin), read and list, and the synchronous claim path.

A claim is decided by the sale's Lua script; concurrent claims on a sale share one call
(``sinks/flash_sale/claim_batcher.py``). The answer does not wait for Kafka. The
``flash_sale_claim`` event is queued on the API's envelope producer and flushed by a
background task every ``FLUSH_EVERY_S`` (the reservation in Redis is the source of truth,
the event informs the stream side and downstream consumers).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

from aiohttp import web
from msgspec import UNSET, Meta, UnsetType

from shopstream.agents.flash_sale.agent import parse_config, read_unreserved
from shopstream.agents.read_caps import MAX_OFFSET, MAX_PAGE
from shopstream.core import codec
from shopstream.http_auth import admin_refusal
from shopstream.http_common import CTX, ApiContext, error, int_param, json_response
from shopstream.kafka_io.errors import ProduceError
from shopstream.kafka_io.producer import RecordProducer
from shopstream.schemas.bodies import B, Body, NotAnObject, parse_body
from shopstream.schemas.events import MAX_TS, MIN_TS, Id
from shopstream.schemas.validate import FieldError
from shopstream.sinks.flash_sale.claim_batcher import ClaimBatcher
from shopstream.sinks.flash_sale.store import (
    RESTOCK_REFUSED,
    FlashSales,
    SaleSpec,
    now_ms,
    publish_alerts,
    text,
)

#: Clock of the claim path (epoch ms); tests replace it before the app starts.
CLOCK: web.AppKey[Callable[[], int]] = web.AppKey("flash_clock")
SALES: web.AppKey[FlashSales] = web.AppKey("flash_sales", FlashSales)
CLAIMS: web.AppKey[ClaimBatcher] = web.AppKey("flash_claims", ClaimBatcher)
#: sale id -> SKU (never changes once created).
SKUS: web.AppKey[dict[str, str]] = web.AppKey("flash_skus")
#: Background alert publications, awaited at shutdown.
TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("flash_tasks")
#: Lazily created Kafka producer for the alerts topic (0 or 1 element).
ALERT_PRODUCER: web.AppKey[list[Any]] = web.AppKey("flash_alert_producer")
#: Claim events wait at most this long in the producer's buffers.
FLUSH_EVERY_S = 0.05
MAX_SKU_LEN = 128
#: Bounds of a sale's numbers (docs/guarantees.md): stock and each restock, units one user
#: may hold, how long a reservation lasts. Far below where Lua's doubles or Redis's int64 fail.
MAX_STOCK = 10**9
MAX_PER_USER = 10**6
MAX_TTL_S = 7 * 86_400


Ms = Annotated[int, Meta(ge=MIN_TS, le=MAX_TS, description="epoch milliseconds (integer)")]


class SaleBody(Body, frozen=True):
    """POST /v1/flash-sales."""

    sale_id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z",
                                 description="1-64 characters of A-Z a-z 0-9 _ -")]
    sku: Annotated[str, Meta(min_length=1, max_length=MAX_SKU_LEN, description=(
        f"non-empty string of at most {MAX_SKU_LEN} characters"))]
    stock: Annotated[int, Meta(ge=1, le=MAX_STOCK, description="integer >= 1 and <= 10**9")]
    per_user_limit: Annotated[int, Meta(ge=1, le=MAX_PER_USER,
                                        description="integer >= 1 and <= 10**6")]
    starts_at: Ms
    ends_at: Ms
    reservation_ttl_s: Annotated[int, Meta(ge=1, le=MAX_TTL_S, description=(
        "integer >= 1 and <= 604800 (a week)"))] | UnsetType = UNSET
    low_stock_pct: Annotated[list[Annotated[int, Meta(gt=0, lt=100)]], Meta(
        description="list of integers 1..99")] | UnsetType = UNSET

    def problems(self) -> list[FieldError]:
        if self.ends_at <= self.starts_at:
            return [FieldError("ends_at", "later than starts_at", repr(self.ends_at))]
        return []

    def spec(self, default_ttl_s: int, default_pct: tuple[int, ...]) -> SaleSpec:
        ttl, pct = self.reservation_ttl_s, self.low_stock_pct
        return SaleSpec(self.sale_id, self.sku, self.stock, self.per_user_limit, self.starts_at,
                        self.ends_at, default_ttl_s if ttl is UNSET else ttl,
                        default_pct if pct is UNSET else tuple(sorted(set(pct), reverse=True)))


class ClaimBody(Body, frozen=True):
    """POST /v1/flash-sales/{sale_id}/claims."""

    user_id: Id
    qty: Annotated[int, Meta(ge=1, le=MAX_PER_USER, description="integer >= 1 and <= 10**6")]


class PatchBody(Body, frozen=True):
    """PATCH /v1/flash-sales/{sale_id}: restock and/or end now."""

    restock: Annotated[int, Meta(ge=1, le=MAX_STOCK, description=(
        "integer >= 1 and <= 10**9"))] | UnsetType = UNSET
    end: Annotated[Literal[True], Meta(description="true")] | UnsetType = UNSET

    def problems(self) -> list[FieldError]:
        if self.restock is UNSET and self.end is UNSET:
            return [FieldError("", "restock and/or end", "{}")]
        return []


def _invalid(errors: list[FieldError]) -> web.Response:
    return error(400, "; ".join(str(e) for e in errors), reason="invalid_fields",
                 fields=[e.as_dict() for e in errors])


async def _parsed(request: web.Request, cls: type[B]) -> B | web.Response:
    """The body as ``cls``, or the 400 answer (malformed, or naming every bad field)."""
    try:
        parsed = parse_body(cls, await request.read())
    except codec.DecodeError as exc:
        return error(400, "malformed JSON", reason="malformed_json", detail=str(exc))
    except NotAnObject:
        return error(400, "body: expected a JSON object", reason="malformed_json")
    return _invalid(parsed) if isinstance(parsed, list) else parsed


async def _view(request: web.Request, sale_id: str) -> dict[str, Any] | None:
    ctx = request.app[CTX]
    view = await request.app[SALES].read(sale_id, request.app[CLOCK]())
    if view is not None:
        view["unreserved_orders"] = await read_unreserved(
            ctx.redis, ctx.settings.app_id, ctx.settings.partitions, sale_id)
    return view


async def create_sale(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if (denied := admin_refusal(request)) is not None:
        return denied
    body = await _parsed(request, SaleBody)
    if isinstance(body, web.Response):
        return body
    cfg = parse_config(ctx.settings.sections)
    spec = body.spec(cfg.reservation_ttl_s, cfg.low_stock_pct)
    if not await request.app[SALES].create(spec):
        return error(409, f"sale {spec.sale_id!r} exists", reason="exists")
    return json_response(await _view(request, spec.sale_id), 201)


async def patch_sale(request: web.Request) -> web.Response:
    if (denied := admin_refusal(request)) is not None:
        return denied
    sale_id = request.match_info["sale_id"]
    parsed = await _parsed(request, PatchBody)
    if isinstance(parsed, web.Response):
        return parsed
    restock = 0 if parsed.restock is UNSET else parsed.restock
    end = parsed.end is True
    sales = request.app[SALES]
    if not await sales.meta(sale_id):
        return error(404, f"unknown sale {sale_id!r}", reason="unknown_sale")
    if restock and await sales.restock(sale_id, restock) == RESTOCK_REFUSED:
        return error(409, "restock refused: stock plus restocks would exceed 10**12 units",
                     reason="stock_limit")
    if end:
        await sales.end(sale_id, request.app[CLOCK]())
    return json_response(await _view(request, sale_id))


async def list_sales(request: web.Request) -> web.Response:
    """A page of the sales by id (``limit``/``offset``), read concurrently, and the total."""
    limit = int_param(request, "limit", MAX_PAGE, low=1, high=MAX_PAGE, unit="sales")
    offset = int_param(request, "offset", 0, high=MAX_OFFSET, unit="sales")
    sales, now = request.app[SALES], request.app[CLOCK]()
    ids = await sales.sale_ids()
    views = await asyncio.gather(*(sales.read(i, now) for i in ids[offset:offset + limit]))
    return json_response({"sales": [v for v in views if v is not None], "total": len(ids),
                          "limit": limit, "offset": offset})


async def get_sale(request: web.Request) -> web.Response:
    sale_id = request.match_info["sale_id"]
    view = await _view(request, sale_id)
    if view is None:
        return error(404, f"unknown sale {sale_id!r}", reason="unknown_sale")
    return json_response(view)


async def claim(request: web.Request) -> web.Response:
    started = time.perf_counter()
    ctx = request.app[CTX]
    sale_id = request.match_info["sale_id"]
    parsed = await _parsed(request, ClaimBody)
    if isinstance(parsed, web.Response):
        return parsed
    user_id, qty = parsed.user_id, parsed.qty
    res, now = await request.app[CLAIMS].claim(sale_id, user_id, qty)
    if res.result == "unknown":
        return error(404, f"unknown sale {sale_id!r}", reason="unknown_sale")
    m = ctx.metrics
    label = m.sale_label(sale_id)
    m.flash_claims.labels(label, res.result).inc()
    m.flash_claim_seconds.observe(time.perf_counter() - started)
    if res.result != "ok":
        return error(409, f"claim refused: {res.result}", reason=res.result)
    ctx.producer.add({
        "event_id": f"claim:{res.reservation_id}", "type": "flash_sale_claim", "ts": now,
        "user_id": user_id, "sale_id": sale_id, "sku": await _sku(request, sale_id),
        "qty": qty, "reservation_id": res.reservation_id,
    })
    if res.alerts_queued:
        _spawn(request.app, _publish(request.app, sale_id))
    return json_response({"reservation_id": res.reservation_id, "expires_at": res.expires_at,
                          "qty": qty})


async def _sku(request: web.Request, sale_id: str) -> str:
    """SKU of a sale, cached per process (a sale's SKU never changes)."""
    cache = request.app[SKUS]
    sku = cache.get(sale_id)
    if sku is None:
        raw = await request.app[CTX].redis.hget(request.app[SALES].keys(sale_id).meta, "sku")
        sku = cache[sale_id] = text(raw) if raw else "?"
    return sku



def _spawn(app: web.Application, coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)


async def _publish(app: web.Application, sale_id: str) -> None:
    """Send queued alerts; on failure they stay queued for the worker's timer."""
    ctx = app[CTX]
    with contextlib.suppress(ProduceError, OSError):
        await publish_alerts(app[SALES], lambda: _alert_producer(app),
                             ctx.settings.alerts_topic, sale_id)



def _alert_producer(app: web.Application) -> RecordProducer:
    holder = app[ALERT_PRODUCER]
    if not holder:
        holder.append(RecordProducer(app[CTX].settings))
    return holder[0]


async def _flusher(app: web.Application) -> AsyncIterator[None]:
    """Flush queued claim events every FLUSH_EVERY_S while the API runs."""
    producer = app[CTX].producer

    async def loop() -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            with contextlib.suppress(ProduceError):
                await producer.flush_async()

    task = asyncio.get_running_loop().create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await app[CLAIMS].close()
    await asyncio.gather(*app[TASKS])


def setup(app: web.Application, ctx: ApiContext) -> None:
    parse_config(ctx.settings.sections)  # fail at start on a bad [flash_sales] section
    app[CLOCK] = now_ms
    app[SALES] = FlashSales(ctx.redis, ctx.settings.app_id)
    app[CLAIMS] = ClaimBatcher(app[SALES], lambda: app[CLOCK]())
    app[SKUS] = {}
    tasks: set[asyncio.Task[None]] = set()
    app[TASKS] = tasks
    app[ALERT_PRODUCER] = []
    app.cleanup_ctx.append(_flusher)
    app.router.add_post("/v1/flash-sales", create_sale)
    app.router.add_get("/v1/flash-sales", list_sales)
    app.router.add_get("/v1/flash-sales/{sale_id}", get_sale)
    app.router.add_patch("/v1/flash-sales/{sale_id}", patch_sale)
    app.router.add_post("/v1/flash-sales/{sale_id}/claims", claim)

"""Stock health: ``GET /v1/stock?limit=&offset=&state=`` (SKUs, least days of cover first,
with their alert state) and ``GET /v1/stock/{sku}`` (one SKU, with its flash sale's stock
beside it when it has one)."""

from __future__ import annotations

import time

from aiohttp import web

from shopstream.agents.read_caps import MAX_OFFSET, MAX_PAGE
from shopstream.agents.stock.query import stock_of, stock_page
from shopstream.agents.stock.rules import STATES
from shopstream.http_common import CTX, ApiContext, bad_request, error, int_param, json_response
from shopstream.schemas.events import Kind
from shopstream.schemas.validate import is_id
from shopstream.sinks.flash_sale.store import FlashSales

#: SKUs per page unless ``limit`` says otherwise.
DEFAULT_PAGE = 50


def setup(app: web.Application, ctx: ApiContext) -> None:
    async def list_stock(request: web.Request) -> web.Response:
        limit = int_param(request, "limit", DEFAULT_PAGE, low=1, high=MAX_PAGE, unit="SKUs")
        offset = int_param(request, "offset", 0, high=MAX_OFFSET, unit="SKUs")
        state = request.query.get("state")
        if state is not None and state not in STATES:
            raise bad_request(f"state: expected one of {list(STATES)}, got {state[:40]!r}")
        s = request.app[CTX].settings
        return json_response(await stock_page(request.app[CTX].redis, s.app_id, s.partitions,
                                              limit, offset, state))

    async def get_stock(request: web.Request) -> web.Response:
        s, redis = request.app[CTX].settings, request.app[CTX].redis
        sku = request.match_info["sku"]
        if not is_id(sku):
            raise bad_request(f"sku: expected {Kind.STR.value}, got {len(sku.encode())} bytes")
        body = await stock_of(redis, s.app_id, s.partitions, sku)
        flash = await FlashSales(redis, s.app_id).read_sku(sku, int(time.time() * 1000))
        if body is None and flash is None:
            return error(404, f"sku {sku!r} not seen")
        return json_response({**(body or {"sku": sku, "state": "unknown"}),
                              "flash_sale": flash})

    app.router.add_get("/v1/stock", list_stock)
    app.router.add_get("/v1/stock/{sku}", get_stock)

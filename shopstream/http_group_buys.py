"""Group buys: ``GET /v1/group-buys`` (open, completed and expired groups per SKU) and
``GET /v1/group-buys/{group_id}`` (one group: members, target, deadline, status)."""

from __future__ import annotations

from aiohttp import web

from shopstream.agents.group_buys.query import group_of, sku_counts
from shopstream.http_common import CTX, ApiContext, bad_request, error, json_response
from shopstream.schemas.events import Kind
from shopstream.schemas.validate import is_id


def setup(app: web.Application, ctx: ApiContext) -> None:
    async def list_counts(request: web.Request) -> web.Response:
        s = request.app[CTX].settings
        return json_response(await sku_counts(request.app[CTX].redis, s.app_id, s.partitions))

    async def get_group(request: web.Request) -> web.Response:
        s = request.app[CTX].settings
        group_id = request.match_info["group_id"]
        if not is_id(group_id):
            raise bad_request(f"group_id: expected {Kind.STR.value}, "
                              f"got {len(group_id.encode())} bytes")
        body = await group_of(request.app[CTX].redis, s.app_id, s.partitions, group_id)
        if body is None:
            return error(404, f"group {group_id!r} not seen")
        return json_response(body)

    app.router.add_get("/v1/group-buys", list_counts)
    app.router.add_get("/v1/group-buys/{group_id}", get_group)

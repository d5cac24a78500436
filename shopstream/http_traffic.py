"""Traffic value: ``GET /v1/traffic?from=&to=&res=&by=channel|campaign`` (docs/traffic.md)."""

from __future__ import annotations

from aiohttp import web

from shopstream.agents.traffic.query import BY_PREFIX, read_traffic
from shopstream.http_common import CTX, ApiContext, bad_request, json_response, window_params

#: ``by`` values: rows split by channel or by campaign, or not.
_BY = (*BY_PREFIX, "none")


def setup(app: web.Application, ctx: ApiContext) -> None:
    async def traffic(request: web.Request) -> web.Response:
        from_ms, to_ms, res = window_params(request)
        by = request.query.get("by", "none")
        if by not in _BY:
            raise bad_request(f"by: expected one of {list(_BY)}, got {by!r}")
        s = request.app[CTX].settings
        body = await read_traffic(request.app[CTX].redis, s.app_id, s.partitions, from_ms,
                                  to_ms, res, None if by == "none" else by)
        body["res"] = request.query.get("res", "minute")
        body["by"] = by
        return json_response(body)

    app.router.add_get("/v1/traffic", traffic)

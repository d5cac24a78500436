"""The shop's pulse: ``GET /v1/ops/summary?from=&to=&res=&by=&top=`` (its anomalies:
``http_anomalies``)."""

from __future__ import annotations

from aiohttp import web

from shopstream.agents.ops.query import read_summary
from shopstream.http_common import (
    CTX,
    ApiContext,
    bad_request,
    int_param,
    json_response,
    window_params,
)

#: ``by`` values: per-bucket rows split by channel, or not.
_BY = ("channel", "none")
MAX_TOP = 100


def setup(app: web.Application, ctx: ApiContext) -> None:
    async def summary(request: web.Request) -> web.Response:
        from_ms, to_ms, res = window_params(request)
        by = request.query.get("by", "none")
        if by not in _BY:
            raise bad_request(f"by: expected one of {list(_BY)}, got {by!r}")
        top = int_param(request, "top", 10, low=1, high=MAX_TOP, unit="SKUs")
        s = request.app[CTX].settings
        body = await read_summary(request.app[CTX].redis, s.app_id, s.partitions, from_ms,
                                  to_ms, res, by == "channel", top, s.zone)
        body["res"] = request.query.get("res", "minute")
        return json_response(body)

    app.router.add_get("/v1/ops/summary", summary)

"""Ad economics: ``GET /v1/ads?from=&to=&res=&by=`` (spend, clicks, attributed orders and paid
GMV with ROI, ROAS, CPC and CAC per bucket and campaign, channel or keyword; ROAS alerts)."""

from __future__ import annotations

from aiohttp import web

from shopstream.agents.ads.query import GROUPS, read_ads
from shopstream.http_common import CTX, ApiContext, bad_request, json_response, window_params


def setup(app: web.Application, ctx: ApiContext) -> None:
    async def ads(request: web.Request) -> web.Response:
        from_ms, to_ms, res = window_params(request)
        by = request.query.get("by", "campaign")
        if by not in GROUPS:
            raise bad_request(f"by: expected one of {list(GROUPS)}, got {by!r}")
        s = request.app[CTX].settings
        body = await read_ads(request.app[CTX].redis, s.app_id, s.partitions, from_ms, to_ms,
                              res, by, s.zone)
        body["res"] = request.query.get("res", "minute")
        return json_response(body)

    app.router.add_get("/v1/ads", ads)

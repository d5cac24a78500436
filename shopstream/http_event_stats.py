"""Event stats: ``GET /v1/stats?from=&to=`` (counts, GMV and payments per minute)."""

from __future__ import annotations

from aiohttp import web

from shopstream.agents.event_stats.agent import read_stats
from shopstream.http_common import CTX, ApiContext, json_response, time_window


def setup(app: web.Application, ctx: ApiContext) -> None:
    async def get_stats(request: web.Request) -> web.Response:
        ctx = request.app[CTX]
        from_ms, to_ms = time_window(request)
        s = ctx.settings
        return json_response(await read_stats(ctx.redis, s.app_id, s.partitions, from_ms, to_ms))

    app.router.add_get("/v1/stats", get_stats)

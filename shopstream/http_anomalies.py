"""The anomaly judge's episodes: ``GET /v1/ops/anomalies?from=&to=``."""

from __future__ import annotations

from aiohttp import web

from shopstream.agents.read_caps import check_rows
from shopstream.http_common import CTX, ApiContext, json_response, time_window
from shopstream.sinks.anomalies.keys import anomalies_key
from shopstream.sinks.anomalies.store import AnomalyStore


def setup(app: web.Application, ctx: ApiContext) -> None:
    async def anomalies(request: web.Request) -> web.Response:
        from_ms, to_ms = time_window(request)
        store = AnomalyStore(request.app[CTX].redis, request.app[CTX].settings.app_id)
        await check_rows(request.app[CTX].redis, [anomalies_key(store.app_id)], from_ms, to_ms)
        return json_response(await store.read(from_ms, to_ms))

    app.router.add_get("/v1/ops/anomalies", anomalies)

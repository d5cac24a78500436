"""Funnel routes: ``GET /v1/funnels`` (definitions) and ``GET /v1/funnels/{name}`` (counts).

Query parameters of the second: ``from``/``to`` (epoch ms, buckets whose start is in
[from, to)), ``view`` cohort|flow (default cohort), ``by`` a breakdown of the funnel (default its
first), ``res`` minute|hour|day (default minute).
"""

from __future__ import annotations

from aiohttp import web

from shopstream.agents.funnel.query import read_funnel
from shopstream.agents.funnel.rules import parse_funnels
from shopstream.http_common import CTX, ApiContext, error, json_response, window_params

_VIEWS = ("cohort", "flow")


def setup(app: web.Application, ctx: ApiContext) -> None:
    """Validate the funnel definitions (ConfigError at start) and add the routes."""
    funnels, lateness = parse_funnels(ctx.settings.sections)
    by_name = {fd.name: fd for fd in funnels}

    async def list_funnels(request: web.Request) -> web.Response:
        return json_response({"funnels": [fd.public() for fd in funnels],
                              "allowed_lateness_ms": lateness})

    async def get_funnel(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        fd = by_name.get(name)
        if fd is None:
            return error(404, f"funnel {name!r} not configured", known=sorted(by_name))
        view = request.query.get("view", "cohort")
        if view not in _VIEWS:
            return error(400, f"view: expected one of {list(_VIEWS)}, got {view!r}")
        by = request.query.get("by", fd.breakdowns[0])
        if by not in fd.breakdowns:
            return error(400, f"by: expected one of {list(fd.breakdowns)}, got {by!r}")
        from_ms, to_ms, res = window_params(request)
        s = request.app[CTX].settings
        body = await read_funnel(request.app[CTX].redis, s.app_id, s.partitions, fd, view,
                                 res, by, from_ms, to_ms)
        body["res"] = request.query.get("res", "minute")
        return json_response(body)

    app.router.add_get("/v1/funnels", list_funnels)
    app.router.add_get("/v1/funnels/{name}", get_funnel)

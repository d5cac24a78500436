"""Every API request counted by route template and status class: bounded labels."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from shopstream.http_common import CTX

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_of(request: web.Request) -> str:
    """The matched route's template (``/v1/flash-sales/{sale_id}``), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    counter = request.app[CTX].metrics.api_requests
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        counter.labels(route_of(request), f"{exc.status // 100}xx").inc()
        raise
    counter.labels(route_of(request), f"{response.status // 100}xx").inc()
    return response

"""Live-room routes: ``GET /v1/live/rooms?limit=&offset=`` (on air now, most viewers first, a
page of them and the total) and
``GET /v1/live/rooms/{room_id}?from=&to=&res=`` (one room's viewers, watch time, engagement and
attributed sales per bucket)."""

from __future__ import annotations

import time

from aiohttp import web

from shopstream.agents.live.query import on_air, read_room
from shopstream.agents.read_caps import MAX_OFFSET, MAX_PAGE
from shopstream.http_common import (
    CTX,
    ApiContext,
    error,
    int_param,
    json_response,
    window_params,
)

#: Rooms per page unless ``limit`` says otherwise.
DEFAULT_PAGE = 100


def setup(app: web.Application, ctx: ApiContext) -> None:
    async def list_rooms(request: web.Request) -> web.Response:
        limit = int_param(request, "limit", DEFAULT_PAGE, low=1, high=MAX_PAGE, unit="rooms")
        offset = int_param(request, "offset", 0, high=MAX_OFFSET, unit="rooms")
        s = request.app[CTX].settings
        page = await on_air(request.app[CTX].redis, s.app_id, s.partitions,
                            int(time.time() * 1000), limit, offset)
        return json_response({"rooms": page.rooms, "on_air": page.total, "total": page.total,
                              "limit": limit, "offset": offset})

    async def get_room(request: web.Request) -> web.Response:
        from_ms, to_ms, res = window_params(request)
        s = request.app[CTX].settings
        room = request.match_info["room_id"]
        body = await read_room(request.app[CTX].redis, s.app_id, s.partitions, room, from_ms,
                               to_ms, res, s.zone)
        if body is None:
            return error(404, f"room {room!r} not seen")
        body["res"] = request.query.get("res", "minute")
        return json_response(body)

    app.router.add_get("/v1/live/rooms", list_rooms)
    app.router.add_get("/v1/live/rooms/{room_id}", get_room)

"""Live-room routes: ``GET /v1/live/rooms`` (on air now, most viewers first) and
``GET /v1/live/rooms/{room_id}?from=&to=&res=`` (one room's viewers, watch time, engagement and
attributed sales per bucket)."""

from __future__ import annotations

import time

from aiohttp import web

from shopstream.agents.live_query import on_air, read_room
from shopstream.http_common import CTX, ApiContext, error, json_response, window_params


def setup(app: web.Application, ctx: ApiContext) -> None:
    async def list_rooms(request: web.Request) -> web.Response:
        s = request.app[CTX].settings
        rooms = await on_air(request.app[CTX].redis, s.app_id, s.partitions,
                             int(time.time() * 1000))
        return json_response({"rooms": rooms, "on_air": len(rooms)})

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

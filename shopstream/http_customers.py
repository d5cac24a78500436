"""The customer loop: ``GET /v1/customers/tiers`` (known users per tier),
``GET /v1/customers/{user_id}`` (tier, spend, points, pending nudges, tasks), ``GET /v1/tasks``
(service tasks) and ``POST /v1/tasks/{task_id}/ack`` (admin: sends the task's ``task_ack``
event, which the worker applies in event time like any event)."""

from __future__ import annotations

import time

from aiohttp import web

from shopstream.agents.customers.config import parse_config
from shopstream.agents.customers.query import (
    TASK_STATES,
    customer_view,
    find_task,
    task_list,
    tier_population,
)
from shopstream.agents.read_caps import MAX_OFFSET, MAX_PAGE
from shopstream.http_auth import admin_refusal
from shopstream.http_common import CTX, ApiContext, bad_request, error, int_param, json_response
from shopstream.kafka_io.errors import ProduceError
from shopstream.schemas.events import Kind
from shopstream.schemas.validate import is_id

#: Tasks per page unless ``limit`` says otherwise.
DEFAULT_PAGE = 100


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not is_id(value):
        raise bad_request(f"{name}: expected {Kind.STR.value}, got {len(value.encode())} bytes")
    return value


def setup(app: web.Application, ctx: ApiContext) -> None:
    cfg = parse_config(ctx.settings.sections, ctx.settings.zone)

    async def tiers(request: web.Request) -> web.Response:
        s = request.app[CTX].settings
        return json_response(await tier_population(request.app[CTX].redis, s.app_id,
                                                   s.partitions, cfg))

    async def customer(request: web.Request) -> web.Response:
        s = request.app[CTX].settings
        user = _id(request, "user_id")
        body = await customer_view(request.app[CTX].redis, s.app_id, s.partitions, user)
        if body is None:
            return error(404, f"user {user!r} not seen")
        return json_response(body)

    async def tasks(request: web.Request) -> web.Response:
        s = request.app[CTX].settings
        limit = int_param(request, "limit", DEFAULT_PAGE, low=1, high=MAX_PAGE, unit="tasks")
        offset = int_param(request, "offset", 0, high=MAX_OFFSET, unit="tasks")
        status = request.query.get("status")
        if status is not None and status not in TASK_STATES:
            raise bad_request(f"status: expected one of {list(TASK_STATES)}, "
                              f"got {status[:40]!r}")
        return json_response(await task_list(request.app[CTX].redis, s.app_id, s.partitions,
                                             status, limit, offset))

    async def ack(request: web.Request) -> web.Response:
        if (denied := admin_refusal(request)) is not None:
            return denied
        c = request.app[CTX]
        tid = _id(request, "task_id")
        task = await find_task(c.redis, c.settings.app_id, c.settings.partitions, tid)
        if task is None:
            return error(404, f"task {tid!r} not found", reason="unknown_task")
        c.producer.add({"event_id": f"ack-{tid}", "type": "task_ack",
                        "ts": int(time.time() * 1000), "user_id": task["user_id"],
                        "task_id": tid})
        try:
            await c.producer.flush_async(c.settings.api_produce_timeout_s)
        except ProduceError as exc:
            return error(503, f"broker unavailable: {exc}", reason="broker_unavailable",
                         retry="safe: the ack's event_id is the task's, repeats are dropped")
        return json_response({"task_id": tid, "status": "ack_sent"}, 202)

    app.router.add_get("/v1/customers/tiers", tiers)
    app.router.add_get("/v1/customers/{user_id}", customer)
    app.router.add_get("/v1/tasks", tasks)
    app.router.add_post("/v1/tasks/{task_id}/ack", ack)

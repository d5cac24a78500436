"""``GET /v1/pipeline``: the stream's health as Redis and the broker know it, for the dashboard.

Workers export the same on their own ``/metrics``, which the API does not reach; this reads
what every worker leaves in Redis (each partition's reconciliation counters and fence) and the
events topic's log end, so one request tells events in, dead letters and consumer lag.
Log ends cost the broker one request per partition; they are cached for ``LOG_END_TTL_S`` so
any number of open dashboards ask at most that often. Each partition also says whether its
state belongs to the log (the topic's id stamped on its fence): state of another log, or a
fence beyond the log's end, is shown as such with its remedy, never as a healthy partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from aiohttp import web
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from shopstream.core.errors import ShopstreamError
from shopstream.core.settings import Settings
from shopstream.http_common import CTX, ApiContext, json_response
from shopstream.kafka_io.client_config import librdkafka_config
from shopstream.kafka_io.consumer import make_consumer
from shopstream.kafka_io.topics import topic_id
from shopstream.sinks import keys
from shopstream.sinks.redis_state import FENCE_AHEAD, OTHER_LOG, Fence

LOG_END_TTL_S = 1.0
#: Longest one log-end request waits for the broker; past it lag is unknown (null).
LOG_END_TIMEOUT_S = 1.0
#: Counters summed for the totals (per-reason dead letters are ``dead:<reason>``).
COUNTERS = ("in", "processed", "dead", "duplicate")
#: What gets a partition whose state is not of its log going again.
REMEDY = "shopstream reset --yes"


class LogView(NamedTuple):
    """What the broker says of the events topic."""

    #: Next offset per partition (the high watermark), None where unknown.
    ends: list[int | None]
    #: The topic's id, None where unknown or when the broker keeps none.
    log_id: str | None


def partition_view(applied: int, fence_log: str | None, end: int | None,
                   log_id: str | None) -> tuple[str, int | None, int | None]:
    """(state, log end, lag) of one partition: ``ok``, OTHER_LOG or FENCE_AHEAD.

    The broker's high watermark may trail what was written by a little: a fence of this very
    log (its id matches) at or beyond it proves the log holds at least ``applied + 1``
    records. Without that proof a fence at or beyond the log's end is not of this log.
    """
    fence = Fence(applied, 0, fence_log)
    if fence.of_other_log(log_id):
        return OTHER_LOG, end, end  # nothing of this log is in the state
    if end is not None and applied >= end:
        if not fence.proven_by(log_id):
            return FENCE_AHEAD, end, end
        end = applied + 1
    return "ok", end, (max(0, end - 1 - applied) if end is not None else None)


class LogEnds:
    """The events topic's log end per partition, from a consumer that never joins a group."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: Consumer | None = None
        self._lock = asyncio.Lock()
        self._at = 0.0
        self._view = LogView([], None)
        self._admin: AdminClient | None = None

    def _read(self) -> LogView:
        s = self.settings
        if self._consumer is None:
            self._consumer = make_consumer(s, "dashboard", {"enable.auto.commit": False})
            self._admin = AdminClient(librdkafka_config(s))
        try:
            log_id = topic_id(s, s.events_topic, LOG_END_TIMEOUT_S, self._admin)
        except ShopstreamError:
            return LogView([None] * s.partitions, None)
        ends: list[int | None] = []
        for p in range(s.partitions):
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(s.events_topic, p), timeout=LOG_END_TIMEOUT_S)
            except KafkaException:
                # the broker is away: no partition would answer
                return LogView([None] * s.partitions, log_id)
            ends.append(int(high) if high >= 0 else None)
        return LogView(ends, log_id)

    async def get(self) -> LogView:
        async with self._lock:
            if time.monotonic() - self._at >= LOG_END_TTL_S:
                self._view = await asyncio.to_thread(self._read)
                self._at = time.monotonic()
            return self._view

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = self._admin = None


async def read_pipeline(ctx: ApiContext, view: LogView) -> dict[str, Any]:
    """Per partition: counters, applied offset, log end, lag and state; and their totals."""
    s = ctx.settings
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for p in range(s.partitions):
            pipe.hgetall(keys.counts(s.app_id, p))
            pipe.hmget(keys.fence(s.app_id, s.events_topic, p), "offset", "log")
        rows = await pipe.execute()
    parts: list[dict[str, Any]] = []
    totals: dict[str, Any] = {name: 0 for name in COUNTERS}
    dead_by_reason: dict[str, int] = {}
    lags: list[int] = []
    refused = 0
    for p in range(s.partitions):
        raw, (offset, fence_log) = rows[2 * p], rows[2 * p + 1]
        counts = {k.decode(): int(v) for k, v in raw.items()}
        applied = int(offset) if offset is not None else -1
        state, end, lag = partition_view(
            applied, fence_log.decode() if fence_log is not None else None,
            view.ends[p] if p < len(view.ends) else None, view.log_id)
        refused += state != "ok"
        if lag is not None:
            lags.append(lag)
        for name in COUNTERS:
            totals[name] += counts.get(name, 0)
        for name, n in counts.items():
            if name.startswith("dead:"):
                reason = name.removeprefix("dead:")
                dead_by_reason[reason] = dead_by_reason.get(reason, 0) + n
        parts.append({"partition": p, "applied_offset": applied, "log_end": end, "lag": lag,
                      "state": state, **{name: counts.get(name, 0) for name in COUNTERS}})
    totals["lag"] = sum(lags) if len(lags) == s.partitions else None
    totals["dead_by_reason"] = dead_by_reason
    totals["refused"] = refused
    return {"now": int(time.time() * 1000), "topic": s.events_topic, "totals": totals,
            "partitions": parts, "remedy": REMEDY if refused else None}


def setup(app: web.Application, ctx: ApiContext) -> None:
    log_ends = LogEnds(ctx.settings)

    async def get_pipeline(request: web.Request) -> web.Response:
        return json_response(await read_pipeline(request.app[CTX], await log_ends.get()))

    async def close(_: web.Application) -> AsyncIterator[None]:
        yield
        log_ends.close()

    app.cleanup_ctx.append(close)
    app.router.add_get("/v1/pipeline", get_pipeline)

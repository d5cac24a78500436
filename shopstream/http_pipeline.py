"""``GET /v1/pipeline``: the stream's health as Redis and the broker know it, for the dashboard.

Workers export the same on their own ``/metrics``, which the API does not reach; this reads
what every worker leaves in Redis (each partition's reconciliation counters and fence) and the
events topic's log end, so one request tells events in, dead letters and consumer lag.
Log ends cost the broker one request per partition; they are cached for ``LOG_END_TTL_S`` so
any number of open dashboards ask at most that often.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from confluent_kafka import Consumer, KafkaException, TopicPartition

from shopstream.core.settings import Settings
from shopstream.http_common import CTX, ApiContext, json_response
from shopstream.kafka_io.client_config import librdkafka_config
from shopstream.sinks import keys

LOG_END_TTL_S = 1.0
#: Longest one log-end request waits for the broker; past it lag is unknown (null).
LOG_END_TIMEOUT_S = 1.0
#: Counters summed for the totals (per-reason dead letters are ``dead:<reason>``).
COUNTERS = ("in", "processed", "dead", "duplicate")


class LogEnds:
    """The events topic's log end per partition, from a consumer that never joins a group."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: Consumer | None = None
        self._lock = asyncio.Lock()
        self._at = 0.0
        self._ends: list[int | None] = []

    def _read(self) -> list[int | None]:
        s = self.settings
        if self._consumer is None:
            self._consumer = Consumer({**librdkafka_config(s), "group.id": f"{s.app_id}-dashboard",
                                       "enable.auto.commit": False})
        ends: list[int | None] = []
        for p in range(s.partitions):
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(s.events_topic, p), timeout=LOG_END_TIMEOUT_S)
            except KafkaException:
                return [None] * s.partitions  # the broker is away: no partition would answer
            ends.append(int(high) if high >= 0 else None)
        return ends

    async def get(self) -> list[int | None]:
        async with self._lock:
            if time.monotonic() - self._at >= LOG_END_TTL_S:
                self._ends = await asyncio.to_thread(self._read)
                self._at = time.monotonic()
            return self._ends

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


async def read_pipeline(ctx: ApiContext, log_ends: list[int | None]) -> dict[str, Any]:
    """Per partition: counters, applied offset, log end and lag; and their totals."""
    s = ctx.settings
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for p in range(s.partitions):
            pipe.hgetall(keys.counts(s.app_id, p))
            pipe.hget(keys.fence(s.app_id, s.events_topic, p), "offset")
        rows = await pipe.execute()
    parts: list[dict[str, Any]] = []
    totals: dict[str, Any] = {name: 0 for name in COUNTERS}
    dead_by_reason: dict[str, int] = {}
    lags: list[int] = []
    for p in range(s.partitions):
        raw, offset = rows[2 * p], rows[2 * p + 1]
        counts = {k.decode(): int(v) for k, v in raw.items()}
        applied = int(offset) if offset is not None else -1
        end = log_ends[p] if p < len(log_ends) else None
        # The log end may trail what a worker applied by a little; lag is never negative.
        lag = max(0, end - 1 - applied) if end is not None else None
        if lag is not None:
            lags.append(lag)
        for name in COUNTERS:
            totals[name] += counts.get(name, 0)
        for name, n in counts.items():
            if name.startswith("dead:"):
                reason = name.removeprefix("dead:")
                dead_by_reason[reason] = dead_by_reason.get(reason, 0) + n
        parts.append({"partition": p, "applied_offset": applied, "log_end": end, "lag": lag,
                      **{name: counts.get(name, 0) for name in COUNTERS}})
    totals["lag"] = sum(lags) if len(lags) == s.partitions else None
    totals["dead_by_reason"] = dead_by_reason
    return {"now": int(time.time() * 1000), "topic": s.events_topic, "totals": totals,
            "partitions": parts}


def setup(app: web.Application, ctx: ApiContext) -> None:
    log_ends = LogEnds(ctx.settings)

    async def get_pipeline(request: web.Request) -> web.Response:
        return json_response(await read_pipeline(request.app[CTX], await log_ends.get()))

    async def close(_: web.Application) -> AsyncIterator[None]:
        yield
        log_ends.close()

    app.cleanup_ctx.append(close)
    app.router.add_get("/v1/pipeline", get_pipeline)

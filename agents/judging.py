"""What the event-time judges (anomalies, ROAS, stock) share: every few seconds one worker at
a time, under a lease, judges what became final; then whichever worker ticks sends the
alerts its outbox still holds. A Redis or broker fault skips the tick: a step is committed or
not at all, so the next tick goes on from there."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from redis.exceptions import RedisError

from shopstream.kafka_io.errors import ProduceError
from shopstream.sinks.locks import lease
from shopstream.sinks.redis_state import Redis

log = logging.getLogger(__name__)

#: How often a judge looks, and how long its lease lasts without renewal.
EVERY_MS: Final = 2_000
LEASE_MS: Final = 30_000


class JudgeTicks:
    """A judge's tick: ``step`` under the lease at most every EVERY_MS, then ``send``."""

    def __init__(self, name: str, redis: Redis, lease_key: str,
                 step: Callable[[], Awaitable[Any]], send: Callable[[], Awaitable[int]]) -> None:
        self.name = name
        self.redis = redis
        self.lease_key = lease_key
        self.step = step
        self.send = send
        self._last = 0

    async def tick(self, now_ms: int) -> None:
        if now_ms - self._last < EVERY_MS:
            return
        self._last = now_ms
        try:
            async with lease(self.redis, self.lease_key, LEASE_MS) as held:
                if held:
                    await self.step()
            await self.send()
        except (RedisError, ProduceError) as exc:
            log.warning("%s: %s; trying again", self.name, exc)

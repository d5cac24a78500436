"""Ops alerts between their commit to Redis and Kafka's acknowledgement.

A judge (anomalies, ROAS) commits its alerts into an outbox hash (alert_id -> document) in the
same Lua call as its progress, then sends them to the ops-alerts topic keyed by alert_id; an
alert leaves the outbox only once Kafka acknowledged it. A crash in between sends it again
with the same alert_id (the relay's receivers deduplicate by it), never loses it.
"""

from __future__ import annotations

from typing import cast

from shopstream.core.settings import Settings
from shopstream.kafka_io.producer import RecordProducer
from shopstream.sinks.redis_state import Redis


class AlertOutbox:
    def __init__(self, redis: Redis, settings: Settings, key: str,
                 topic: str | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.key = key
        #: Where its documents go: the ops-alerts topic unless said (customer events).
        self.topic = topic or settings.alerts_topic
        self._producer: RecordProducer | None = None

    async def send(self) -> int:
        """Every alert in the outbox sent (again), then removed; returns how many."""
        unsent = cast(dict[bytes, bytes], await self.redis.hgetall(self.key))
        if not unsent:
            return 0
        if self._producer is None:
            self._producer = RecordProducer(self.settings)
        for alert, doc in sorted(unsent.items()):
            self._producer.produce(self.topic, doc, key=alert)
        await self._producer.flush_async()
        await self.redis.hdel(self.key, *unsent)
        return len(unsent)

"""Ops alerts between their commit to Redis and Kafka's acknowledgement.

A judge (anomalies, ROAS) commits its alerts into an outbox hash (alert_id -> document) in the
same Lua call as its progress, then sends them to the ops-alerts topic keyed by alert_id; an
alert leaves the outbox only once Kafka acknowledged it. A crash in between sends it again
with the same alert_id (the relay's receivers deduplicate by it), never loses it.
"""

from __future__ import annotations

from typing import cast

import orjson

from shopstream.core.settings import Settings
from shopstream.kafka_io.producer import RecordProducer
from shopstream.sinks.redis_state import Redis


class AlertOutbox:
    def __init__(self, redis: Redis, settings: Settings, key: str,
                 topic: str | None = None, key_field: str | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.key = key
        #: Where its documents go: the ops-alerts topic unless said (customer events).
        self.topic = topic or settings.alerts_topic
        #: The document field its records are keyed by (``user_id``); None: the outbox field.
        self.key_field = key_field
        self._producer: RecordProducer | None = None

    async def send(self, key: str | None = None) -> int:
        """Every alert in the outbox (``key``: another outbox hash, e.g. a partition's) sent
        (again), then removed; returns how many."""
        key = key or self.key
        unsent = cast(dict[bytes, bytes], await self.redis.hgetall(key))
        if not unsent:
            return 0
        if self._producer is None:
            self._producer = RecordProducer(self.settings)
        for alert, doc in sorted(unsent.items()):
            by = alert if self.key_field is None else orjson.loads(doc)[self.key_field].encode()
            self._producer.produce(self.topic, doc, key=by)
        await self._producer.flush_async()
        await self.redis.hdel(key, *unsent)
        return len(unsent)

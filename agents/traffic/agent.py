"""Traffic value per minute, hour and business day, overall, by channel and by campaign,
exactly once.

Per batch: ``load`` reads the state of the batch's users (one MGET per partition); ``apply``
runs ``rules.TrafficShard`` (pure) over the on-time events in partition order; the row changes
and the users' new state ride the batch's fenced write (keys in ``sinks/traffic/keys``).
Definitions: docs/traffic.md.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Final, cast

from shopstream.agents.base import NoHooks, PartitionBatch, Takes
from shopstream.agents.lateness import allowed_lateness
from shopstream.agents.traffic.rules import (
    SESSION_GAP_MS,
    TRAFFIC_TYPES,
    TrafficShard,
    UserTraffic,
    decode_user,
    encode_user,
)
from shopstream.core.settings import Settings
from shopstream.core.timeunits import HOUR_MS
from shopstream.monitoring.metrics import KNOWN_CHANNELS, Metrics, bounded
from shopstream.schemas.events import UserEvent
from shopstream.sinks.buckets import MINUTE_RETENTION_MS
from shopstream.sinks.redis_state import Redis
from shopstream.sinks.traffic import keys as tk

#: A user's state is needed until the business day of their last event ends (at most 25 hours
#: later) plus the allowed lateness; kept this long after its last write, plus the lateness.
USER_TTL_MS: Final = 25 * HOUR_MS + SESSION_GAP_MS

Measures = Counter[tuple[str, str]]


class TrafficValue(NoHooks):
    name = "traffic"
    takes = Takes(TRAFFIC_TYPES, on_time=True, late_key=tk.late_key)

    def __init__(self, settings: Settings, redis: Redis, metrics: Metrics | None = None) -> None:
        self.app_id = settings.app_id
        self.zone = settings.zone
        self.lateness_ms = allowed_lateness(settings.sections)
        self.redis = redis
        self.metrics = metrics

    async def load(self, batches: list[PartitionBatch]) -> list[dict[str, UserTraffic]]:
        async def one(b: PartitionBatch) -> dict[str, UserTraffic]:
            users = list(dict.fromkeys(
                e.user_id for e in cast(list[UserEvent], b.feeds[self.name].events)))
            if not users:
                return {}
            blobs = cast(list[bytes | None], await self.redis.mget(
                [tk.user_key(self.app_id, b.partition, u) for u in users]))
            return {u: decode_user(blob) for u, blob in zip(users, blobs, strict=True)}

        return list(await asyncio.gather(*(one(b) for b in batches)))

    def apply(self, batch: PartitionBatch, loaded: dict[str, UserTraffic]) -> Measures:
        events = batch.feeds[self.name].events
        if not events:
            return Counter()
        shard = TrafficShard(loaded, self.zone, batch.watermark_before - self.lateness_ms)
        shard.run(cast(list[UserEvent], events))
        # Kept is only what an event still on time after this batch can reach.
        shard.prune(batch.watermark - self.lateness_ms)
        a, p, ops = self.app_id, batch.partition, batch.ops
        buckets: set[tuple[str, int]] = set()
        for (res, start, fld), n in shard.changes().items():
            if n:
                ops.hincrby(tk.row_key(a, p, res, start), fld, n)
                buckets.add((res, start))
        for res, start in sorted(buckets):
            ops.zadd(tk.index_key(a, p, res), start, str(start))
            if res == "m":
                ops.pexpire(tk.row_key(a, p, res, start), MINUTE_RETENTION_MS)
        ttl = USER_TTL_MS + self.lateness_ms
        for uid, user in shard.users.items():
            key = tk.user_key(a, p, uid)
            ops.set(key, encode_user(user))
            ops.pexpire(key, ttl)
        return shard.metric

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[Measures]) -> None:
        """Prometheus counters (page views, sessions started), once the writes landed."""
        m = self.metrics
        if m is None:
            return
        for counts in outputs:
            for (measure, channel), n in counts.items():
                ch = bounded(channel, KNOWN_CHANNELS)
                (m.traffic_page_views if measure == "pv" else m.traffic_sessions).labels(ch).inc(n)

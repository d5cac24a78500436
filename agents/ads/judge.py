"""The ROAS judge: hour by hour of event time, once every partition is past the hour.

An hour is judged once every partition that has applied anything has a watermark beyond the
hour's end plus the allowed lateness: no accepted event can change its rows any more, so a
replay of the same log judges the same numbers and raises the same alerts with the same ids
(``rules.roas_alerts``: at most one per campaign and hour). Hours without any ads row are
jumped over. One worker judges at a time (a lease); each step commits the hours judged and
their alerts in one Lua call, then the alerts go to the ops-alerts topic (relayed to the ops
webhook like the others), leaving the outbox only once Kafka acknowledged them.
"""

from __future__ import annotations

import logging
from typing import Final

from redis.exceptions import RedisError

from shopstream.agents.ads.query import campaign_hours
from shopstream.agents.ads.rules import AdsConfig, roas_alerts
from shopstream.agents.lateness import final_before
from shopstream.core.settings import Settings
from shopstream.core.timeunits import HOUR_MS
from shopstream.kafka_io.errors import ProduceError
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.ads import keys as ak
from shopstream.sinks.ads.store import AlertStore
from shopstream.sinks.alert_outbox import AlertOutbox
from shopstream.sinks.locks import lease
from shopstream.sinks.redis_state import Redis

log = logging.getLogger(__name__)

#: How often the judge looks, the most hours it judges in one step, and its lease.
EVERY_MS: Final = 2_000
MAX_HOURS_PER_STEP: Final = 24
LEASE_MS: Final = 30_000


class RoasJudge:
    def __init__(self, settings: Settings, cfg: AdsConfig, lateness_ms: int, redis: Redis,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.app_id = settings.app_id
        self.cfg = cfg
        self.lateness_ms = lateness_ms
        self.redis = redis
        self.metrics = metrics
        self.store = AlertStore(redis, settings.app_id)
        self.outbox = AlertOutbox(redis, settings, ak.unsent_key(settings.app_id))
        self._last = 0

    async def tick(self, now_ms: int) -> None:
        if now_ms - self._last < EVERY_MS:
            return
        self._last = now_ms
        try:
            async with lease(self.redis, ak.lease_key(self.app_id), LEASE_MS) as held:
                if held:
                    while await self.step():
                        pass
            await self.send_unsent()
        except (RedisError, ProduceError) as exc:
            # Judged hours are committed or not at all; the next tick goes on from there.
            log.warning("ROAS judge: %s; trying again", exc)

    async def final_hour(self) -> int | None:
        """Start of the last hour no accepted event can change any more, or None."""
        closed = await final_before(self.redis, self.settings, self.lateness_ms)
        return None if closed is None else (closed - HOUR_MS) // HOUR_MS * HOUR_MS

    async def _next_data(self, from_ms: int) -> int | None:
        """The first minute at or after ``from_ms`` with an ads row, on any partition."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.settings.partitions):
                pipe.zrangebyscore(ak.index_key(self.app_id, p), from_ms, "+inf", start=0, num=1)
            rows = await pipe.execute()
        found = [int(row[0]) for row in rows if row]
        return min(found) if found else None

    async def step(self) -> bool:
        """Judge the next hours that are final (up to MAX_HOURS_PER_STEP); True when it moved
        on and there may be more."""
        judged = await self.store.judged()
        final = await self.final_hour()
        if final is None:
            return False
        start = 0 if judged is None else judged + HOUR_MS
        first = await self._next_data(start)
        if first is None or first - first % HOUR_MS > final:
            return False
        first -= first % HOUR_MS
        last = min(final, first + (MAX_HOURS_PER_STEP - 1) * HOUR_MS)
        hours = await campaign_hours(self.redis, self.app_id, self.settings.partitions,
                                     first, last + HOUR_MS)
        docs = roas_alerts(hours, self.cfg)
        if not await self.store.commit(judged, last, docs):
            return False
        for d in docs:
            log.warning("ROAS below floor", extra={k: d[k] for k in ("campaign", "hour", "roas")})
            if self.metrics is not None:
                self.metrics.ad_alerts.labels(self.metrics.campaign_label(d["campaign"])).inc()
        return True

    async def send_unsent(self) -> int:
        """Alerts committed but not yet acknowledged by Kafka, sent (again) by alert_id."""
        return await self.outbox.send()

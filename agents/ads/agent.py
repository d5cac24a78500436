"""Ad economics per minute and (channel, campaign, keyword), exactly once: spend from
``ad_cost`` (on its campaign's partition), clicks, attributed orders and paid GMV (on the
user's partition), summed over partitions when read. The rules are in ``rules``; the hourly
ROAS judge, on the worker's clock, in ``judge``. Keys in ``sinks/ads/keys``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import cast

from shopstream.agents.ads.judge import RoasJudge
from shopstream.agents.ads.rules import AdsConfig, Rows, UserAds, Writes, fold, row_field
from shopstream.agents.base import NoHooks, PartitionBatch, Takes
from shopstream.agents.lateness import allowed_lateness
from shopstream.core.settings import Settings
from shopstream.core.timeunits import DAY_MS
from shopstream.monitoring.metrics import KNOWN_CHANNELS, Metrics, bounded
from shopstream.sinks.ads import keys as ak
from shopstream.sinks.buckets import MINUTE_RETENTION_MS
from shopstream.sinks.redis_state import Redis

ADS_TYPES = frozenset({"ad_cost", "page_view", "order_submit", "order_cancel", "payment"})
#: (measure, channel, campaign) -> amount, for the Prometheus counters.
Measures = Counter[tuple[str, str, str]]


def user_ttl_ms(cfg: AdsConfig) -> int:
    """How long a user's state outlives its last write: a day past the longer window, so
    every rule decided in event time finds what it needs while the log is applied at least as
    fast as it was written."""
    return max(cfg.attribution_window_ms, cfg.new_buyer_window_ms) + DAY_MS


class AdsAgent(NoHooks):
    name = "ads"
    takes = Takes(ADS_TYPES, on_time=True, late_key=ak.late_key)

    def __init__(self, settings: Settings, cfg: AdsConfig, redis: Redis,
                 metrics: Metrics | None = None) -> None:
        self.app_id = settings.app_id
        self.cfg = cfg
        self.paid = frozenset(cfg.paid_channels)
        self.redis = redis
        self.metrics = metrics
        self.ttl_ms = user_ttl_ms(cfg)
        self.judge = RoasJudge(settings, cfg, allowed_lateness(settings.sections), redis,
                               metrics)

    def _stateful(self, b: PartitionBatch) -> list[str]:
        """Users of the batch whose state a rule reads."""
        users: dict[str, None] = {}
        for ev in b.feeds[self.name].events:
            if ev.user_id is None:
                continue
            if ev.type == "page_view":
                if ev.campaign is None or ev.channel not in self.paid:
                    continue
            elif ev.type == "payment" and ev.status != "success":
                continue
            users[ev.user_id] = None
        return list(users)

    async def load(self, batches: list[PartitionBatch]) -> list[dict[str, UserAds]]:
        """The state of every user a rule reads (one pipeline per partition)."""
        async def one(b: PartitionBatch) -> dict[str, UserAds]:
            users = self._stateful(b)
            if not users:
                return {}
            async with self.redis.pipeline(transaction=False) as pipe:
                for u in users:
                    pipe.hgetall(ak.user_key(self.app_id, b.partition, u))
                raws = await pipe.execute()
            return {u: UserAds.decode(cast(dict[bytes, bytes], raw))
                    for u, raw in zip(users, raws, strict=True) if raw}

        return list(await asyncio.gather(*(one(b) for b in batches)))

    def apply(self, batch: PartitionBatch, loaded: dict[str, UserAds]) -> Measures:
        rows: Rows = Counter()
        writes: Writes = {}
        fold(batch.feeds[self.name].events, loaded, self.cfg, rows, writes)
        a, p, ops = self.app_id, batch.partition, batch.ops
        minutes: set[int] = set()
        metric: Measures = Counter()
        for (m, measure, row), n in rows.items():
            ops.hincrby(ak.minute_key(a, p, m), row_field(measure, row), n)
            minutes.add(m)
            metric[(measure, row[0], row[1])] += n
        for m in sorted(minutes):
            ops.zadd(ak.index_key(a, p), m, str(m))
            ops.pexpire(ak.minute_key(a, p, m), MINUTE_RETENTION_MS)
        for uid, fields in writes.items():
            key = ak.user_key(a, p, uid)
            for name, value in fields.items():
                if value is None:
                    ops.hdel(key, name)
                else:
                    ops.hset(key, name, value)
            ops.pexpire(key, self.ttl_ms)
        return metric

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[Measures]) -> None:
        """Prometheus counters, once the batch's writes landed."""
        m = self.metrics
        if m is None:
            return
        counters = {"s": m.ad_spend, "c": m.ad_clicks, "o": m.ad_orders, "g": m.ad_paid_gmv}
        for counts in outputs:
            for (measure, channel, campaign), n in counts.items():
                counter = counters.get(measure)
                if counter is not None:
                    counter.labels(bounded(channel, KNOWN_CHANNELS),
                                   m.campaign_label(campaign)).inc(n)

    async def tick(self, now_ms: int) -> None:
        await self.judge.tick(now_ms)

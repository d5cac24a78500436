"""The anomaly judge: minute by minute of event time, once every partition is past it.

It walks at most ``MAX_MINUTES_PER_STEP`` minutes per step and jumps over quiet stretches (no
volume in a whole window: nothing to judge) to the next minute with data, so a gap of days in
event time costs one step, not one per minute.

A minute is judged once every partition has a watermark beyond the
minute's end plus the allowed lateness: no accepted event can change it any more, so the
values judged are final and a replay of the same log judges the same values and raises the
same anomalies (``rules``). One worker judges at a time (a lease); each step commits
its verdicts and the alerts it raised in one Lua call, then the alerts go to the ops-alerts
topic, leaving the outbox only once Kafka acknowledged them (a repeat keeps its alert_id).

Series: ``orders``, ``paid_gmv``, ``payment_success_ratio`` (from the pulse) and
``funnel:<name>:<step>`` (step over previous step, flow view) for every funnel and step >= 2.
"""

from __future__ import annotations

import logging

from shopstream.agents.anomalies.rules import AnomalyConfig, Point, episodes, quiet_through
from shopstream.agents.base import NoHooks, PartitionBatch, Takes
from shopstream.agents.funnel.query import read_buckets
from shopstream.agents.funnel.rules import FunnelDef, parse_funnels
from shopstream.agents.judging import JudgeTicks
from shopstream.agents.lateness import allowed_lateness, final_before
from shopstream.agents.ops.query import minute_totals
from shopstream.core.settings import Settings
from shopstream.core.timeunits import MINUTE_MS
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.alert_outbox import AlertOutbox
from shopstream.sinks.anomalies import keys as ak
from shopstream.sinks.anomalies.store import AnomalyStore
from shopstream.sinks.funnel import keys as funnel_keys
from shopstream.sinks.ops import keys as ok
from shopstream.sinks.redis_state import Redis

log = logging.getLogger(__name__)

RATIOS = frozenset({"payment_success_ratio"})
#: The most minutes the judge judges in one step (catching up).
MAX_MINUTES_PER_STEP = 240


class AnomalyJudge(NoHooks):
    name = "anomalies"
    #: No event: it judges the minute rows funnel and ops wrote, on its own clock.
    takes = Takes(frozenset())

    def __init__(self, settings: Settings, cfg: AnomalyConfig, redis: Redis,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.app_id = settings.app_id
        self.cfg = cfg
        self.redis = redis
        self.metrics = metrics
        self.lateness_ms = allowed_lateness(settings.sections)
        self.funnels: list[FunnelDef] = parse_funnels(settings.sections)[0]
        self.store = AnomalyStore(redis, settings.app_id)
        self.outbox = AlertOutbox(redis, settings, ak.unsent_key(settings.app_id))
        self.ticks = JudgeTicks("anomaly judge", redis, ak.lease_key(settings.app_id),
                                self.step, self.send_unsent)
        if metrics is not None:
            # Every judged metric's counter exists from the start at 0, so the first episode
            # is an increase Prometheus can see.
            names = [*("orders", "paid_gmv", "payment_success_ratio"),
                     *(f"funnel:{fd.name}:{k}" for fd in self.funnels
                       for k in range(2, len(fd.steps) + 1))]
            for name in names:
                metrics.anomalies.labels(name)

    def apply(self, batch: PartitionBatch, loaded: None) -> None:
        return None

    async def tick(self, now_ms: int) -> None:
        await self.ticks.tick(now_ms)

    async def closed_through(self) -> int | None:
        """Event time before which every partition's minutes are final, or None."""
        return await final_before(self.redis, self.settings, self.lateness_ms)

    async def _first_minute(self) -> int | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.settings.partitions):
                pipe.zrange(ok.index_key(self.app_id, p), 0, 0, withscores=True)
            rows = await pipe.execute()
        firsts = [int(row[0][1]) for row in rows if row]
        return min(firsts) if firsts else None

    async def step(self) -> int:
        """Judge the minutes that became final since the last step; returns how many minutes
        it moved on (judged or jumped over)."""
        state = await self.store.state()
        closed = await self.closed_through()
        first = state.get("first")
        if first is None:
            first = await self._first_minute()
        if closed is None or first is None:
            return 0
        judged = state.get("judged", first - MINUTE_MS)
        final = (closed - MINUTE_MS) // MINUTE_MS * MINUTE_MS
        last = min(final, judged + MAX_MINUTES_PER_STEP * MINUTE_MS)
        minutes = list(range(judged + MINUTE_MS, last + MINUTE_MS, MINUTE_MS))
        if not minutes:
            return 0
        series = await self.series(max(first, minutes[0] - self.cfg.window * MINUTE_MS),
                                   minutes[-1] + MINUTE_MS)
        open_ = {k[5:]: v for k, v in state.items() if k.startswith("open|")}
        ratios = RATIOS | {k for k in series if k.startswith("funnel:")}
        docs = episodes(series, minutes, self.cfg.window, open_, self.cfg, ratios)
        through = minutes[-1]
        if quiet_through(series, through, self.cfg.window):
            # Minutes before the next one with data judge nothing: skip them.
            upcoming = await self._next_minute(through + MINUTE_MS)
            through = final if upcoming is None else max(through, min(final, upcoming - MINUTE_MS))
        if not await self.store.commit(state.get("judged"), through, first, open_, docs):
            return 0
        for d in docs:
            log.warning("anomaly", extra={k: d[k] for k in ("metric", "minute", "severity")})
            if self.metrics is not None:
                self.metrics.anomalies.labels(d["metric"]).inc()
        return (through - judged) // MINUTE_MS

    async def _next_minute(self, from_ms: int) -> int | None:
        """The first minute at or after ``from_ms`` with a pulse row or a funnel bucket."""
        a = self.app_id
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.settings.partitions):
                pipe.zrangebyscore(ok.index_key(a, p), from_ms, "+inf", start=0, num=1)
                for fd in self.funnels:
                    index = funnel_keys.index_key(a, p, fd.key_id, "flow", "m")
                    pipe.zrangebyscore(index, from_ms, "+inf", start=0, num=1)
            rows = await pipe.execute()
        found = [int(row[0]) for row in rows if row]
        return min(found) if found else None

    async def series(self, from_ms: int, to_ms: int) -> dict[str, dict[int, Point]]:
        """Every judged metric's points for minutes in [from_ms, to_ms), zeros included."""
        totals = await minute_totals(self.redis, self.app_id, self.settings.partitions,
                                     from_ms, to_ms)
        out: dict[str, dict[int, Point]] = {"orders": {}, "paid_gmv": {},
                                            "payment_success_ratio": {}}
        span = range(from_ms, to_ms, MINUTE_MS)
        for m in span:
            row = totals.get(m)
            orders = row["orders"] if row else 0
            paid = row["payments_success"] if row else 0
            tried = paid + (row["payments_failed"] if row else 0)
            out["orders"][m] = Point(orders, orders)
            out["paid_gmv"][m] = Point(row["paid_gmv"] if row else 0, paid)
            out["payment_success_ratio"][m] = Point(paid / tried if tried else 0.0, tried)
        for fd in self.funnels:
            buckets = await read_buckets(self.redis, self.app_id, self.settings.partitions, fd,
                                         "flow", "m", fd.breakdowns[0], from_ms, to_ms)
            n = len(fd.steps)
            reached = {m: [sum(v[i] for v in buckets.get(m, {}).values()) for i in range(n)]
                       for m in span}
            for step in range(2, n + 1):
                points = out.setdefault(f"funnel:{fd.name}:{step}", {})
                for m, counts in reached.items():
                    prev = counts[step - 2]
                    points[m] = Point(counts[step - 1] / prev if prev else 0.0, prev)
        return out

    async def send_unsent(self) -> int:
        """Alerts committed but not yet acknowledged by Kafka, sent (again) by alert_id."""
        return await self.outbox.send()

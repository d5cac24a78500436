"""The ROAS judge: minute by minute of event time, over a trailing hour, once every partition is
past the minute.

A minute is judged once every partition has a watermark beyond the
minute's end plus the allowed lateness: no accepted event can change its rows any more, so a
replay of the same log judges the same numbers and raises the same alerts with the same ids
(``rules.Trailing``: one alert per campaign and episode below the floor). The state it judges
on (each judged minute's per-campaign sums in the trailing hour, the campaigns below) lives
in its store, so a minute costs reading that minute's rows, never the hour's. Minutes where no
trailing sum changes are jumped over. One worker judges at a time (a lease); each step commits
the minutes judged, the state and their alerts in one Lua call, then the alerts go to the
ops-alerts topic (relayed to the ops webhook like the others), leaving the outbox only once
Kafka acknowledged them.
"""

from __future__ import annotations

import logging
from typing import Final

from shopstream.agents.ads.query import campaign_minutes
from shopstream.agents.ads.rules import AdsConfig, Trailing, roas_alerts
from shopstream.agents.judging import JudgeTicks
from shopstream.agents.lateness import final_before
from shopstream.core.settings import Settings
from shopstream.core.timeunits import MINUTE_MS
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.ads import keys as ak
from shopstream.sinks.ads.store import AlertStore
from shopstream.sinks.alert_outbox import AlertOutbox
from shopstream.sinks.redis_state import Redis

log = logging.getLogger(__name__)

#: The most minutes with data the judge judges in one step.
MAX_MINUTES_PER_STEP: Final = 24 * 60


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
        self.ticks = JudgeTicks("ROAS judge", redis, ak.lease_key(settings.app_id),
                                self.step_all, self.send_unsent)

    async def tick(self, now_ms: int) -> None:
        await self.ticks.tick(now_ms)

    async def final_minute(self) -> int | None:
        """Start of the last minute no accepted event can change any more, or None."""
        closed = await final_before(self.redis, self.settings, self.lateness_ms)
        return None if closed is None else (closed - MINUTE_MS) // MINUTE_MS * MINUTE_MS

    async def _data_through(self, after: int | None, final: int) -> int | None:
        """The last minute this step judges: ``final``, or the MAX_MINUTES_PER_STEP-th minute
        with an ads row (any partition) after ``after``; None when none is before ``final``
        and nothing was judged yet."""
        low = 0 if after is None else after + 1
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.settings.partitions):
                pipe.zrangebyscore(ak.index_key(self.app_id, p), low, final, start=0,
                                   num=MAX_MINUTES_PER_STEP)
            rows = await pipe.execute()
        found = sorted({int(m) for row in rows for m in row})
        if not found and after is None:
            return None
        return found[MAX_MINUTES_PER_STEP - 1] if len(found) >= MAX_MINUTES_PER_STEP else final

    async def step_all(self) -> None:
        """Steps until nothing final is left to judge."""
        while await self.step():
            pass

    async def step(self) -> bool:
        """Judge the next minutes that are final (up to MAX_MINUTES_PER_STEP with data); True
        when it moved on and there may be more."""
        judged = await self.store.judged()
        final = await self.final_minute()
        if final is None or (judged is not None and final <= judged):
            return False
        through = await self._data_through(judged, final)
        if through is None:
            return False
        loaded, window, below = await self.store.load()
        if loaded != judged:
            return False
        start = 0 if judged is None else judged + MINUTE_MS
        minutes = await campaign_minutes(self.redis, self.app_id, self.settings.partitions,
                                         start, through + MINUTE_MS)
        state = Trailing.of(window, below)
        docs = roas_alerts(state, minutes, judged, through, self.cfg)
        if not await self.store.commit(judged, through, set(window), state.window,
                                       state.below, docs):
            return False
        for d in docs:
            log.warning("ROAS below floor",
                        extra={k: d[k] for k in ("campaign", "minute", "roas")})
            if self.metrics is not None:
                self.metrics.ad_alerts.labels(self.metrics.campaign_label(d["campaign"])).inc()
        return True

    async def send_unsent(self) -> int:
        """Alerts committed but not yet acknowledged by Kafka, sent (again) by alert_id."""
        return await self.outbox.send()

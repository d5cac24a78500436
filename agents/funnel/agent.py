"""Live conversion funnels: the agent that advances per-unit progress and counts steps.

Per batch: one MGET per partition of the progress of the batch's users (``load``), then
events in partition order through ``rules.advance`` (``apply``, pure), then HINCRBY per
(funnel, view, bucket, field) and one SET + PEXPIRE per changed user (see ``sinks/funnel/keys``).
It takes the funnels' step types, on time only: the batch loop counts the late ones
(``streams.feeds``).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo

from redis.exceptions import RedisError

from shopstream.agents.base import NoHooks, PartitionBatch, Takes
from shopstream.agents.funnel.query import recent_conversion
from shopstream.agents.funnel.rules import (
    FunnelDef,
    Progress,
    advance,
    entry_values,
    pack_units,
    parse_funnels,
    unpack_units,
)
from shopstream.core.timeunits import HOUR_MS, MINUTE_MS
from shopstream.monitoring.metrics import KNOWN_CHANNELS, Metrics, bounded
from shopstream.schemas.events import UserEvent
from shopstream.sinks.buckets import MINUTE_RETENTION_MS, bucket_start
from shopstream.sinks.funnel.keys import RESOLUTIONS, bucket_key, index_key, late_key, user_key
from shopstream.sinks.redis_state import Redis, get_many

log = logging.getLogger(__name__)

#: (funnel index, step, channel) -> entries, for the step counters.
StepCounts = Counter[tuple[int, int, str]]


class Stored(NamedTuple):
    """What ``load`` read for a partition: user -> stored progress (users with any)."""

    progress: dict[str, bytes]


class Funnels(NoHooks):
    """All configured funnels over one partition batch at a time."""

    name = "funnel"

    def __init__(self, app_id: str, partitions: int, sections: Any, zone: ZoneInfo,
                 metrics: Metrics | None = None, redis: Redis | None = None) -> None:
        self.app_id = app_id
        self.partitions = partitions
        self.funnels, self.lateness_ms = parse_funnels(sections)
        self.zone = zone
        self.redis = redis
        self.metrics = metrics
        #: event type -> funnels that have a step of that type.
        self.by_type: dict[str, list[tuple[int, FunnelDef]]] = {}
        for i, fd in enumerate(self.funnels):
            for t in sorted({s.type for s in fd.steps}):
                self.by_type.setdefault(t, []).append((i, fd))
        self.takes = Takes(frozenset(self.by_type), on_time=True, late_key=late_key)
        self.ttl_ms = max(fd.window_ms for fd in self.funnels) + self.lateness_ms
        self.windows = {fd.key_id: fd.window_ms for fd in self.funnels}
        self._last_gauge = 0

    async def load(self, batches: list[PartitionBatch]) -> list[Stored]:
        """One read per partition of the batch's users' progress (the partitions concurrently)."""
        loaded = [Stored({}) for _ in batches]
        wanted = [(i, b, list(dict.fromkeys(
                      e.user_id for e in cast(list[UserEvent], b.feeds[self.name].events))))
                  for i, b in enumerate(batches)]
        wanted = [(i, b, uids) for i, b, uids in wanted if uids]
        if not wanted or self.redis is None:
            return loaded
        prefixes = [user_key(self.app_id, b.partition, "") for _, b, _ in wanted]
        rows = await get_many(self.redis,
                              list(zip(prefixes, (u for *_, u in wanted), strict=True)))
        for (i, _, uids), blobs in zip(wanted, rows, strict=True):
            loaded[i] = Stored({u: blob for u, blob in zip(uids, blobs, strict=True) if blob})
        return loaded

    def apply(self, batch: PartitionBatch, loaded: Stored) -> StepCounts:
        stored = loaded.progress
        users: dict[str, dict[str, Progress]] = {}
        changed: set[str] = set()
        # (funnel index, view, minute, breakdown values, step) -> entries
        reached: Counter[tuple[int, str, int, tuple[str, ...], int]] = Counter()
        for ev in cast(list[UserEvent], batch.feeds[self.name].events):
            ts = ev.ts
            relevant = self.by_type[ev.type]
            uid = ev.user_id
            units = users.get(uid)
            if units is None:
                units = users[uid] = unpack_units(stored.get(uid))
            for fi, fd in relevant:
                unit = fd.unit_field(ev)
                if unit is None:
                    continue
                st = units.get(unit)
                new, step = advance(fd, st, ev)
                if not step:
                    continue
                changed.add(uid)
                if new is None:
                    units.pop(unit, None)
                else:
                    units[unit] = new
                if step == 1 or st is None:
                    entry_ts, values = ts, entry_values(fd, ev)
                else:
                    entry_ts, values = st.entry_ts, st.values
                reached[(fi, "cohort", entry_ts - entry_ts % MINUTE_MS, values, step)] += 1
                reached[(fi, "flow", ts - ts % MINUTE_MS, values, step)] += 1
        self._write_units(batch, {u: users[u] for u in changed}, batch.watermark)
        return self._write(batch, reached)

    def _write_units(self, batch: PartitionBatch, users: dict[str, dict[str, Progress]],
                     wm: int) -> None:
        """One SET + PEXPIRE per changed user, dropping entries no accepted event can reach.

        An entry whose window ended before ``wm - lateness`` is closed for every event still
        to come (later events are at least that recent or counted late), so dropping it keeps
        the semantics and bounds the per-session entries a user accumulates.
        """
        horizon = wm - self.lateness_ms
        for uid in sorted(users):
            key = user_key(self.app_id, batch.partition, uid)
            units = {u: st for u, st in users[uid].items()
                     if st.entry_ts + self.windows[u.split("|", 1)[0]] > horizon}
            if units:
                batch.ops.set(key, pack_units(units))
                batch.ops.pexpire(key, self.ttl_ms)
            else:
                batch.ops.delete(key)

    def _write(self, batch: PartitionBatch,
               reached: Counter[tuple[int, str, int, tuple[str, ...], int]]) -> StepCounts:
        ops, p = batch.ops, batch.partition
        fields: Counter[tuple[str, str]] = Counter()
        bucket_keys: dict[tuple[int, str, str, int], str] = {}
        metric: StepCounts = Counter()
        for (fi, view, minute, values, step), n in reached.items():
            fd = self.funnels[fi]
            for res in RESOLUTIONS:
                start = bucket_start(minute, res, self.zone)
                key = bucket_keys.get((fi, view, res, start))
                if key is None:
                    key = bucket_key(self.app_id, p, fd.key_id, view, res, start)
                    bucket_keys[(fi, view, res, start)] = key
                for prop, value in zip(fd.breakdowns, values, strict=True):
                    fields[(key, f"{prop}|{value}|{step}")] += n
            if view == "flow":
                channel = values[fd.breakdowns.index("channel")] if "channel" in fd.breakdowns \
                    else "other"
                metric[(fi, step, bounded(channel, KNOWN_CHANNELS))] += n
        for (key, fld), n in fields.items():
            ops.hincrby(key, fld, n)
        for (fi, view, res, start), key in sorted(bucket_keys.items()):
            index = index_key(self.app_id, p, self.funnels[fi].key_id, view, res)
            ops.zadd(index, start, str(start))
            if res == "m":
                ops.pexpire(key, MINUTE_RETENTION_MS)
        return metric

    async def after_apply(self, batches: list[PartitionBatch],
                          outputs: list[StepCounts]) -> None:
        """Prometheus counters, once the batch's writes landed (a refused batch counts nothing)."""
        m = self.metrics
        if m is None:
            return
        for metric in outputs:
            for (fi, step, channel), n in metric.items():
                m.funnel_steps.labels(self.funnels[fi].name, str(step), channel).inc(n)

    async def tick(self, now_ms: int) -> None:
        """Refresh the conversion gauges every 15 s from the flow view of all partitions."""
        if self.metrics is None or self.redis is None or now_ms - self._last_gauge < 15_000:
            return
        self._last_gauge = now_ms
        try:
            for fd in self.funnels:
                for window, ms in (("5m", 5 * MINUTE_MS), ("1h", HOUR_MS)):
                    ratios = await recent_conversion(self.redis, self.app_id, self.partitions,
                                                     fd, now_ms - ms, now_ms)
                    for step, ratio in enumerate(ratios, 2):
                        self.metrics.funnel_conversion.labels(fd.name, str(step), window).set(
                            ratio)
        except RedisError as exc:
            # Gauges only: the next tick retries; the batch loop reports Redis trouble itself.
            log.warning("funnel gauges not refreshed: %s", exc)

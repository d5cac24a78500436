"""Live conversion funnels: the agent that advances per-unit progress and counts steps.

Per batch: one pipelined HGETALL of the progress hashes of the batch's users (``load``), then
events in partition order through ``funnel_rules.advance`` (``apply``, pure), then a handful of
HINCRBY per (funnel, view, bucket) and one HSET/HDEL per changed unit (see ``funnel_keys``).
Late events (older than the allowed lateness behind the partition watermark, checked event by
event so the result does not depend on batch boundaries) are counted and ignored.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

from agents.base import NoHooks, PartitionBatch
from agents.funnel_keys import (
    HOUR_MS,
    MINUTE_MS,
    MINUTE_RETENTION_MS,
    RESOLUTIONS,
    bucket_key,
    bucket_start,
    index_key,
    late_key,
    user_key,
)
from agents.funnel_query import recent_conversion
from agents.funnel_rules import FunnelDef, Progress, advance, entry_values, parse_funnels
from monitoring.metrics import KNOWN_CHANNELS, Metrics, bounded
from sinks.redis_state import Redis

log = logging.getLogger(__name__)

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
        self.ttl_ms = max(fd.window_ms for fd in self.funnels) + self.lateness_ms
        self._last_gauge = 0

    async def load(self, batches: list[PartitionBatch]) -> None:
        """One pipelined HGETALL per user of the batch who has an event of a funnel's type."""
        wanted = [
            (b, uid) for b in batches
            for uid in dict.fromkeys(e["user_id"] for e in b.events if e["type"] in self.by_type)
        ]
        for b in batches:
            b.loaded[self.name] = {}
        if not wanted or self.redis is None:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for b, uid in wanted:
                pipe.hgetall(user_key(self.app_id, b.partition, uid))
            rows = await pipe.execute()
        for (b, uid), row in zip(wanted, rows, strict=True):
            if row:
                b.loaded[self.name][uid] = {k.decode(): v for k, v in row.items()}

    def apply(self, batch: PartitionBatch) -> None:
        stored: dict[str, dict[str, Any]] = batch.loaded.get(self.name, {})
        states: dict[tuple[str, str], Progress | None] = {}
        # (funnel index, view, minute, breakdown values, step) -> entries
        reached: Counter[tuple[int, str, int, tuple[str, ...], int]] = Counter()
        wm = batch.watermark_before
        late = 0
        for ev in batch.events:
            ts = ev["ts"]
            if ts < wm - self.lateness_ms:
                late += 1
                continue
            if ts > wm:
                wm = ts
            relevant = self.by_type.get(ev["type"])
            if relevant is None:
                continue
            uid = ev["user_id"]
            for fi, fd in relevant:
                unit = fd.unit_field(ev)
                if unit is None:
                    continue
                sk = (uid, unit)
                if sk in states:
                    st = states[sk]
                else:
                    raw = stored.get(uid, {}).get(unit)
                    st = Progress.decode(raw) if raw is not None else None
                new, step = advance(fd, st, ev)
                if not step:
                    continue
                states[sk] = new
                if step == 1 or st is None:
                    entry_ts, values = ts, entry_values(fd, ev)
                else:
                    entry_ts, values = st.entry_ts, st.values
                reached[(fi, "cohort", entry_ts - entry_ts % MINUTE_MS, values, step)] += 1
                reached[(fi, "flow", ts - ts % MINUTE_MS, values, step)] += 1
        self._write(batch, states, reached, late)

    def _write(self, batch: PartitionBatch, states: dict[tuple[str, str], Progress | None],
               reached: Counter[tuple[int, str, int, tuple[str, ...], int]], late: int) -> None:
        ops, p = batch.ops, batch.partition
        users: set[str] = set()
        for (uid, unit), st in states.items():
            ukey = user_key(self.app_id, p, uid)
            if st is None:
                ops.hdel(ukey, unit)
            else:
                ops.hset(ukey, unit, st.encode())
            users.add(uid)
        for uid in sorted(users):
            ops.pexpire(user_key(self.app_id, p, uid), self.ttl_ms)
        fields: Counter[tuple[str, str]] = Counter()
        buckets: set[tuple[int, str, str, int]] = set()
        metric: Counter[tuple[int, int, str]] = Counter()
        for (fi, view, minute, values, step), n in reached.items():
            fd = self.funnels[fi]
            for res in RESOLUTIONS:
                start = bucket_start(minute, res, self.zone)
                key = bucket_key(self.app_id, p, fd, view, res, start)
                buckets.add((fi, view, res, start))
                for prop, value in zip(fd.breakdowns, values, strict=True):
                    fields[(key, f"{prop}|{value}|{step}")] += n
            if view == "flow":
                channel = values[fd.breakdowns.index("channel")] if "channel" in fd.breakdowns \
                    else "other"
                metric[(fi, step, bounded(channel, KNOWN_CHANNELS))] += n
        for (key, fld), n in fields.items():
            ops.hincrby(key, fld, n)
        for fi, view, res, start in sorted(buckets):
            fd = self.funnels[fi]
            ops.zadd(index_key(self.app_id, p, fd, view, res), start, str(start))
            if res == "m":
                ops.pexpire(bucket_key(self.app_id, p, fd, view, res, start), MINUTE_RETENTION_MS)
        if late:
            ops.incrby(late_key(self.app_id, p), late)
        batch.loaded[self.name] = {"metric": metric, "late": late}

    async def after_apply(self, batches: list[PartitionBatch]) -> None:
        """Prometheus counters, once the batch's writes landed (a refused batch counts nothing)."""
        m = self.metrics
        if m is None:
            return
        for b in batches:
            out = b.loaded.get(self.name) or {}
            for (fi, step, channel), n in out.get("metric", {}).items():
                m.funnel_steps.labels(self.funnels[fi].name, str(step), channel).inc(n)
            if out.get("late"):
                m.events_late.labels(self.name).inc(out["late"])

    async def tick(self, now_ms: int) -> None:
        """Refresh the conversion gauges every 15 s from the flow view of all partitions."""
        if self.metrics is None or self.redis is None or now_ms - self._last_gauge < 15_000:
            return
        self._last_gauge = now_ms
        for fd in self.funnels:
            for window, ms in (("5m", 5 * MINUTE_MS), ("1h", HOUR_MS)):
                ratios = await recent_conversion(self.redis, self.app_id, self.partitions, fd,
                                                 now_ms - ms, now_ms)
                for step, ratio in enumerate(ratios, 2):
                    self.metrics.funnel_conversion.labels(fd.name, str(step), window).set(ratio)

"""Stock health: each partition writes its minutes of SKU activity in the fenced batch write;
a judge folds them into every SKU's state in event time, once every partition is past them.

Why a judge: a SKU's stock update lands on the SKU's partition while its paid units arrive on
every buyer's partition, at their own pace. A minute is judged once every partition has a
watermark beyond the minute's end plus the allowed lateness (one that applied nothing yet holds
it back): no accepted event can change it any more (late ones are left out and counted), so
what is judged is final whatever the partitions' relative progress, and a replay judges the
same values and raises the same alerts. One worker judges at a time (a lease); a step commits
the SKUs' states and its alerts in one Lua call, compared on the last minute judged; alerts go
to the ops-alerts topic and leave the outbox only once Kafka acknowledged them (a repeat keeps
its alert_id).

Per partition (``apply``): a successful payment turns its order's lines (kept from the order's
``order_submit``, on the same user's partition, until paid) into units paid at the payment's
time; a stock update and a return are written as they come. Definitions: docs/stock.md.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, NamedTuple

import orjson

from shopstream.agents.base import NoHooks, PartitionBatch, Takes
from shopstream.agents.judging import JudgeTicks
from shopstream.agents.lateness import allowed_lateness, final_before
from shopstream.agents.stock.rules import STATES, Activity, StockConfig, judge_minute, read_row
from shopstream.core.settings import Settings
from shopstream.core.timeunits import HOUR_MS, MINUTE_MS
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.alert_outbox import AlertOutbox
from shopstream.sinks.buckets import MINUTE_RETENTION_MS, bucket_start
from shopstream.sinks.redis_state import Redis, get_many
from shopstream.sinks.stock import keys as sk
from shopstream.sinks.stock.store import StockStore

log = logging.getLogger(__name__)

STOCK_TYPES = frozenset({"stock_update", "order_submit", "payment", "order_return"})
#: The most minutes with data the judge judges in one step.
MAX_MINUTES_PER_STEP = 240


class Orders(NamedTuple):
    """What ``load`` read for a partition: lines of the orders its batch's payments pay."""

    lines: dict[str, list[list[Any]]]


class StockHealth(NoHooks):
    name = "stock"
    takes = Takes(STOCK_TYPES, on_time=True, late_key=sk.late_key)

    def __init__(self, settings: Settings, cfg: StockConfig, redis: Redis,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.app_id = settings.app_id
        self.cfg = cfg
        self.redis = redis
        self.metrics = metrics
        self.lateness_ms = allowed_lateness(settings.sections)
        self.store = StockStore(redis, settings.app_id, settings.partitions)
        self.outbox = AlertOutbox(redis, settings, sk.unsent_key(settings.app_id))
        self.ticks = JudgeTicks("stock judge", redis, sk.lease_key(settings.app_id),
                                self.step, self.send_unsent)

    async def load(self, batches: list[PartitionBatch]) -> list[Orders]:
        """The stored lines of orders paid in each batch (one call per partition)."""
        wanted = [list(dict.fromkeys(
            e.order_id for e in b.feeds[self.name].events
            if e.type == "payment" and e.status == "success")) for b in batches]
        rows = await get_many(self.redis, [(sk.order_prefix(self.app_id, b.partition), ids)
                                           for b, ids in zip(batches, wanted, strict=True)])
        return [Orders({oid: orjson.loads(raw) for oid, raw in zip(ids, got, strict=True)
                        if raw is not None})
                for ids, got in zip(wanted, rows, strict=True)]

    def apply(self, batch: PartitionBatch, loaded: Orders) -> None:
        stored = loaded.lines
        fresh: dict[str, list[list[Any]]] = {}
        paid_stored: list[str] = []
        rows: Counter[tuple[int, str]] = Counter()
        updates: dict[tuple[int, str], int] = {}
        unmatched = 0
        for ev in batch.feeds[self.name].events:
            m = ev.ts - ev.ts % MINUTE_MS
            if ev.type == "order_submit":
                units: Counter[str] = Counter()
                for item in ev.items:
                    units[item.sku] += item.qty
                fresh[ev.order_id] = [[s, q] for s, q in sorted(units.items())]
                stored.pop(ev.order_id, None)
            elif ev.type == "payment":
                if ev.status != "success":
                    continue
                lines = fresh.pop(ev.order_id, None)
                if lines is None and (lines := stored.pop(ev.order_id, None)) is not None:
                    paid_stored.append(ev.order_id)
                if lines is None:
                    unmatched += 1
                    continue
                for sku, qty in lines:
                    rows[(m, f"p|{ev.ts}|{sku}")] += qty
            elif ev.type == "stock_update":
                updates[(m, f"u|{ev.ts}|{ev.sku}")] = ev.qty
            elif ev.type == "order_return":
                rows[(m, f"r|{ev.sku}")] += ev.qty
        a, p, ops = self.app_id, batch.partition, batch.ops
        prefix = sk.order_prefix(a, p)
        for oid in paid_stored:
            ops.delete(prefix + oid)
        ttl = self.cfg.order_ttl_hours * HOUR_MS
        for oid, lines in fresh.items():
            ops.set(prefix + oid, orjson.dumps(lines).decode())
            ops.pexpire(prefix + oid, ttl)
        minutes: set[int] = set()
        for (m, fld), n in rows.items():
            ops.hincrby(sk.minute_key(a, p, m), fld, n)
            minutes.add(m)
        for (m, fld), n in updates.items():
            ops.hset(sk.minute_key(a, p, m), fld, n)
            minutes.add(m)
        for m in sorted(minutes):
            ops.zadd(sk.index_key(a, p), m, str(m))
            ops.pexpire(sk.minute_key(a, p, m), MINUTE_RETENTION_MS)
        if unmatched:
            ops.incrby(sk.unmatched_key(a, p), unmatched)

    async def tick(self, now_ms: int) -> None:
        await self.ticks.tick(now_ms)

    async def closed_through(self) -> int | None:
        """Event time before which every partition's minutes are final, or None."""
        return await final_before(self.redis, self.settings, self.lateness_ms)

    async def step(self) -> int:
        """Judge the minutes with data that became final since the last step; returns how
        many it judged."""
        state = await self.store.state()
        closed = await self.closed_through()
        if closed is None:
            return 0
        judged_before = state.get("judged")
        final = (closed - MINUTE_MS) // MINUTE_MS * MINUTE_MS
        minutes = await self.store.next_minutes(judged_before, final, MAX_MINUTES_PER_STEP)
        if not minutes:
            return 0
        rows = await self.store.rows(minutes)
        docs = await self.store.docs()
        changed: set[str] = set()
        alerts: list[dict[str, Any]] = []
        zone = self.settings.zone
        day = state.get("day")
        for m in minutes:
            activity: dict[str, Activity] = {}
            for raw in rows[m]:
                read_row(raw, activity)
            today = bucket_start(m, "d", zone)
            judged, raised = judge_minute(docs, activity, m, today != day, self.cfg, zone)
            day = today
            changed |= judged
            alerts += raised
        if not await self.store.commit(judged_before, minutes[-1],
                                       bucket_start(minutes[-1], "d", zone),
                                       {s: docs[s] for s in changed}, alerts):
            return 0
        await self.store.clear(minutes)
        for a in alerts:
            log.warning("stock alert", extra={k: a[k] for k in ("type", "sku", "minute")})
        if self.metrics is not None:
            for a in alerts:
                self.metrics.stock_alerts.labels(a["type"]).inc()
            by_state = Counter(d.get("state", "unknown") for d in docs.values())
            for st in STATES:
                self.metrics.stock_skus.labels(st).set(by_state[st])
            self.metrics.stock_judged_through.set(minutes[-1] + MINUTE_MS)
        return len(minutes)

    async def send_unsent(self) -> int:
        """Alerts committed but not yet acknowledged by Kafka, sent (again) by alert_id."""
        return await self.outbox.send()

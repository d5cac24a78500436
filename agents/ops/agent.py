"""The shop's pulse: per minute of event time, orders, payments, paid GMV, cancellations,
new vs returning buyers and units/GMV per SKU, overall and by channel, exactly once.

Definitions (docs/live-and-ops.md; tests/agents/ops_ref.py restates them): events in partition
order, late ones ignored (``agents.lateness``); a row per (minute, channel of the event, or
``other``). A successful payment is by a new buyer when it is the first successful payment
the engine has seen for the user, else by a returning one. SKU units and GMV come from the
lines of submitted orders (qty, qty x price). Keys in ``sinks/ops/keys``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from shopstream.agents.base import NoHooks, PartitionBatch
from shopstream.agents.lateness import allowed_lateness
from shopstream.core.settings import Settings
from shopstream.core.timeunits import MINUTE_MS
from shopstream.monitoring.metrics import KNOWN_CHANNELS, Metrics, bounded
from shopstream.sinks.buckets import MINUTE_RETENTION_MS
from shopstream.sinks.ops import keys as ok
from shopstream.sinks.redis_state import Redis

PULSE_TYPES = frozenset({"order_submit", "payment", "order_cancel"})
#: Field prefixes of the minute rows and what the query calls them.
MEASURES = {"o": "orders", "x": "cancellations", "ps": "payments_success",
            "pf": "payments_failed", "g": "paid_gmv", "nb": "new_buyers",
            "rb": "returning_buyers"}


class Pulse(NoHooks):
    name = "ops"

    def __init__(self, settings: Settings, redis: Redis, metrics: Metrics | None = None) -> None:
        self.app_id = settings.app_id
        self.lateness_ms = allowed_lateness(settings.sections)
        self.redis = redis
        self.metrics = metrics

    async def load(self, batches: list[PartitionBatch]) -> None:
        """Which paying users already paid before (one SMISMEMBER per partition)."""
        async def one(b: PartitionBatch) -> None:
            users = list(dict.fromkeys(
                e.user_id for e in b.events
                if e.type == "payment" and e.status == "success"))
            paid: set[str] = set()
            if users:
                flags = await self.redis.smismember(ok.buyers_key(self.app_id, b.partition),
                                                    users)
                paid = {u for u, f in zip(users, flags, strict=True) if f}
            b.loaded[self.name] = paid

        await asyncio.gather(*(one(b) for b in batches))

    def apply(self, batch: PartitionBatch) -> None:
        paid: set[str] = batch.loaded.get(self.name, set())
        rows: Counter[tuple[int, str]] = Counter()
        metric: Counter[tuple[str, str]] = Counter()
        new_buyers: list[str] = []
        wm, late = batch.watermark_before, 0
        for ev in batch.events:
            ts = ev.ts
            if ts < wm - self.lateness_ms:
                late += ev.type in PULSE_TYPES
                continue
            if ts > wm:
                wm = ts
            if ev.type not in PULSE_TYPES:
                continue
            m = ts - ts % MINUTE_MS
            ch = ev.channel or "other"
            if ev.type == "order_submit":
                rows[(m, f"o|{ch}")] += 1
                metric[("o", ch)] += 1
                for item in ev.items:
                    rows[(m, f"su|{item.sku}")] += item.qty
                    rows[(m, f"sg|{item.sku}")] += item.qty * item.price
            elif ev.type == "order_cancel":
                rows[(m, f"x|{ch}")] += 1
                metric[("x", ch)] += 1
            elif ev.type == "payment" and ev.status == "success":
                rows[(m, f"ps|{ch}")] += 1
                rows[(m, f"g|{ch}")] += ev.amount
                metric[("ps", ch)] += 1
                metric[("g", ch)] += ev.amount
                uid = ev.user_id
                if uid in paid:
                    rows[(m, f"rb|{ch}")] += 1
                else:
                    rows[(m, f"nb|{ch}")] += 1
                    paid.add(uid)
                    new_buyers.append(uid)
            else:
                rows[(m, f"pf|{ch}")] += 1
                metric[("pf", ch)] += 1
        a, p, ops = self.app_id, batch.partition, batch.ops
        minutes: set[int] = set()
        for (m, fld), n in rows.items():
            ops.hincrby(ok.minute_key(a, p, m), fld, n)
            minutes.add(m)
        for m in sorted(minutes):
            ops.zadd(ok.index_key(a, p), m, str(m))
            ops.pexpire(ok.minute_key(a, p, m), MINUTE_RETENTION_MS)
        for uid in new_buyers:
            ops.sadd(ok.buyers_key(a, p), uid)
        if late:
            ops.incrby(ok.late_key(a, p), late)
        batch.loaded[self.name] = (metric, late)

    async def after_apply(self, batches: list[PartitionBatch]) -> None:
        """Prometheus counters, once the batch's writes landed."""
        m = self.metrics
        if m is None:
            return
        for b in batches:
            counts, late = b.loaded.get(self.name) or (Counter(), 0)
            for (measure, channel), n in counts.items():
                ch = bounded(channel, KNOWN_CHANNELS)
                if measure == "o":
                    m.orders.labels(ch).inc(n)
                elif measure == "x":
                    m.cancellations.labels(ch).inc(n)
                elif measure == "g":
                    m.paid_gmv.labels(ch).inc(n)
                else:
                    m.payments.labels("success" if measure == "ps" else "failed", ch).inc(n)
            if late:
                m.events_late.labels(self.name).inc(late)


def pulse_rows(raw: dict[bytes, bytes]) -> tuple[dict[str, dict[str, int]], dict[str, list[int]]]:
    """A minute row as {channel: {measure: n}} and {sku: [units, gmv]}."""
    channels: dict[str, dict[str, int]] = {}
    skus: dict[str, list[int]] = {}
    for raw_field, raw_n in raw.items():
        measure, _, name = raw_field.decode().partition("|")
        n = int(raw_n)
        if measure in ("su", "sg"):
            skus.setdefault(name, [0, 0])[measure == "sg"] += n
        else:
            row = channels.setdefault(name, dict.fromkeys(MEASURES.values(), 0))
            row[MEASURES[measure]] += n
    return channels, skus


def derived(row: dict[str, Any]) -> dict[str, Any]:
    """A pulse row with its ratios: payment success ratio and average order value (paid)."""
    paid, failed = row["payments_success"], row["payments_failed"]
    return {**row, "payments": {"success": paid, "failed": failed},
            "success_ratio": paid / (paid + failed) if paid + failed else None,
            "aov": row["paid_gmv"] / paid if paid else None}

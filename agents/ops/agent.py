"""The shop's pulse: per minute of event time, orders, payments, paid GMV, cancellations,
new vs returning buyers and units/GMV per SKU, overall and by channel, exactly once.

Definitions (docs/live-and-ops.md; tests/agents/ops_ref.py restates them): events in partition
order, late ones left out by the batch loop (``streams.feeds``); a row per (minute, channel of
the event, or ``other``). A successful payment is by a new buyer when it is the first
successful payment the engine has seen for the user, else by a returning one. SKU units and GMV
come from the lines of submitted orders (qty, qty x price). Keys in ``sinks/ops/keys``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, NamedTuple

from shopstream.agents.base import NoHooks, PartitionBatch, Takes
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
#: (measure, channel) -> n, for the Prometheus counters.
Measures = Counter[tuple[str, str]]


class Buyers(NamedTuple):
    """What ``load`` read for a partition: the batch's paying users who paid before."""

    paid: set[str]


class Pulse(NoHooks):
    name = "ops"
    takes = Takes(PULSE_TYPES, on_time=True, late_key=ok.late_key)

    def __init__(self, settings: Settings, redis: Redis, metrics: Metrics | None = None) -> None:
        self.app_id = settings.app_id
        self.redis = redis
        self.metrics = metrics

    async def load(self, batches: list[PartitionBatch]) -> list[Buyers]:
        """Which paying users already paid before (one SMISMEMBER per partition)."""
        async def one(b: PartitionBatch) -> Buyers:
            users = list(dict.fromkeys(
                e.user_id for e in b.feeds[self.name].events
                if e.type == "payment" and e.status == "success"))
            if not users:
                return Buyers(set())
            flags = await self.redis.smismember(ok.buyers_key(self.app_id, b.partition), users)
            return Buyers({u for u, f in zip(users, flags, strict=True) if f})

        return list(await asyncio.gather(*(one(b) for b in batches)))

    def apply(self, batch: PartitionBatch, loaded: Buyers) -> Measures:
        paid = loaded.paid
        rows: Counter[tuple[int, str]] = Counter()
        metric: Measures = Counter()
        new_buyers: list[str] = []
        for ev in batch.feeds[self.name].events:
            ts = ev.ts
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
        return metric

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[Measures]) -> None:
        """Prometheus counters, once the batch's writes landed."""
        m = self.metrics
        if m is None:
            return
        for counts in outputs:
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

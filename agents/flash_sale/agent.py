"""Flash-sale inventory, stream side: payments confirm reservations, cancels release them.

The sale's keys live in the sale's slot (``{sale:<id>}``), not the partition's, so they
cannot join the fenced batch write. Instead ``apply`` records, under the partition tag and
inside the fenced write, the order -> reservation links and a list of *pending transitions*;
``after_apply`` and the timer drain that list with the sale's Lua scripts. Every script moves
units only from state ``reserved``, so draining twice (a crash before the list was trimmed,
two drainers at once) changes nothing, and a crash right after the fenced write loses
nothing: the next drain (timer, restart) performs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Annotated, Any, NamedTuple

import msgspec

from shopstream.agents.base import PartitionBatch, Takes
from shopstream.core import codec
from shopstream.core.sections import read_section
from shopstream.core.settings import Settings
from shopstream.core.timeunits import DAY_MS
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.schemas.events import Event, OrderCancel, Payment
from shopstream.sinks.flash_sale.keys import (
    counts_key,
    flagged_key,
    links_key,
    pending_key,
    sku_index,
)
from shopstream.sinks.flash_sale.store import FlashSales, publish_alerts, sale_of, text
from shopstream.sinks.redis_state import Redis

log = logging.getLogger(__name__)

#: Order -> reservation links are kept this long after the partition's last order.
LINK_TTL_MS = 7 * DAY_MS
#: Flagged orders kept per partition for operators.
FLAGGED_LEN = 10_000
#: The events that move reservations or flag orders.
SALE_TYPES = frozenset({"order_submit", "payment", "order_cancel"})
#: Pending transitions drained per round trip.
DRAIN_CHUNK = 200


#: A low-stock level: percent of total stock left.
Percent = Annotated[int, msgspec.Meta(gt=0, lt=100)]


class FlashSaleConfig(msgspec.Struct, frozen=True):
    """``[flash_sales]`` section of the config file."""

    #: Default reservation TTL for sales created without one.
    reservation_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=604_800)] = 900
    #: Low-stock alert levels, highest first.
    low_stock_pct: Annotated[tuple[Percent, ...],
                             msgspec.Meta(extra={"expected": "a list of integers 1..99"})] = (10,)


def parse_config(sections: Mapping[str, Any]) -> FlashSaleConfig:
    """Validate ``[flash_sales]``; raises ConfigError naming the key."""
    cfg = read_section(sections, "flash_sales", FlashSaleConfig)
    return msgspec.structs.replace(
        cfg, low_stock_pct=tuple(sorted(set(cfg.low_stock_pct), reverse=True)))


class Loaded(NamedTuple):
    """What ``load`` read for a partition's batch (see ``plan``)."""

    skus: dict[str, str]
    valid: dict[str, str]
    links: dict[str, str]


class Planned(NamedTuple):
    """What a partition's batch did: orders flagged; whether it may have queued transitions."""

    flagged: int
    drain: bool


def plan(events: list[Event], skus: Mapping[str, str], valid: Mapping[str, str],
         links: Mapping[str, str]) -> tuple[dict[str, str], list[dict[str, Any]],
                                             list[dict[str, Any]]]:
    """Pure: new links, pending transitions and flagged orders of one partition's sale events.

    ``skus`` maps flash-sale SKUs to sale ids; ``valid`` maps reservation ids that were
    ``reserved`` at load time to their user; ``links`` holds known order -> reservation links.
    """
    new_links: dict[str, str] = {}
    pending: list[dict[str, Any]] = []
    flagged: list[dict[str, Any]] = []
    for ev in events:
        if ev.type == "order_submit":
            rid = ev.reservation_id or ""
            ok = bool(rid) and valid.get(rid) == ev.user_id
            if ok:
                new_links[ev.order_id] = rid
            for sku in {item.sku for item in ev.items}:
                sale = skus.get(sku)
                if sale is not None and not (ok and sale_of(rid) == sale):
                    flagged.append({"sale_id": sale, "order_id": ev.order_id, "sku": sku,
                                    "user_id": ev.user_id, "reservation_id": rid,
                                    "event_id": ev.event_id})
        elif isinstance(ev, Payment | OrderCancel):
            rid = new_links.get(ev.order_id) or links.get(ev.order_id, "")
            if not rid:
                continue
            if ev.type == "payment" and ev.status == "success":
                op, reason = "confirm", ""
            else:
                op, reason = "release", "cancel" if ev.type == "order_cancel" else "payment_failed"
            pending.append({"op": op, "rid": rid, "order_id": ev.order_id, "reason": reason,
                            "event_id": ev.event_id})
    return new_links, pending, flagged


class FlashSaleAgent:
    """Stream side of flash sales; see the module docstring for the recovery argument."""

    name = "flash_sale"
    takes = Takes(SALE_TYPES)

    def __init__(self, settings: Settings, redis: Redis, metrics: Metrics | None = None) -> None:
        self.config = parse_config(settings.sections)
        self.settings = settings
        self.app_id = settings.app_id
        self.redis = redis
        self.sales = FlashSales(redis, settings.app_id)
        self.metrics = metrics or Metrics()
        self._producer: Any = None
        #: Serialises drains of this process; other processes' drains are harmless.
        self._drain_lock = asyncio.Lock()

    async def load(self, batches: list[PartitionBatch]) -> list[Loaded | None]:
        relevant = [b for b in batches if b.feeds[self.name].events]
        if not relevant:
            return [None] * len(batches)
        raw_skus = await self.redis.hgetall(sku_index(self.app_id))
        skus = {text(k): text(v) for k, v in raw_skus.items()}
        async with self.redis.pipeline(transaction=False) as pipe:
            asks: list[tuple[PartitionBatch, list[str], list[str]]] = []
            for b in relevant:
                events = b.feeds[self.name].events
                orders = [ev.order_id for ev in events
                          if isinstance(ev, Payment | OrderCancel)]
                rids = [ev.reservation_id for ev in events
                        if ev.type == "order_submit" and ev.reservation_id is not None]
                asks.append((b, orders, rids))
                if orders:
                    pipe.hmget(links_key(self.app_id, b.partition), orders)
                for rid in rids:
                    pipe.hget(self.sales.keys(sale_of(rid)).reservations, rid)
            rows = iter(await pipe.execute())
        loaded: dict[int, Loaded] = {}
        for b, orders, rids in asks:
            found = next(rows) if orders else []
            links = {o: text(v) for o, v in zip(orders, found, strict=True) if v is not None}
            valid: dict[str, str] = {}
            for rid in rids:
                raw = next(rows)
                res = codec.loads(raw) if raw else None
                if res is not None and res["s"] == "reserved":
                    valid[rid] = res["u"]
            loaded[b.partition] = Loaded(skus, valid, links)
        return [loaded.get(b.partition) for b in batches]

    def apply(self, batch: PartitionBatch, loaded: Loaded | None) -> Planned:
        if loaded is None:
            return Planned(0, False)
        new_links, pending, flagged = plan(batch.feeds[self.name].events, *loaded)
        ops, p = batch.ops, batch.partition
        if new_links:
            lk = links_key(self.app_id, p)
            for order_id, rid in new_links.items():
                ops.hset(lk, order_id, rid)
            ops.pexpire(lk, LINK_TTL_MS)
        for item in pending:
            ops.rpush(pending_key(self.app_id, p), codec.dumps(item))
        for f in flagged:
            ops.hincrby(counts_key(self.app_id, p), f"unreserved_order|{f['sale_id']}", 1)
            ops.xadd_capped(flagged_key(self.app_id, p), FLAGGED_LEN, "order", codec.dumps(f))
        return Planned(len(flagged), True)

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[Planned]) -> None:
        self.metrics.flash_unreserved.inc(sum(out.flagged for out in outputs))
        await self.drain([b.partition for b, out in zip(batches, outputs, strict=True)
                          if out.drain])

    async def drain(self, partitions: list[int]) -> int:
        """Perform pending transitions of ``partitions``; returns how many were drained."""
        done = 0
        async with self._drain_lock:
            for p in partitions:
                key = pending_key(self.app_id, p)
                while True:
                    items = await self.redis.lrange(key, 0, DRAIN_CHUNK - 1)
                    if not items:
                        break
                    for raw in items:
                        await self._transition(codec.loads(raw))
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for raw in items:
                            pipe.execute_command("LREM", key, 1, raw)
                        await pipe.execute()
                    done += len(items)
        return done

    async def _transition(self, item: dict[str, Any]) -> None:
        if item["op"] == "confirm":
            result = await self.sales.confirm(item["rid"], item["order_id"])
        else:
            n = await self.sales.release(item["rid"], item["reason"], 0)
            result = "released" if n else "noop"
        self.metrics.flash_transitions.labels(result).inc()

    async def tick(self, now_ms: int) -> None:
        """Heal undrained transitions, expire due reservations, publish alerts, set gauges."""
        await self.drain(list(range(self.settings.partitions)))
        for sale_id in await self.sales.sale_ids():
            expired = await self.sales.expire_due(sale_id, now_ms)
            if expired:
                self.metrics.flash_transitions.labels("expired").inc(expired)
            await publish_alerts(self.sales, self.producer, self.settings.alerts_topic, sale_id)
            meta = await self.sales.meta(sale_id)
            if meta:
                self.metrics.set_sale_units(sale_id, int(meta["available"]),
                                            int(meta["reserved"]), int(meta["sold"]))

    def producer(self) -> RecordProducer:
        """Kafka producer for alerts, created on first use (tests without alerts need none)."""
        if self._producer is None:
            self._producer = RecordProducer(self.settings)
        return self._producer


async def read_unreserved(redis: Redis, app_id: str, partitions: int, sale_id: str) -> int:
    """Unreserved orders flagged for a sale, summed over partitions."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.hget(counts_key(app_id, p), f"unreserved_order|{sale_id}")
        rows = await pipe.execute()
    return sum(int(v) for v in rows if v is not None)


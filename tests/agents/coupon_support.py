"""Helpers for coupon tests: run events through the real batch loop and read the pushes."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis

from shopstream.agents.coupons.agent import CouponAgent
from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.redis_state import make_redis
from tests.support import process_topic, read_records

SH = ZoneInfo("Asia/Shanghai")
MIN = 60_000
HOUR = 60 * MIN


def at(day: int, h: int, mi: int = 0) -> int:
    """Epoch ms of 2026-11-<day> h:mi in Shanghai."""
    return int(datetime(2026, 11, day, h, mi, tzinfo=SH).timestamp() * 1000)


class Events:
    """Builds events with unique ids."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, etype: str, user: str, ts: int, **fields: Any) -> None:
        self.items.append({"event_id": f"e{len(self.items)}", "type": etype, "ts": ts,
                           "user_id": user, **fields})

    def view(self, user: str, ts: int) -> None:
        self.add("page_view", user, ts, page="home")

    def cart(self, user: str, ts: int, sku: str = "s1", qty: int = 1, price: int = 5000) -> None:
        self.add("cart_add", user, ts, sku=sku, qty=qty, price=price)

    def order(self, user: str, ts: int, sku: str = "s1", qty: int = 1, price: int = 5000) -> None:
        self.add("order_submit", user, ts, order_id=f"o{len(self.items)}",
                 items=[{"sku": sku, "qty": qty, "price": price}], amount=qty * price)


def with_sections(settings: Settings, **sections: Any) -> Settings:
    return dataclasses.replace(settings, sections=sections)


async def run(settings: Settings, events: list[dict[str, Any]], batch_records: int = 200,
              max_events: int = 50, metrics: Metrics | None = None) -> list[dict[str, Any]]:
    """Produce in event-time order, process through the batch loop, return pushes published."""
    prod = EnvelopeProducer(settings, max_events=max_events)
    for ev in sorted(events, key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()
    r = make_redis(settings)
    agent = CouponAgent(settings, r, metrics)
    try:
        await process_topic(settings, agents=[agent], batch_records=batch_records)
    finally:
        await agent.close()
        await r.aclose()
    return pushes(settings)


def pushes(settings: Settings) -> list[dict[str, Any]]:
    return [codec.loads(v) for _, _, v, _ in read_records(settings, settings.pushes_topic)]


def metric(m: Metrics, rule: str, result: str) -> float:
    v = m.registry.get_sample_value("shopstream_pushes_total", {"rule": rule, "result": result})
    return v or 0.0


def redis_sync(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url or "")

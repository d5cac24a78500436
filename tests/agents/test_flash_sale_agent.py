"""Stream side of flash sales through the real batch loop (real Kafka and Redis, no Faust):
pay, cancel, failed payment and expiry move units exactly once; duplicates, redelivery and
a crash between the fenced write and the drain change nothing; unreserved orders flagged."""

from __future__ import annotations

import json
import time

import pytest
import redis.asyncio as aioredis

from shopstream.agents.base import PartitionBatch
from shopstream.agents.flash_sale.agent import (
    FlashSaleAgent,
    FlashSaleConfig,
    Planned,
    parse_config,
    read_unreserved,
)
from shopstream.agents.registry import build_agents
from shopstream.core.errors import ConfigError
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.sinks.flash_sale.store import FlashSales, SaleSpec
from shopstream.sinks.redis_state import make_redis
from tests.agents.flash_scenario import build, state_of
from tests.support import process_topic, read_records


class CrashBeforeDrain(FlashSaleAgent):
    """Dies (does nothing) right after the fenced write, as a SIGKILL there would."""

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[Planned]) -> None:
        return None


def produce(settings, events) -> None:
    prod = EnvelopeProducer(settings, max_events=7)
    for ev in events:
        prod.add(ev)
    prod.flush()


@pytest.mark.integration
async def test_transitions_happen_exactly_once(settings) -> None:
    r = aioredis.Redis.from_url(settings.redis_url)
    sales = FlashSales(r, settings.app_id)
    sc = await build(sales, "fs1", users=120, seed=3)
    produce(settings, sc.orders + sc.follow_ups)

    # 1. the worker "crashes" after every fenced write: nothing moved yet, nothing lost
    crashing = CrashBeforeDrain(settings, r)
    others = [a for a in build_agents(settings, r) if a.name != "flash_sale"]
    await process_topic(settings, agents=[*others, crashing], batch_records=5)
    before = await state_of(sales, "fs1")
    assert before["sold"] == 0 and before["reserved"] == sum(q for _, _, q, _ in sc.reservations)

    # 2. the restarted worker's timer drains the pending transitions
    inv = FlashSaleAgent(settings, r)
    await inv.tick(int(time.time() * 1000))
    assert await state_of(sales, "fs1") == sc.expected_before_expiry()
    await inv.tick(int(time.time() * 1000))  # draining again changes nothing
    assert await state_of(sales, "fs1") == sc.expected_before_expiry()

    # 3. the whole topic redelivered to a fresh processor: the fence skips it
    await process_topic(settings, batch_records=3)
    assert await state_of(sales, "fs1") == sc.expected_before_expiry()

    # 4. the TTL passes (test clock): unpaid reservations expire, once
    later = int(time.time() * 1000) + 601_000
    await inv.tick(later)
    await inv.tick(later + 1_000)
    assert await state_of(sales, "fs1") == sc.expected()
    assert await read_unreserved(r, settings.app_id, settings.partitions, "fs1") == sc.unreserved
    assert await r.zcard(sales.keys("fs1").expiry) == 0
    await r.aclose()


@pytest.mark.integration
async def test_drain_in_after_apply(settings) -> None:
    r = aioredis.Redis.from_url(settings.redis_url)
    sales = FlashSales(r, settings.app_id)
    sc = await build(sales, "fs2", users=60, seed=5)
    produce(settings, sc.orders + sc.follow_ups)
    await process_topic(settings, batch_records=2)
    assert await state_of(sales, "fs2") == sc.expected_before_expiry()
    await r.aclose()


def test_config_section_is_validated() -> None:
    assert parse_config({}) == FlashSaleConfig()
    assert parse_config({"flash_sales": {"low_stock_pct": [5, 20, 5]}}).low_stock_pct == (20, 5)
    for bad in ({"flash_sales": 3}, {"flash_sales": {"ttl": 1}},
                {"flash_sales": {"reservation_ttl_s": 0}},
                {"flash_sales": {"low_stock_pct": [0]}}):
        with pytest.raises(ConfigError):
            parse_config(bad)


@pytest.mark.integration
async def test_timer_publishes_alerts_the_api_left_behind(settings) -> None:
    r = aioredis.Redis.from_url(settings.redis_url)
    sales = FlashSales(r, settings.app_id)
    now = int(time.time() * 1000)
    await sales.create(SaleSpec("al", "sku-al", 4, 4, now - 1, now + 60_000, 60, (50, 25)))
    # claims through the Lua path only, as if the API died before publishing
    assert [(await sales.claim("al", "u", 1, now)).alerts_queued for _ in range(4)] == [0, 1, 1, 1]
    await FlashSaleAgent(settings, r).tick(now)
    got = sorted(json.loads(v)["alert_id"] for _, _, v, _ in
                 read_records(settings, settings.alerts_topic))
    assert got == ["al:low:25", "al:low:50", "al:sold_out"]
    assert await sales.pending_alerts("al") == []
    await r.aclose()


@pytest.mark.integration
async def test_claims_and_transitions_on_redis_cluster(infra, redis_cluster_url) -> None:
    s = infra.settings(redis_url=redis_cluster_url, redis_cluster=True)
    r = make_redis(s)
    sales = FlashSales(r, s.app_id)
    scenarios = [await build(sales, f"cl{i}", users=40, seed=30 + i) for i in range(3)]
    produce(s, [ev for sc in scenarios for ev in sc.orders + sc.follow_ups])
    await process_topic(s, batch_records=4)
    inv = FlashSaleAgent(s, r)
    await inv.tick(int(time.time() * 1000) + 601_000)
    for sc in scenarios:
        assert await state_of(sales, sc.sale_id) == sc.expected()
        assert await read_unreserved(r, s.app_id, s.partitions, sc.sale_id) == sc.unreserved
    await r.aclose()

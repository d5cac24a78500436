"""Flash-sale transitions through real worker processes, one SIGKILLed mid-run: units move
exactly once; short-TTL reservations expire on the restarted worker's timer."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis

from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.sinks.flash_sale.keys import sale_keys
from shopstream.sinks.flash_sale.store import FlashSales
from tests.agents.flash_scenario import Scenario, build
from tests.support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def produce(settings, events) -> None:
    prod = EnvelopeProducer(settings, max_events=5)
    for ev in events:
        prod.add(ev)
    prod.flush()


def state(r: redis.Redis, app_id: str, sc: Scenario) -> dict[str, int]:
    meta = {k.decode(): int(v) for k, v in r.hgetall(sale_keys(app_id, sc.sale_id).meta).items()
            if k not in (b"sale_id", b"sku", b"thresholds")}
    out = {k: meta.get(k, 0) for k in ("available", "reserved", "sold", "released")}
    out["late"] = meta.get("late_payment", 0)
    for reason in ("cancel", "payment_failed", "expired"):
        out[f"released:{reason}"] = meta.get(f"released:{reason}", 0)
    assert out["available"] + out["reserved"] + out["sold"] == meta["stock"] + meta["restocked"]
    return out


async def test_sigkill_mid_run_moves_units_once(settings, start_worker) -> None:
    ar = aioredis.Redis.from_url(settings.redis_url)
    sales = FlashSales(ar, settings.app_id)
    paid = await build(sales, "ck", users=200, seed=21)
    short = await build(sales, "ce", users=30, seed=22, ttl_s=3, fates=("expire",))
    await ar.aclose()
    half = len(paid.follow_ups) // 2
    produce(settings, paid.orders + short.orders + paid.follow_ups[:half])

    r = redis.Redis.from_url(settings.redis_url)
    worker = start_worker(settings)
    wait_until(lambda: state(r, settings.app_id, paid)["sold"] > 0, 60, "first payments applied")
    worker.kill()
    produce(settings, paid.follow_ups[half:])
    await asyncio.sleep(0.5)
    worker2 = start_worker(settings)
    # the paid sale's TTL is 10 minutes: its unpaid reservations are still reserved
    want_paid, want_short = paid.expected_before_expiry(), short.expected()
    wait_until(lambda: state(r, settings.app_id, paid) == want_paid, 90,
               "paid sale settled", interval=0.5)
    wait_until(lambda: state(r, settings.app_id, short) == want_short, 30,
               "short-TTL sale expired", interval=0.5)
    await asyncio.sleep(2)  # more ticks and no further movement
    assert state(r, settings.app_id, paid) == want_paid
    assert state(r, settings.app_id, short) == want_short
    worker2.stop()
    r.close()

"""The outbox relay runs at most one pass every PASS_EVERY_S while batches keep scheduling it
(a pass costs round trips per partition whatever it carries), and still relays every push."""

from __future__ import annotations

import asyncio
import time

import pytest

from shopstream.core import codec
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.outbox import PASS_EVERY_S, OutboxRelay
from shopstream.sinks.redis_state import make_redis

pytestmark = pytest.mark.integration

SCHEDULING_S = 1.5


async def test_passes_are_paced_while_batches_keep_scheduling(settings) -> None:
    client = make_redis(settings)
    relay = OutboxRelay(client, settings, {}, Metrics())
    k = coupon_keys(settings.app_id, 0)
    passes: list[float] = []
    relay_partitions = relay.relay

    async def counted(partitions):  # type: ignore[no-untyped-def]
        passes.append(time.monotonic())
        return await relay_partitions(partitions)

    relay.relay = counted  # type: ignore[method-assign]
    sent = 0
    try:
        end = time.monotonic() + SCHEDULING_S
        while time.monotonic() < end:  # a batch every 10 ms, each deciding one push
            pid = f"p{sent}"
            await client.hset(k.outbox, pid, codec.dumps({
                "push_id": pid, "user_id": f"u{sent}", "rule": "r", "coupon_fen": 0,
                "ts": 1_795_000_000_000 + sent}))
            sent += 1
            relay.schedule([0])
            await asyncio.sleep(0.01)
        await relay.close()  # waits for the passes scheduled so far
        assert await client.hlen(k.outbox) == 0
        assert await client.hlen(k.push_results) == sent
    finally:
        await client.aclose()
    starts = sorted(passes)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(passes) <= SCHEDULING_S / PASS_EVERY_S + 2, f"{len(passes)} passes for {sent}"
    assert min(gaps) >= PASS_EVERY_S * 0.9, gaps

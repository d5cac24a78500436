"""Push results are kept per business day, not for ever: today's in ``push:results``, the
previous day's in ``push:results:prev`` until ``push_results_keep_s`` after the turn."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from shopstream.core import codec
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.outbox import OutboxRelay
from shopstream.sinks.redis_state import make_redis

pytestmark = pytest.mark.integration


def _ms(s, day: str, hour: int) -> int:
    """Epoch ms of a local hour of a business day in the settings' zone."""
    return int(datetime.fromisoformat(f"{day}T{hour:02d}:00").replace(tzinfo=s.zone)
               .timestamp() * 1000)


async def test_results_turn_over_with_the_business_day(settings) -> None:
    s = dataclasses.replace(settings, push_results_keep_s=3_600)
    client = make_redis(s)
    relay = OutboxRelay(client, s, {}, Metrics())
    k = coupon_keys(s.app_id, 0)

    async def relay_day(day: str, hour: int, n: int) -> None:
        relay.clock_ms = lambda: _ms(s, day, hour)
        pushes = {f"{day}-{hour}-{i}": codec.dumps({
            "push_id": f"{day}-{hour}-{i}", "user_id": f"u{i}", "rule": "r", "coupon_fen": 0,
            "ts": _ms(s, day, hour)}) for i in range(n)}
        await client.hset(k.outbox, mapping=pushes)
        assert await relay.relay([0]) == n

    async def results(key: str) -> set[str]:
        return {pid.decode() for pid in await client.hkeys(key)}

    try:
        await relay_day("2026-03-01", 9, 5)
        await relay_day("2026-03-01", 23, 2)
        assert len(await results(k.push_results)) == 7
        # After midnight in the settings' zone: yesterday's seven move aside with an expiry.
        await relay_day("2026-03-02", 0, 3)
        assert await results(k.push_results) == {f"2026-03-02-0-{i}" for i in range(3)}
        assert len(await results(k.push_results_prev)) == 7
        assert 0 < await client.ttl(k.push_results_prev) <= 3_600
        assert (await client.hget(k.push_results, "2026-03-02-0-0")) == b"sent"
        # Two days on, the first day is gone: at most two days are ever held.
        await relay_day("2026-03-03", 8, 1)
        assert await results(k.push_results) == {"2026-03-03-8-0"}
        assert await results(k.push_results_prev) == {f"2026-03-02-0-{i}" for i in range(3)}
    finally:
        await relay.close()
        await client.aclose()

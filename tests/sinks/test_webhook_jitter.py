"""1,000 pushes refused together are not retried together: the relay spreads their next
attempts over the backoff (full jitter), from a random source tests can pin."""

from __future__ import annotations

import dataclasses
import random

import pytest
from aiohttp import web

from shopstream.core import codec
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.outbox import OutboxRelay
from shopstream.sinks.redis_state import make_redis
from shopstream.sinks.webhook import WebhookSender, parse_webhook
from tests.support import new_port

pytestmark = pytest.mark.integration

PUSHES = 1_000
BACKOFF_MS = 10_000


async def _refused_once(settings, rand) -> list[int]:
    """Queue PUSHES pushes, make one relay pass against a receiver answering 503 to all, and
    return each push's next attempt relative to the pass."""
    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post("/push", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    port = new_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    s = dataclasses.replace(settings, partitions=1)
    cfg = parse_webhook({"webhook": {"url": f"http://127.0.0.1:{port}/push",
                                     "secret": "jitter-secret-0123456789",
                                     "backoff_ms": BACKOFF_MS}})
    assert cfg is not None
    client = make_redis(s)
    relay = OutboxRelay(client, s, {}, Metrics(), WebhookSender(cfg))
    now = 1_800_000_000_000
    relay.clock_ms, relay.rand = (lambda: now), rand
    queue = coupon_keys(s.app_id, 0).push_webhook
    try:
        await client.hset(queue, mapping={
            f"p{i}": codec.dumps({"push": {"push_id": f"p{i}", "rule": "r"}, "attempts": 0,
                                  "first_ms": now, "next_ms": now}) for i in range(PUSHES)})
        await relay.relay([0])
        rows = [codec.loads(v) for v in (await client.hgetall(queue)).values()]
    finally:
        await relay.close()
        await client.aclose()
        await runner.cleanup()
    assert len(rows) == PUSHES and all(w["attempts"] == 1 for w in rows)
    return [w["next_ms"] - now for w in rows]


async def test_refused_pushes_come_back_spread_over_the_backoff(settings) -> None:
    delays = await _refused_once(settings, random.Random(5).random)
    assert all(0 <= d <= BACKOFF_MS for d in delays)
    # uniform over the first backoff: each tenth of it holds about a tenth of the pushes
    tenths = [sum(d * 10 // BACKOFF_MS == i for d in delays) for i in range(10)]
    assert min(tenths) > 60, tenths
    # and the source decides: pinned draws give pinned delays
    assert set(await _refused_once(settings, lambda: 0.5)) == {BACKOFF_MS // 2}

"""A loopback receiver failing 30% of requests: each push delivered once or dead-lettered."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
import redis
from aiohttp import web

from shopstream.agents.coupons.agent import CouponAgent
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.redis_state import Redis, make_redis
from shopstream.sinks.webhook import ID_HEADER, verify
from tests.agents.coupon_reference import SECTIONS, generate_day
from tests.agents.coupon_support import metric, pushes, with_sections
from tests.support import new_port, process_topic

pytestmark = pytest.mark.integration

SECRET = "test-secret-0123456789"


async def _in_outbox(client: Redis, s: Settings) -> int:
    return sum([await client.hlen(coupon_keys(s.app_id, p).outbox) for p in range(s.partitions)])


async def test_flaky_receiver_gets_each_push_once_or_dead_letter(settings) -> None:
    rnd = random.Random(3)
    delivered: Counter[str] = Counter()
    bad_signatures = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal bad_signatures
        body = await request.read()
        roll = rnd.random()
        if roll < 0.05:
            await asyncio.sleep(1.5)                 # longer than the sender's timeout
            return web.Response(status=503)
        if roll < 0.30:
            return web.Response(status=500)
        if not verify(SECRET, request.headers, body):
            bad_signatures += 1
            return web.Response(status=401)
        delivered[request.headers[ID_HEADER]] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/push", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = new_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    # The receiver shares the worker's event loop, where a batch can hold the loop for more
    # than 150 ms on a loaded machine: a timeout that short would retry answers already sent.
    hook = {"url": f"http://127.0.0.1:{port}/push", "secret": SECRET, "timeout_ms": 1000,
            "max_attempts": 3, "backoff_ms": 5}
    s = with_sections(settings, **SECTIONS, webhook=hook)
    m = Metrics()
    prod = EnvelopeProducer(s, max_events=50)
    for ev in sorted(generate_day(users=400, partitions=s.partitions), key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()
    client = make_redis(s)
    agent = CouponAgent(s, client, m)
    try:
        await process_topic(s, agents=[agent])
        # close() is a stop with a grace period: relay until every push is settled first.
        while (await agent.relay.waiting())[0] or await _in_outbox(client, s):
            await agent.relay.relay(range(s.partitions))
            await asyncio.sleep(0.01)
        await agent.close()
    finally:
        await client.aclose()
        await runner.cleanup()
    got = pushes(s)

    r = redis.Redis.from_url(s.redis_url or "")
    dead = {k.decode(): v.decode() for p in range(s.partitions)
            for k, v in r.hgetall(coupon_keys(s.app_id, p).push_dead).items()}
    left = sum(r.hlen(coupon_keys(s.app_id, p).outbox) for p in range(s.partitions))
    all_ids = {p["push_id"] for p in got}
    assert len(all_ids) > 300 and left == 0
    assert bad_signatures == 0
    assert set(delivered) | set(dead) == all_ids
    assert not set(delivered) & set(dead)
    assert max(delivered.values()) == 1
    assert dead and all("after 3 attempts" in reason for reason in dead.values())
    sent = sum(metric(m, rule, "sent") for rule in {p["rule"] for p in got})
    failed = sum(metric(m, rule, "failed") for rule in {p["rule"] for p in got})
    assert (sent, failed) == (len(delivered), len(dead))
    print(f"\nwebhook: {len(all_ids)} pushes, {len(delivered)} delivered, {len(dead)} dead")

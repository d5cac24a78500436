"""A webhook receiver down for 30 s, and for 10 minutes: pushes wait in the outbox's webhook
queue and are delivered exactly once after it recovers; past the retry horizon they are
dead-lettered with the reason, never dropped silently."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
import redis
from aiohttp import web

from shopstream.agents.coupons.agent import CouponAgent
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.redis_state import make_redis
from shopstream.sinks.webhook import IDEMPOTENCY_HEADER, verify
from tests.agents.coupon_reference import SECTIONS, generate_day
from tests.agents.coupon_support import pushes, with_sections
from tests.support import new_port, process_topic

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SECRET = "outage-secret-0123456789"


class Receiver:
    """A loopback webhook receiver that answers 503 while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.delivered: Counter[str] = Counter()
        self.refused = 0
        self.bad_signatures = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.down:
            self.refused += 1
            return web.Response(status=503, headers={"Retry-After": "1"})
        if not verify(SECRET, request.headers, body):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.delivered[request.headers[IDEMPOTENCY_HEADER]] += 1
        return web.Response(status=204)


async def _decide(settings, receiver_port: int, **hook: int):
    """Pushes of a generated day decided by the coupon agent; returns the agent and its ids."""
    s = with_sections(settings, **SECTIONS, webhook={
        "url": f"http://127.0.0.1:{receiver_port}/push", "secret": SECRET, **hook})
    prod = EnvelopeProducer(s, max_events=50)
    for ev in sorted(generate_day(users=150, partitions=s.partitions), key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()
    r = make_redis(s)
    agent = CouponAgent(s, r)
    await process_topic(s, agents=[agent])
    # Every decided push published to Kafka and queued for the webhook.
    async def in_outbox() -> int:
        return sum([await r.hlen(coupon_keys(s.app_id, p).outbox) for p in range(s.partitions)])

    while await in_outbox():
        await agent.relay.relay(range(s.partitions))
    return s, r, agent


async def _serve(receiver: Receiver) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_post("/push", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = new_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def _dead(s) -> dict[str, str]:
    r = redis.Redis.from_url(s.redis_url)
    out = {k.decode(): v.decode() for p in range(s.partitions)
           for k, v in r.hgetall(coupon_keys(s.app_id, p).push_dead).items()}
    r.close()
    return out


async def test_webhook_down_30s(settings, fault_row):
    receiver = Receiver()
    runner, port = await _serve(receiver)
    try:
        s, r, agent = await _decide(settings, port, backoff_ms=200, max_backoff_ms=3000)
        ids = {p["push_id"] for p in pushes(s)}
        fault_row.fault, fault_row.events = "webhook down 30 s", len(ids)
        started = time.monotonic()
        while time.monotonic() - started < 90:
            receiver.down = time.monotonic() - started < 30
            await agent.relay.relay(range(s.partitions))
            if not (await agent.relay.waiting())[0]:
                break
            await asyncio.sleep(0.5)
        await agent.close()
        await r.aclose()
    finally:
        await runner.cleanup()
    assert ids and receiver.refused > len(ids)
    assert set(receiver.delivered) == ids and max(receiver.delivered.values()) == 1
    assert not _dead(s) and receiver.bad_signatures == 0
    fault_row.checks += [f"{len(ids)} pushes delivered exactly once after the outage",
                         f"{receiver.refused} refused attempts, none dead-lettered"]


@pytest.mark.parametrize("horizon_s", [86_400, 300])
async def test_webhook_down_10_minutes(settings, fault_row, horizon_s):
    receiver = Receiver()
    runner, port = await _serve(receiver)
    try:
        s, r, agent = await _decide(settings, port, retry_horizon_s=horizon_s)
        ids = {p["push_id"] for p in pushes(s)}
        fault_row.fault = f"webhook down 10 min (retry horizon {horizon_s} s)"
        fault_row.events = len(ids)
        # Ten minutes of outage on the relay's clock, one relay pass every simulated 15 s.
        now = int(time.time() * 1000)
        agent.relay.clock_ms = lambda: now
        for _ in range(40):
            await agent.relay.relay(range(s.partitions))
            now += 15_000
        receiver.down = False
        for _ in range(10):
            await agent.relay.relay(range(s.partitions))
            now += 60_000
        left = (await agent.relay.waiting())[0]
        await agent.close()
        await r.aclose()
    finally:
        await runner.cleanup()
    dead = _dead(s)
    assert ids and left == 0
    assert not set(receiver.delivered) & set(dead) and set(receiver.delivered) | set(dead) == ids
    assert max(receiver.delivered.values(), default=1) == 1
    if horizon_s > 600:
        assert set(receiver.delivered) == ids and not dead
        fault_row.checks.append(f"{len(ids)} pushes kept 10 min, then delivered exactly once")
    else:
        assert set(dead) == ids and all("http 503 after" in why for why in dead.values())
        fault_row.checks.append(f"{len(ids)} pushes dead-lettered at the horizon, with reason")

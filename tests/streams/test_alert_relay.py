"""Ops alerts reach the ops webhook, signed, through a receiver outage, each once per alert_id
(at least once: a restart after the last commit sends nothing again)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter

import pytest
from aiohttp import web

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.webhook import ID_HEADER, parse_webhook, verify
from shopstream.streams.alert_relay import AlertRelay
from tests.support import new_port

pytestmark = pytest.mark.integration

SECRET = "ops-hook-secret-0123456789"


class Receiver:
    def __init__(self) -> None:
        self.down = True
        self.delivered: Counter[str] = Counter()
        self.bodies: dict[str, dict] = {}
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.down:
            self.refused += 1
            return web.Response(status=503)
        if not verify(SECRET, request.headers, body):
            return web.Response(status=401)
        self.delivered[request.headers[ID_HEADER]] += 1
        self.bodies[request.headers[ID_HEADER]] = codec.loads(body)
        return web.Response(status=204)


async def test_alerts_survive_an_outage_and_arrive_once(settings: Settings) -> None:
    port = new_port()
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/ops", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sections = {"ops_webhook": {"url": f"http://127.0.0.1:{port}/ops", "secret": SECRET,
                                "backoff_ms": 50, "max_backoff_ms": 200}}
    s = dataclasses.replace(settings, sections=sections,
                            alerts_topic=settings.events_topic + "-alerts")
    cfg = parse_webhook(s.sections, "ops_webhook")
    assert cfg is not None
    docs = [{"type": "ops_anomaly", "alert_id": f"a{i}", "metric": "orders", "minute": i}
            for i in range(30)]
    prod = RecordProducer(s)
    for d in docs:
        prod.produce(s.alerts_topic, codec.dumps(d), key=d["alert_id"].encode())
    prod.flush()

    relay = AlertRelay(s, cfg, Metrics())
    deadline = time.monotonic() + 30
    while receiver.refused < 3 and time.monotonic() < deadline:
        await relay.tick()
        await asyncio.sleep(0.05)
    assert receiver.refused >= 3 and not receiver.delivered
    receiver.down = False
    while sum(receiver.delivered.values()) < len(docs) and time.monotonic() < deadline:
        await relay.tick()
        await asyncio.sleep(0.05)
    await relay.close()
    assert receiver.delivered == Counter({d["alert_id"]: 1 for d in docs})
    assert receiver.bodies["a7"] == docs[7]

    again = AlertRelay(s, cfg, Metrics())
    deadline = time.monotonic() + 30
    while not again._consume().assignment() and time.monotonic() < deadline:
        await again.tick()
    assert again._consume().assignment(), "the second relay never joined"
    for _ in range(10):
        await again.tick()
    await again.close()
    assert sum(receiver.delivered.values()) == len(docs)
    await runner.cleanup()

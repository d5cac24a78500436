"""The live agent's load costs one pipeline per batch, then one MGET per partition with users
(concurrently; Redis Cluster clients refuse MGET in a pipeline): at the live rate a batch holds
every partition, and two or three trips per partition made the load the slowest (103 round
trips in this test's eight loads)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from bench.step_meter import Meter
from shopstream.agents.registry import build_agents
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.sinks.redis_state import make_redis
from tests.agents.live_ref import generate
from tests.support import counts, process_topic

pytestmark = pytest.mark.integration


async def test_load_is_a_pipeline_then_one_read_per_partition(settings) -> None:
    settings = dataclasses.replace(settings, sections={})
    log = generate(n_rooms=40, n_users=400, seed=3)
    prod = EnvelopeProducer(settings, max_events=5)
    for ev in log:
        prod.add(ev)
    prod.flush()
    r = make_redis(settings)
    live = next(a for a in build_agents(settings, r) if a.name == "live")
    await asyncio.gather(*(r.ping() for _ in range(4)))  # connections made before metering
    meter = Meter()
    meter.wrap(live, "load", "load")
    meter.start()
    try:
        await process_topic(settings, agents=[live], batch_records=40)
    finally:
        meter.stop()
        await r.aclose()
    assert counts(settings)["processed"] == len({e["event_id"] for e in log})
    load = meter.stats["load"]
    assert load.calls >= 3
    most = load.calls * (1 + settings.partitions)
    assert load.trips <= most, f"{load.trips} round trips in {load.calls} loads"

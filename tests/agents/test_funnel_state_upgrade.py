"""A worker upgraded in place over funnel progress in the text format written before packing
goes on: it reads that progress (and its TTL stays), rewrites it packed, and every bucket
still equals the plain-Python reference."""

from __future__ import annotations

import dataclasses

import pytest

from shopstream.agents.funnel.rules import encode_units, unpack_units
from shopstream.agents.registry import build_agents
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.streams.batch import BatchProcessor, Record
from tests.agents.coupon_support import redis_sync
from tests.agents.funnel_ref import FUNNELS_TOML, generate, reference
from tests.agents.test_funnel_integration import check_api, produce
from tests.support import read_records

pytestmark = pytest.mark.integration


async def _process(settings, recs: list[Record]) -> None:
    """A worker's batch loop over ``recs`` (fresh agents: a worker started anew)."""
    r = make_redis(settings)
    proc = BatchProcessor(settings, RedisState(r, settings.app_id, settings.events_topic),
                          build_agents(settings, r, Metrics()),
                          DeadLetterSink(RecordProducer(settings), settings.dead_letter_topic),
                          Metrics())
    for i in range(0, len(recs), 50):
        await proc.process(recs[i:i + 50])
    await r.aclose()


def _as_text(settings) -> int:
    """Rewrite every user's progress in the text format, keeping its TTL; returns users."""
    r = redis_sync(settings)
    n = 0
    for key in list(r.scan_iter(match=f"{settings.app_id}:*:funnel:u:*", count=1000)):
        ttl = r.pttl(key)
        assert ttl > 0
        r.set(key, encode_units(unpack_units(r.get(key))), px=ttl)
        n += 1
    r.close()
    return n


async def test_progress_in_the_text_format_is_read_and_packed(settings) -> None:
    settings = dataclasses.replace(settings, sections={"funnels": FUNNELS_TOML})
    log = generate(n_users=1_500, seed=5)
    produce(settings, log)
    recs = [Record(p, o, v) for p, o, v, _ in read_records(settings)]
    recs.sort(key=lambda rec: (rec.offset, rec.partition))
    half = len(recs) // 2

    await _process(settings, recs[:half])
    users = _as_text(settings)
    await _process(settings, recs[half:])

    want, want_late = reference(log, FUNNELS_TOML, settings.partitions)
    assert users > 500
    assert await check_api(settings, want, want_late) > 100
    r = redis_sync(settings)
    stored = [r.get(k) for k in r.scan_iter(match=f"{settings.app_id}:*:funnel:u:*",
                                              count=1000)]
    packed = [raw for raw in stored if raw and raw[:1] == b"\x1c"]
    assert len(packed) > len(stored) / 2
    assert all(len(raw) < len(encode_units(unpack_units(raw))) for raw in packed)
    assert all(r.pttl(k) > 0 for k in r.scan_iter(match=f"{settings.app_id}:*:funnel:u:*"))
    r.close()

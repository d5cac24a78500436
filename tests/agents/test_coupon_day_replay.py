"""A generated day (>= 100,000 events) yields exactly the pushes of the plain-Python reference,
whether partitions advance together in event time or one partition is replayed to the end first."""

from __future__ import annotations

import functools
import time
from collections import Counter

import pytest

from shopstream.agents.coupons.agent import CouponAgent
from shopstream.core import codec
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.streams.batch import BatchProcessor, Record
from tests.agents.coupon_reference import ROOMS, SECTIONS, generate_day, reference
from tests.agents.coupon_support import metric, pushes, with_sections
from tests.support import read_records

pytestmark = pytest.mark.integration


async def process_in_time_order(settings, agent, batch_records: int,
                                 first: int | None = None) -> None:
    """The batch loop over all records, ordered by their first event's time: partitions
    advance together in event time, as live traffic does. ``first``: that partition's records
    all come before any other's (a partition far ahead, as in any replay of a whole day)."""
    r = make_redis(settings)
    proc = BatchProcessor(settings, RedisState(r, settings.app_id, settings.events_topic),
                          [agent], DeadLetterSink(RecordProducer(settings),
                                                  settings.dead_letter_topic), Metrics())
    recs = [Record(p, o, v) for p, o, v, _ in read_records(settings)]
    recs.sort(key=lambda rec: (rec.partition != first, codec.loads(rec.value)[0]["ts"],
                               rec.partition, rec.offset))
    for i in range(0, len(recs), batch_records):
        await proc.process(recs[i:i + batch_records])
    await r.aclose()


@functools.cache
def day(partitions: int) -> tuple[list[dict], set[tuple], Counter[tuple[str, str]]]:
    """The generated day and its reference pushes and decisions, made once for both orders."""
    events = generate_day(users=6_500, partitions=partitions)
    return events, *reference(events)


@pytest.mark.parametrize("first", [None, 0], ids=["time-order", "one-partition-first"])
async def test_generated_day_matches_reference(settings, first: int | None) -> None:
    s = with_sections(settings, **SECTIONS)
    events, expected, decisions = day(s.partitions)
    assert len(events) >= 100_000
    prod = EnvelopeProducer(s, max_events=50)
    for ev in sorted(events, key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()

    started = time.perf_counter()
    r = make_redis(s)
    m = Metrics()
    agent = CouponAgent(s, r, m)
    await process_in_time_order(s, agent, batch_records=8, first=first)
    await agent.close()
    await r.aclose()
    elapsed = time.perf_counter() - started

    got = pushes(s)
    assert len(got) == len({p["push_id"] for p in got}), "a push was published twice"
    actual = {(p["push_id"], p["rule"], p["user_id"], p["ts"], p["step"]) for p in got}
    assert len(expected) > 2_000
    assert {rule for _, rule, *_ in expected} == {"cart_recovery", "threshold_nudge", "new_user",
                                                  "live_followup"}
    assert actual - expected == set() and expected - actual == set()
    # Every room's later sessions are followed up too, and orders after an end are suppressed.
    sessions = {(p["room"], p["trigger"]) for p in got if p["rule"] == "live_followup"}
    assert {room for room, _ in sessions} == set(ROOMS) and len(sessions) >= 9
    assert decisions[("live_followup", "suppressed")] > 100
    for (rule, result), n in decisions.items():
        assert metric(m, rule, result) == n, (rule, result)
    print(f"\nday replay: {len(events)} events, {len(got)} pushes, {elapsed:.1f}s "
          f"({len(events) / elapsed:,.0f} events/s), decisions {dict(decisions)}")

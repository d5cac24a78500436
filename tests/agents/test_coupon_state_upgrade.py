"""A worker upgraded in place over users' state in the JSON string keys of the version before
buckets goes on: it reads that state, moves each user into its bucket at the user's next
write, and the day's pushes are exactly the reference's."""

from __future__ import annotations

import pytest

from shopstream.agents.coupons.agent import CouponAgent
from shopstream.core import codec
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.coupons.keys import USER_BUCKETS, user_key, users_prefix
from shopstream.sinks.coupons.users import unpack
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.streams.batch import BatchProcessor, Record
from tests.agents.coupon_reference import SECTIONS, generate_day, reference
from tests.agents.coupon_support import pushes, redis_sync, with_sections
from tests.support import read_records

pytestmark = pytest.mark.integration


async def _process(settings, recs: list[Record], batch_records: int = 8) -> None:
    """A worker's batch loop over ``recs`` (a fresh agent: a worker started anew)."""
    r = make_redis(settings)
    agent = CouponAgent(settings, r, Metrics())
    proc = BatchProcessor(settings, RedisState(r, settings.app_id, settings.events_topic),
                          [agent], DeadLetterSink(RecordProducer(settings),
                                                  settings.dead_letter_topic), Metrics())
    for i in range(0, len(recs), batch_records):
        await proc.process(recs[i:i + batch_records])
    await agent.close()
    await r.aclose()


def _as_before_buckets(settings) -> int:
    """Rewrite every user's state as the version before buckets kept it (JSON in the user's
    string key); returns the users rewritten."""
    r = redis_sync(settings)
    n = 0
    for p in range(settings.partitions):
        for b in range(USER_BUCKETS):
            key = users_prefix(settings.app_id, p) + str(b)
            for user, raw in r.hgetall(key).items():
                r.set(user_key(settings.app_id, p, user.decode()), codec.dumps(unpack(raw)))
                n += 1
            r.delete(key)
    r.close()
    return n


async def test_state_of_the_version_before_buckets_is_read_and_moved(settings) -> None:
    s = with_sections(settings, **SECTIONS)
    events = generate_day(users=800, partitions=s.partitions, seed=5)
    prod = EnvelopeProducer(s, max_events=50)
    for ev in sorted(events, key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()
    expected, _ = reference(events)
    recs = [Record(p, o, v) for p, o, v, _ in read_records(s)]
    recs.sort(key=lambda rec: (codec.loads(rec.value)[0]["ts"], rec.partition, rec.offset))
    half = len(recs) // 2

    await _process(s, recs[:half])
    old_users = _as_before_buckets(s)
    await _process(s, recs[half:])

    got = pushes(s)
    actual = {(p["push_id"], p["rule"], p["user_id"], p["ts"], p["step"]) for p in got}
    assert old_users > 500 and len(expected) > 300
    assert actual - expected == set() and expected - actual == set()
    r = redis_sync(s)
    left = sum(1 for _ in r.scan_iter(match=f"{s.app_id}:*:cu:u:*", count=1000))
    buckets = [k for k in r.scan_iter(match=f"{s.app_id}:*:cu:b:*", count=1000)]
    moved = sum(r.hlen(k) for k in buckets)
    # Users written after the upgrade moved (their old key deleted); the others still wait.
    assert moved > old_users / 2 and left + moved >= old_users
    # Compact: Redis keeps a bucket a listpack unless a state once grew past 256 bytes.
    packed = [r.object("encoding", key) in (b"ziplist", b"listpack") for key in buckets]
    assert len(buckets) > 300 and sum(packed) >= 0.9 * len(packed)
    for key in buckets:
        p = int(key.split(b"{p")[1].split(b"}")[0])
        for user in r.hkeys(key):
            assert r.exists(user_key(s.app_id, p, user.decode())) == 0
    r.close()

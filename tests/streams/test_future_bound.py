"""No input moves a watermark past the future bound, and the counts still reconcile.

Hypothesis draws records (each with a Kafka timestamp: none, -1, 0, long ago, now, forged in
the future, the int64 edge) carrying events stamped in the past, now, at the bound, far in the
future and at the int64 edges, and feeds them to the batch loop with a real redis-server and
broker. After every example, per partition: ``in = processed + dead + duplicate``, ``in`` is
what was sent, ``dead:future_ts`` is what the plain reference below refuses, and the fence's
watermark is the reference's (the largest ``ts`` accepted), never beyond the wall clock plus
``max_future_ms``; the worker's metric counts the refused ones too.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.schemas.validate import MAX_TS, MIN_TS
from shopstream.sinks import keys
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.streams.batch import BatchProcessor, Record
from tests.support import users_by_partition

pytestmark = pytest.mark.integration

MIN = 60_000
DAY = 1440 * MIN
BOUND = 300_000
NOW = int(time.time() * 1000)
LONG_AGO = 1_794_326_400_000
INT64 = 2**63 - 1

record_stamps = st.one_of(
    st.sampled_from([None, -1, 0, LONG_AGO, NOW - DAY, NOW, NOW + DAY, MAX_TS, INT64]),
    st.integers(LONG_AGO, NOW),
)
#: Event times: schema edges, int64 edges, around the bound of either clock, anywhere.
event_times = st.one_of(
    st.sampled_from([MIN_TS - 1, MIN_TS, MAX_TS, MAX_TS + 1, 4_070_908_800_000, 0, -1, INT64,
                     INT64 + 1, -(2**63), 2**64 - 1]),
    st.sampled_from([LONG_AGO + BOUND, LONG_AGO + BOUND + 1]),
    st.integers(-DAY, 2 * BOUND).map(lambda d: NOW + d),
    st.integers(-(2**63), 2**64 - 1),  # what JSON decoders take as integers
)
records = st.lists(
    st.tuples(st.integers(0, 3), record_stamps,
              st.lists(st.tuples(st.integers(0, 30), event_times), min_size=1, max_size=5)),
    min_size=1, max_size=4,
)


@dataclass
class Reference:
    """Per partition, restated from README "Semantics": what was sent, what the bound refuses
    (surely, or maybe when the wall clock's exact reading decides), the largest ``ts`` accepted
    (surely / maybe)."""

    sent: list[int]
    future: list[int]
    maybe_future: list[int]
    wm: list[int]
    wm_maybe: list[int]
    offsets: list[int] = field(default_factory=list)

    def judge(self, p: int, stamp: int | None, ts: int, before: int, after: int) -> None:
        """One event sent at a wall clock read between ``before`` and ``after``."""
        self.sent[p] += 1
        if type(ts) is not int or not MIN_TS <= ts <= MAX_TS:
            return  # invalid_field, before any clock
        if stamp is not None and 0 < stamp <= before:
            low = high = stamp
        else:  # judged against the worker's clock (also when the stamp is ahead of it)
            low, high = before, after if stamp is None or stamp <= 0 else min(stamp, after)
        if ts > high + BOUND:
            self.future[p] += 1
        elif ts > low + BOUND:
            self.maybe_future[p] += 1
            self.wm_maybe[p] = max(self.wm_maybe[p], ts)
        else:
            self.wm[p] = max(self.wm[p], ts)
            self.wm_maybe[p] = max(self.wm_maybe[p], ts)


def test_no_input_moves_a_watermark_past_the_bound(infra) -> None:
    s = infra.settings(max_future_ms=BOUND)
    n = s.partitions
    owners = users_by_partition(n)
    ref = Reference([0] * n, [0] * n, [0] * n, [0] * n, [0] * n, [0] * n)
    loop = asyncio.new_event_loop()
    redis = make_redis(s)
    metrics = Metrics()
    proc = BatchProcessor(s, RedisState(redis, s.app_id, s.events_topic), [],
                          DeadLetterSink(RecordProducer(s), s.dead_letter_topic), metrics)

    async def state() -> list[tuple[dict[bytes, bytes], int]]:
        out = []
        for p in range(n):
            c = await redis.hgetall(keys.counts(s.app_id, p))
            wm = await redis.hget(keys.fence(s.app_id, s.events_topic, p), "wm")
            out.append((c, int(wm or 0)))
        return out

    @hsettings(max_examples=60, deadline=None)
    @given(records)
    def example(drawn: list[tuple[int, int | None, list[tuple[int, Any]]]]) -> None:
        batch: list[Record] = []
        events: list[tuple[int, int | None, int]] = []
        for p, stamp, items in drawn:
            value = json.dumps([{"event_id": f"e{k}", "type": "page_view", "ts": ts,
                                  "user_id": owners[p], "page": "x"} for k, ts in items]).encode()
            batch.append(Record(p, ref.offsets[p], value, stamp))
            ref.offsets[p] += 1
            events += [(p, stamp, ts) for _, ts in items]
        before = int(time.time() * 1000)
        loop.run_until_complete(proc.process(batch))
        after = int(time.time() * 1000)
        for p, stamp, ts in events:
            ref.judge(p, stamp, ts, before, after)
        refused = 0
        for p, (c, wm) in enumerate(loop.run_until_complete(state())):
            got = {k.decode(): int(v) for k, v in c.items()}
            assert got.get("in", 0) == ref.sent[p]
            assert got.get("in", 0) == (got.get("processed", 0) + got.get("dead", 0)
                                        + got.get("duplicate", 0))
            future = got.get("dead:future_ts", 0)
            assert ref.future[p] <= future <= ref.future[p] + ref.maybe_future[p]
            refused += future
            assert ref.wm[p] <= wm <= ref.wm_maybe[p]
            assert wm <= after + BOUND
        assert metrics.registry.get_sample_value(
            "shopstream_dead_letters_total", {"reason": "future_ts"}) == refused

    try:
        example()
    finally:
        loop.run_until_complete(redis.aclose())
        loop.close()

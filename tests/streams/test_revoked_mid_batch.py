"""Partitions revoked while a batch is in flight (a rebalance during the loads): the batch
still lands, the loop goes on, and the partitions taken up again end exact (real broker, real
redis-server)."""

from __future__ import annotations

from typing import Any

import pytest

from shopstream.agents.registry import build_agents
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.replay import replay_lines
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.streams.batch import BatchProcessor, Record
from tests.streams.exact import assert_exact
from tests.streams.logs import build_log
from tests.support import Infra, read_records, run_async

pytestmark = pytest.mark.integration

#: Takes of this many records: many batches, so revocations fall in the middle of the log.
BATCH = 6


def test_a_revocation_during_the_loads_neither_crashes_the_loop_nor_loses_events(
        infra: Infra) -> None:
    log = build_log(1_500, seed=2031, oversized=0)
    s = infra.settings(agents="event_stats,funnel,coupons")
    replay_lines(s, log.lines, producer=EnvelopeProducer(s, max_events=20))
    recs = sorted((Record(p, o, v) for p, o, v, _ in read_records(s)),
                  key=lambda r: (r.offset, r.partition))
    revoked_at = {3, 9}
    seen: list[int] = []

    async def run() -> None:
        r = make_redis(s)
        agents = build_agents(s, r)
        proc = BatchProcessor(s, RedisState(r, s.app_id, s.events_topic), agents,
                              DeadLetterSink(RecordProducer(s), s.dead_letter_topic), Metrics())
        coupons = next(a for a in agents if a.name == "coupons")
        load = coupons.load
        turn = [0]

        async def load_then_revoke(batches: Any) -> Any:
            loaded = await load(batches)
            if turn[0] in revoked_at:
                seen.append(turn[0])
                proc.forget(list(range(s.partitions)))
            return loaded

        coupons.load = load_then_revoke  # type: ignore[method-assign]
        for i in range(0, len(recs), BATCH):
            turn[0] = i // BATCH
            await proc.process(recs[i:i + BATCH])
        for agent in agents:
            if (closer := getattr(agent, "close", None)) is not None:
                await closer()
        await r.aclose()

    run_async(run())
    assert sorted(seen) == sorted(revoked_at)
    assert_exact(s, log)

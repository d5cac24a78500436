"""A fence beyond the partition's log (topic recreated, broker lost its data while Redis kept
its state) is refused loudly, nothing is applied on top of it, and ``shopstream reset`` is the
explicit way out."""

from __future__ import annotations

import pytest
import redis

from shopstream.cli import main
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.partitioner import partition_for
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks import keys
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.streams.batch import BatchProcessor, Record
from tests.support import counts, read_records, run_async, settings_env

pytestmark = [pytest.mark.integration]

EVENT = {"type": "page_view", "ts": 1_794_326_400_000, "user_id": "u1", "page": "home"}


async def _process(settings, log_end):
    r = make_redis(settings)
    metrics = Metrics()
    proc = BatchProcessor(settings, RedisState(r, settings.app_id, settings.events_topic), [],
                          DeadLetterSink(RecordProducer(settings), settings.dead_letter_topic),
                          metrics)
    proc.log_end = log_end
    await proc.process([Record(p, o, v) for p, o, v, _ in read_records(settings)])
    await r.aclose()
    return metrics


def test_fence_ahead_of_the_log_is_refused_until_reset(settings, monkeypatch, capsys):
    prod = EnvelopeProducer(settings, max_events=1)
    for i in range(3):
        prod.add({**EVENT, "event_id": f"e{i}"})
    prod.flush()
    p = partition_for("u1", settings.partitions)
    r = redis.Redis.from_url(settings.redis_url)
    r.hset(keys.fence(settings.app_id, settings.events_topic, p), mapping={"offset": 1000,
                                                                          "wm": 0})
    metrics = run_async(_process(settings, lambda _p: 3))
    assert counts(settings) == {}, "nothing may be applied on top of a fence beyond the log"
    assert metrics.fence_ahead.labels(str(p))._value.get() == 1

    for var, value in settings_env(settings).items():
        monkeypatch.setenv(var, value)
    assert main(["reset"]) == 2
    assert r.exists(keys.fence(settings.app_id, settings.events_topic, p))
    out = capsys.readouterr().out
    assert "1 fence" in out and "nothing deleted" in out
    assert main(["reset", "--yes"]) == 0
    assert not r.keys(f"{settings.app_id}:*")

    run_async(_process(settings, lambda _p: 3))
    assert counts(settings)["processed"] == 3
    r.close()

"""One event from the future must not stop the shop's numbers.

Through a real broker, redis-server, worker and API: events stamped in 2099 (one per
partition) are refused by the API (``invalid_field`` on ``ts``, the bound in the detail) and,
sent straight to Kafka, dead-lettered ``future_ts`` by the worker. No watermark moves past the
bound, real events sent afterwards are counted (not late), no cart timer fires early and the
anomaly judge stays in the present. The bound is judged against the Kafka record's timestamp,
so a record stamped long ago by its producer is judged against that time, not today's.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from confluent_kafka import Producer

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.partitioner import partition_for
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.replay import replay_lines
from shopstream.sinks import keys
from shopstream.sinks.anomalies import keys as ak
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.funnel import keys as funnel_keys
from shopstream.sinks.ops import keys as ok
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.streams import rebuild
from shopstream.streams.batch import BatchProcessor, Record
from tests.shopstream.test_api_events import post, start_api
from tests.support import counts, read_records, users_by_partition, wait_until

pytestmark = pytest.mark.integration

MIN = 60_000
#: 2099-01-01T00:00:00Z, inside the schema's 2000..2100 range.
FUTURE = 4_070_908_800_000
#: 2026-11-11T00:00:00+08:00: a producer's clock long before today.
LONG_AGO = 1_794_326_400_000
#: The default cart recovery's first step.
FIRST_STEP_MS = 60 * MIN


def lines(events: list[dict[str, Any]]) -> list[bytes]:
    return [codec.dumps(ev) for ev in events]


def orders(users: list[str], ts: int, tag: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for u in users:
        order = f"{tag}-{u}"
        out.append({"event_id": f"o-{order}", "type": "order_submit", "ts": ts, "user_id": u,
                    "order_id": order, "amount": 5_000,
                    "items": [{"sku": "s1", "qty": 1, "price": 5_000}]})
        out.append({"event_id": f"p-{order}", "type": "payment", "ts": ts + 1_000, "user_id": u,
                    "order_id": order, "amount": 5_000, "status": "success"})
    return out


def produce_stamped(settings: Settings, event: dict[str, Any], create_time: int) -> None:
    """One record whose producer stamped it ``create_time`` (Kafka's CreateTime)."""
    p = Producer({"bootstrap.servers": settings.bootstrap_servers})
    p.produce(settings.events_topic, codec.dumps(event), timestamp=create_time,
              partition=partition_for(event["user_id"], settings.partitions))
    assert p.flush(10) == 0


def test_future_events_are_refused_and_move_no_watermark(infra, spawn, start_worker) -> None:
    s = infra.settings()
    n = s.partitions
    now = int(time.time() * 1000)
    buyers = users_by_partition(n, "buyer")
    carts = users_by_partition(n, "cart")

    # Stamped by its producer long ago: 6 minutes ahead of that stamp is the future, 4 not
    # (today both are in the past).
    produce_stamped(s, {"event_id": "old-6", "type": "page_view", "ts": LONG_AGO + 6 * MIN,
                        "user_id": buyers[1], "page": "x"}, LONG_AGO)
    produce_stamped(s, {"event_id": "old-4", "type": "page_view", "ts": LONG_AGO + 4 * MIN,
                        "user_id": buyers[1], "page": "x"}, LONG_AGO)

    # Real traffic a quarter of an hour ago: orders on every partition, carts left behind.
    before = orders(buyers, now - 15 * MIN, "early") + [
        {"event_id": f"c-{u}", "type": "cart_add", "ts": now - 15 * MIN, "user_id": u,
         "sku": "s2", "qty": 1, "price": 9_900} for u in carts]
    replay_lines(s, lines(before))
    worker = start_worker(s)
    wait_until(lambda: counts(s).get("in", 0) >= len(before) + 2, 120, "the early events")

    # The API refuses an event from the future and takes one from now.
    port = start_api(s, spawn)
    status, body = post(port, codec.dumps({"event_id": "api-future", "type": "page_view",
                                           "ts": FUTURE, "user_id": buyers[0], "page": "x"}))
    assert status == 400 and body["rejected"] == 1
    res = body["results"][0]
    assert res["reason"] == "invalid_field" and res["error"]["field"] == "ts"
    assert "max_future_ms=300000" in res["detail"] and str(FUTURE) in res["detail"]
    status, body = post(port, codec.dumps({"event_id": "api-now", "type": "page_view",
                                           "ts": now, "user_id": buyers[0], "page": "x"}))
    assert status == 200 and body["accepted"] == 1

    # Straight to Kafka, past the API: one event from 2099 per partition; then real traffic.
    future = [{"event_id": f"f-{u}", "type": "page_view", "ts": FUTURE, "user_id": u,
               "page": "x"} for u in buyers]
    replay_lines(s, lines(future))
    after = orders(buyers, now - MIN, "late")
    replay_lines(s, lines(after))
    total = 1 + len(before) + len(future) + len(after) + 2
    wait_until(lambda: counts(s).get("in", 0) >= total, 120, "every event")

    c = counts(s)
    assert c["in"] == total
    assert c["dead"] == c["dead:future_ts"] == n + 1
    assert c["processed"] == total - n - 1
    assert c["in"] == c["processed"] + c["dead"] + c.get("duplicate", 0)
    dead = {}
    for _, _, value, headers in read_records(s, s.dead_letter_topic):
        h = {k: v.decode() for k, v in headers}
        dead[codec.loads(value)["event_id"]] = h
    assert sorted(dead) == sorted([f"f-{u}" for u in buyers] + ["old-6"])
    assert {h["reason"] for h in dead.values()} == {"future_ts"}
    assert "max_future_ms=300000" in dead["old-6"]["detail"]

    r = redis.Redis.from_url(s.redis_url)
    try:
        bound = int(time.time() * 1000) + s.max_future_ms
        marks = [int(r.hget(keys.fence(s.app_id, s.events_topic, p), "wm") or 0)
                 for p in range(n)]
        assert all(now - 15 * MIN <= wm <= bound for wm in marks), marks
        # The real orders after the future events count; nothing was ignored as late.
        late = sum(int(r.get(ok.late_key(s.app_id, p)) or 0)
                   + int(r.get(funnel_keys.late_key(s.app_id, p)) or 0) for p in range(n))
        assert late == 0
        late_minute = (now - MIN) // MIN * MIN
        pulse = [r.hgetall(ok.minute_key(s.app_id, p, late_minute)) for p in range(n)]
        assert sum(int(v) for row in pulse for k, v in row.items()
                   if k.startswith(b"o|")) == len(buyers)
        # Every abandoned cart still waits for its first step: no timer fired.
        for p, u in enumerate(carts):
            assert r.zscore(coupon_keys(s.app_id, p).timers, f"c|{u}") == (
                now - 15 * MIN + FIRST_STEP_MS)
        # The judge judged what is final and did not walk on towards 2099.
        wait_until(lambda: r.hget(ak.anomaly_state_key(s.app_id), "judged"), 60, "a judgement")
        time.sleep(5)  # a few of the judge's 2-second steps
        assert int(r.hget(ak.anomaly_state_key(s.app_id), "judged")) <= int(time.time() * 1000)
    finally:
        r.close()
    assert worker.popen.poll() is None


async def apply_read_back(s: Settings, first: int, last: int) -> None:
    """Records [first, last] of partition 0 read from Kafka, with their timestamps, through
    a new batch processor: a restarted worker, which rebuilds its dedup memory from Kafka."""
    r = make_redis(s)
    proc = BatchProcessor(s, RedisState(r, s.app_id, s.events_topic), [],
                          DeadLetterSink(RecordProducer(s), s.dead_letter_topic), Metrics())
    rows = rebuild.read_records(s, s.events_topic, 0, first, last)
    await proc.process([Record(0, *row) for row in rows])
    await r.aclose()


async def test_a_rebuild_judges_each_record_as_its_first_read_did(settings: Settings) -> None:
    """An event refused as from the future stays refused when the partition is read again
    later (today, when its time has long come): the rebuilt dedup memory matches the state."""
    s = settings
    user = users_by_partition(s.partitions, "r")[0]

    def view(ts: int) -> dict[str, Any]:
        return {"event_id": "x", "type": "page_view", "ts": ts, "user_id": user, "page": "x"}

    produce_stamped(s, view(LONG_AGO + 6 * MIN), LONG_AGO)  # from the future when sent
    produce_stamped(s, view(LONG_AGO + MIN), LONG_AGO + MIN)  # not a repeat of a refused one
    await apply_read_back(s, 0, 1)
    produce_stamped(s, view(LONG_AGO + MIN + 1), LONG_AGO + 2 * MIN)  # a repeat
    await apply_read_back(s, 2, 2)
    c = counts(s)
    assert (c["in"], c["processed"], c["dead:future_ts"], c["duplicate"]) == (3, 1, 1, 1)
    r = redis.Redis.from_url(s.redis_url)
    assert int(r.hget(keys.fence(s.app_id, s.events_topic, 0), "wm")) == LONG_AGO + MIN + 1
    r.close()

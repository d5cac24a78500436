"""State knows the log it was built from: a recreated topic under existing fences is refused at
once (nothing skipped, nothing mixed, no blocking re-read), ``shopstream reset --yes`` lets a
running worker start over with every event of the new log, and a partition without a fence
is read from the log's beginning whatever offsets the consumer group committed."""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from shopstream.cli import main
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.topics import ensure_topics
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.sinks.reset import delete_app_state
from shopstream.streams.batch import BatchProcessor, Record
from tests.support import counts, new_port, read_records, run_async, settings_env, wait_until

pytestmark = [pytest.mark.integration]

TS = int(time.time() * 1000) - 600_000


def _produce(settings, first: int, n: int, users: int = 12) -> None:
    """``n`` page views, one record each, spread over the partitions by user."""
    prod = EnvelopeProducer(settings, max_events=1)
    for i in range(first, first + n):
        prod.add({"event_id": f"e{i}", "type": "page_view", "page": "home", "ts": TS + i,
                  "user_id": f"u{i % users}"})
    prod.flush()


def _recreate_topic(settings) -> None:
    """Delete the events topic and create it again, empty: a new log under the same name."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    for fut in admin.delete_topics([settings.events_topic], operation_timeout=10).values():
        fut.result()
    wait_until(lambda: settings.events_topic not in admin.list_topics(timeout=5).topics, 20,
               "topic deleted")
    wait_until(lambda: _created(settings), 20, "topic created again")


def _created(settings) -> bool:
    try:
        ensure_topics(settings)
    except Exception:  # noqa: BLE001 - the broker may still be deleting it
        return False
    return True


def _processor(settings, metrics: Metrics):
    r = make_redis(settings)
    from shopstream.kafka_io.producer import RecordProducer

    proc = BatchProcessor(settings, RedisState(r, settings.app_id, settings.events_topic), [],
                          DeadLetterSink(RecordProducer(settings), settings.dead_letter_topic),
                          metrics)
    return r, proc


async def _process_log(settings, proc: BatchProcessor) -> None:
    recs = sorted((Record(p, o, v) for p, o, v, _ in read_records(settings)),
                  key=lambda rec: (rec.offset, rec.partition))
    for i in range(0, len(recs), 50):
        await proc.process(recs[i:i + 50])


def test_a_recreated_topic_under_existing_fences_is_refused_at_once(settings, caplog):
    stamped: list[int] = []
    refused_while_running: list[int] = []

    async def scenario() -> tuple[Metrics, Metrics, float]:
        nonlocal refused_while_running
        running = Metrics()
        r, worker = _processor(settings, running)
        _produce(settings, 0, 60)
        await _process_log(settings, worker)
        assert counts(settings)["processed"] == 60
        stamped.extend(sorted({p for p, _, _, _ in read_records(settings)}))
        _recreate_topic(settings)
        _produce(settings, 1000, 90)  # more records than before: every fence lies inside
        started = time.monotonic()
        # The worker that built the state meets the new log, and so does a fresh one.
        await _process_log(settings, worker)
        refused_while_running = sorted(worker.refusals())
        fresh = Metrics()
        r2, newcomer = _processor(settings, fresh)
        await _process_log(settings, newcomer)
        elapsed = time.monotonic() - started
        assert counts(settings)["processed"] == 60, "nothing of the new log skipped or mixed in"
        # `shopstream reset --yes`, then the running worker's next records: it takes the
        # partitions up and applies the new log from its beginning, not from these records.
        await delete_app_state(r, settings.app_id)
        seen = {(p, o) for p, o, _, _ in read_records(settings)}
        _produce(settings, 2000, 12)
        await worker.process([Record(p, o, v) for p, o, v, _ in read_records(settings)
                              if (p, o) not in seen])
        assert worker.refusals() == {}
        await r.aclose()
        await r2.aclose()
        return running, fresh, elapsed

    with caplog.at_level(logging.ERROR):
        running, fresh, elapsed = run_async(scenario())
    assert counts(settings) == {"in": 102, "processed": 102}
    assert refused_while_running == stamped
    assert elapsed < 10, f"refused at once, not after a blocking re-read ({elapsed:.1f}s)"
    refused = [p for p in range(settings.partitions)
               if fresh.log_mismatch.labels(str(p))._value.get() == 1]
    assert refused == stamped and len(stamped) >= 2
    assert all(running.log_mismatch.labels(str(p))._value.get() == 0 for p in stamped), \
        "taken up again after the reset"
    assert any("another log" in rec.getMessage() and "shopstream reset" in rec.getMessage()
               for rec in caplog.records)


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def _pipeline(port: int) -> dict | None:
    status, body = _get(port, "/v1/pipeline")
    return json.loads(body) if status == 200 else None


def test_events_produced_while_refused_are_all_applied_after_reset(settings, start_worker, spawn,
                                                                     monkeypatch):
    async def build_state() -> None:
        r, proc = _processor(settings, Metrics())
        await _process_log(settings, proc)
        await r.aclose()

    _produce(settings, 0, 40)
    run_async(build_state())
    stamped = sorted({p for p, _, _, _ in read_records(settings)})
    _recreate_topic(settings)
    api_port = new_port()
    spawn(settings, "api", "--port", str(api_port))

    worker = start_worker(settings)
    port = int(worker.args[2])
    _produce(settings, 5000, 200)

    def refused() -> bool:
        status, body = _get(port, "/readyz")
        return status == 503 and b'"state_matches_log":false' in body.replace(b" ", b"")

    wait_until(refused, 60, "/readyz not ready: state of another log")
    status, body = _get(port, "/metrics")
    assert b"shopstream_log_mismatch{" in body and b"} 1.0" in body
    assert "another log" in worker.log_text()
    # The API says so too, with the remedy, and shows no fence above its log end as healthy.
    pipe = wait_until(lambda: _pipeline(api_port), 30, "api up")
    assert pipe["remedy"] == "shopstream reset --yes"
    assert [p["partition"] for p in pipe["partitions"] if p["state"] == "other_log"] == stamped
    assert pipe["totals"]["refused"] == len(stamped)
    for part in pipe["partitions"]:
        assert part["state"] != "ok" or part["applied_offset"] < (part["log_end"] or 0) or \
            part["applied_offset"] == -1
    _produce(settings, 6000, 100)  # still refused: kept for after the reset
    time.sleep(3)
    assert counts(settings)["processed"] == 40

    for var, value in settings_env(settings).items():
        monkeypatch.setenv(var, value)
    assert main(["reset", "--yes"]) == 0
    # The same worker, not restarted, applies every event of the new log, none twice.
    want = {"in": 300, "processed": 300}
    wait_until(lambda: {k: counts(settings).get(k) for k in want} == want, 60,
               "every event produced while refused applied after the reset")
    wait_until(lambda: _get(port, "/readyz")[0] == 200, 30, "/readyz ready again")
    pipe = wait_until(lambda: _pipeline(api_port), 30, "pipeline")
    assert pipe["remedy"] is None and {p["state"] for p in pipe["partitions"]} == {"ok"}
    _produce(settings, 7000, 30)
    wait_until(lambda: counts(settings).get("processed") == 330, 30, "new events applied")
    assert counts(settings).get("duplicate", 0) == 0
    assert worker.popen.poll() is None


def test_without_a_fence_a_partition_is_read_from_the_beginning(settings, start_worker):
    _produce(settings, 0, 120)
    # The consumer group committed offsets at the log's end (a previous worker, then the
    # state was reset): a worker must still apply the whole log.
    ends = {p: 0 for p in range(settings.partitions)}
    for p, offset, _, _ in read_records(settings):
        ends[p] = max(ends[p], offset + 1)
    c = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": settings.app_id,
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(settings.events_topic, p, end) for p, end in ends.items()],
             asynchronous=False)
    c.close()
    assert sum(ends.values()) == 120

    start_worker(settings)
    _produce(settings, 1000, 24)
    wait_until(lambda: counts(settings).get("processed") == 144, 60,
               "the whole log applied, not only what came after the committed offsets")

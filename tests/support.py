"""Test support: real infra handles, worker processes, and waiting helpers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from shopstream.core.settings import Settings, load_settings
from shopstream.infra import free_port
from shopstream.kafka_io.partitioner import partition_for
from shopstream.kafka_io.topics import ensure_topics
from shopstream.sinks import keys

ROOT = Path(__file__).resolve().parent.parent
#: The name under which a fault case (tests/chaos) hands its row of the fault table to its
#: report; tests/conftest.py prints the table at the end.
FAULT_ROW = "fault_row"


@dataclass
class Infra:
    broker: str
    redis_url: str

    def settings(self, **overrides: Any) -> Settings:
        """Settings with fresh topic names and app id, so tests never see each other's data."""
        suffix = uuid.uuid4().hex[:8]
        values: dict[str, Any] = {
            "broker": self.broker,
            "redis_url": self.redis_url,
            "app_id": f"t{suffix}",
            "events_topic": f"events-{suffix}",
            "dead_letter_topic": f"dead-{suffix}",
            "alerts_topic": f"alerts-{suffix}",
            "pushes_topic": f"pushes-{suffix}",
            "customer_events_topic": f"customer-events-{suffix}",
            "partitions": 4,
            "state_dir": f"/tmp/shopstream-test-{suffix}",
        }
        values.update(overrides)
        s = load_settings(env={}, **values)
        ensure_topics(s)
        return s


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment for a subprocess that should run with ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    mapping = {
        "SHOPSTREAM_BROKER": settings.broker,
        "SHOPSTREAM_REDIS_URL": settings.redis_url,
        "SHOPSTREAM_APP_ID": settings.app_id,
        "SHOPSTREAM_PARTITIONS": settings.partitions,
        "SHOPSTREAM_EVENTS_TOPIC": settings.events_topic,
        "SHOPSTREAM_DEAD_LETTER_TOPIC": settings.dead_letter_topic,
        "SHOPSTREAM_ALERTS_TOPIC": settings.alerts_topic,
        "SHOPSTREAM_PUSHES_TOPIC": settings.pushes_topic,
        "SHOPSTREAM_STATE_DIR": settings.state_dir,
        "SHOPSTREAM_ADMIN_TOKEN": settings.admin_token,
        "SHOPSTREAM_BATCH_MAX_RECORDS": settings.batch_max_records,
        "SHOPSTREAM_DEDUP_HORIZON_MS": settings.dedup_horizon_ms,
    }
    env.update({k: str(v) for k, v in mapping.items() if v is not None})
    env["PYTHONPATH"] = str(ROOT)
    return env


class Proc:
    """A shopstream subprocess (worker, api) with its log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "shopstream", *args],
            env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._asked = False

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        self.ask_to_stop()
        self.wait_stopped()

    def ask_to_stop(self) -> None:
        """SIGTERM without waiting, so several processes shut down at once."""
        if self.popen.poll() is None and not self._asked:
            self.popen.send_signal(signal.SIGTERM)
            self._asked = True

    def wait_stopped(self) -> None:
        """Wait for the shutdown ``ask_to_stop`` began; SIGKILL after 20 s."""
        if self.popen.poll() is None:
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def stop_broker(proc: subprocess.Popen[bytes]) -> None:
    """Stop a test's broker at teardown with SIGKILL: it keeps records in memory only, and on
    SIGTERM it waits 5 s for the clients a test left connected before it is killed anyway."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def wait_until(pred: Callable[[], Any], timeout_s: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def counts(settings: Settings) -> dict[str, int]:
    """Reconciliation counters summed over partitions."""
    r = redis.Redis.from_url(settings.redis_url)
    total: dict[str, int] = {}
    for p in range(settings.partitions):
        for k, v in r.hgetall(keys.counts(settings.app_id, p)).items():
            total[k.decode()] = total.get(k.decode(), 0) + int(v)
    r.close()
    return total


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def new_port() -> int:
    return free_port()


def read_records(settings: Settings, topic: str | None = None, timeout_s: float = 10.0):
    """Every record now in ``topic`` (default: events), as (partition, offset, value, headers)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from shopstream.kafka_io.client_config import librdkafka_config

    topic = topic or settings.events_topic
    c = Consumer({**librdkafka_config(settings), "group.id": "test-reader",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    meta = c.list_topics(topic, timeout=timeout_s).topics[topic]
    parts = sorted(meta.partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    eof: set[int] = set()
    out = []
    deadline = time.monotonic() + timeout_s
    while len(eof) < len(parts) and time.monotonic() < deadline:
        for m in c.consume(10_000, timeout=0.5):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise RuntimeError(m.error())
            out.append((m.partition(), m.offset(), m.value(), m.headers() or []))
    c.close()
    return out


async def process_topic(settings: Settings, agents=None, batch_records: int = 200):
    """Drive the batch loop without Faust over every record now in the events topic.

    For agent tests: real Kafka, real Redis, no consumer group. The loop reports to the
    registry the agents report to (one per worker, as the worker wires it). Returns the
    processor.
    """
    from shopstream.agents.registry import build_agents
    from shopstream.kafka_io.producer import RecordProducer
    from shopstream.monitoring.metrics import Metrics
    from shopstream.sinks.dead_letters import DeadLetterSink
    from shopstream.sinks.redis_state import RedisState, make_redis
    from shopstream.streams.batch import BatchProcessor, Record

    r = make_redis(settings)
    state = RedisState(r, settings.app_id, settings.events_topic)
    agents = agents if agents is not None else build_agents(settings, r)
    metrics = next((m for a in agents if isinstance(m := getattr(a, "metrics", None), Metrics)),
                   Metrics())
    proc = BatchProcessor(settings, state, agents,
                          DeadLetterSink(RecordProducer(settings), settings.dead_letter_topic),
                          metrics)
    recs = [Record(p, o, v) for p, o, v, _ in read_records(settings)]
    recs.sort(key=lambda r: (r.offset, r.partition))
    for i in range(0, len(recs), batch_records):
        await proc.process(recs[i:i + batch_records])
    await r.aclose()
    return proc


def users_by_partition(partitions: int, prefix: str = "u") -> list[str]:
    """One user id per partition (the first ``prefix<k>`` that lands there), in partition
    order."""
    found: dict[int, str] = {}
    k = 0
    while len(found) < partitions:
        uid = f"{prefix}{k}"
        found.setdefault(partition_for(uid, partitions), uid)
        k += 1
    return [found[p] for p in range(partitions)]

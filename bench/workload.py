"""The baselines' shared workload: one event per Kafka record, keyed by user_id.

Both baselines read the same topic layout, so ``bench/run.py`` can produce once and time
each peer on identical records. Uses only the main venv (shopstream's producer).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from shopstream.settings import Settings  # noqa: E402
from shopstream.simulate import Simulator  # noqa: E402
from streams.producer import make_producer  # noqa: E402


def generate(events: int, users: int, rate: float, seed: int) -> list[dict[str, Any]]:
    """The simulated promotion log (all event types), time-ordered."""
    return list(Simulator(users, rate, seed).events(events))


def create_topic(settings: Settings, topic: str, partitions: int) -> None:
    """Create the per-event topic up front so that producing never races auto-creation."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    for fut in admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    ).values():
        fut.result()


def produce_per_event(settings: Settings, topic: str, events: list[dict[str, Any]]) -> float:
    """One record per event keyed by user_id (murmur2, like Java clients); returns seconds."""
    producer = make_producer(settings)
    t0 = time.perf_counter()
    for ev in events:
        while True:
            try:
                producer.produce(topic, orjson.dumps(ev), key=str(ev["user_id"]).encode())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} records not delivered")
    return time.perf_counter() - t0

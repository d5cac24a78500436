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

from shopstream.core.settings import Settings  # noqa: E402
from shopstream.kafka_io.producer import make_producer  # noqa: E402
from shopstream.simulate import Simulator  # noqa: E402


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


def measure_quix(broker: str, topic: str, expect: int, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run ``bench/baseline_quix.py`` in its own venv (``bench/setup_quix.sh``) on ``topic``."""
    import subprocess
    import tempfile

    python = ROOT / ".venv-quix" / "bin" / "python"
    out = Path(tempfile.mkdtemp(prefix="quix-baseline-")) / "result.json"
    subprocess.run(
        [str(python), str(ROOT / "bench" / "baseline_quix.py"), "--broker",
         broker.split("://", 1)[-1], "--topic", topic, "--expect", str(expect), "--out", str(out)],
        check=True, timeout=timeout_s,
    )
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    return result


def quix_selftest(events: int, users: int, rate: float, seed: int) -> dict[str, Any]:
    """Embedded broker, generated workload, the Quix baseline, check against the reference."""
    import os

    from bench.funnel_reference import as_rows, reference_funnel
    from shopstream.infra import start_broker, stop

    log = generate(events, users, rate, seed)
    reference = as_rows(reference_funnel(log))
    proc, broker = start_broker()
    try:
        settings = Settings(broker=broker)
        topic = "baseline-events-quix"
        create_topic(settings, topic, 4)
        produce_per_event(settings, topic, log)
        result = measure_quix(broker, topic, len(log))
    finally:
        stop(proc)
    return {"baseline": "quixstreams", "events": len(log), "seconds": round(result["seconds"], 2),
            "events_per_s": round(result["events_per_s"]), "nproc": os.cpu_count(),
            "equal_to_reference": result["counts"] == reference}


if __name__ == "__main__":
    import argparse
    import json

    p = argparse.ArgumentParser(description="Quix baseline on the embedded broker")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    print(json.dumps(quix_selftest(a.events, a.users, a.rate, a.seed), indent=2))

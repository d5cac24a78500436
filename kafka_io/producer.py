"""The one Kafka producer wrapper: delivery reports, named timeouts, a flush that never blocks.

Every producer of shopstream (API, replay, simulator, dead letters, push outbox, alerts) goes
through ``RecordProducer``, so a failed delivery always surfaces the same way: one
``ProduceError`` naming the topic and how many records did not make it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from confluent_kafka import KafkaException, Producer

from shopstream.core.settings import Settings
from shopstream.kafka_io.client_config import kafka_config, librdkafka_config
from shopstream.kafka_io.errors import ProduceError


def make_producer(settings: Settings, **extra: Any) -> Producer:
    """A bare confluent-kafka producer that partitions keys like Java clients (murmur2).

    For code that measures the client itself (benchmarks); everything else wants
    ``RecordProducer``.
    """
    return Producer(producer_config(settings, **extra))


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings of every shopstream producer."""
    cfg = kafka_config(settings)
    conf: dict[str, Any] = {
        **librdkafka_config(settings),
        "partitioner": "murmur2_random",
        "linger.ms": 10,
        "compression.type": cfg.compression,
        "message.max.bytes": max(settings.max_record_bytes * 2, 1_048_576),
        "queue.buffering.max.kbytes": 1_048_576,
        "enable.idempotence": cfg.idempotent,
    }
    if not cfg.idempotent:
        # Retries keep their order with one request in flight per broker; a duplicate a
        # retry may add is dropped by the consumers' keys (event_id, source, push_id).
        conf["max.in.flight.requests.per.connection"] = 1
    conf.update(extra)
    return conf


class RecordProducer:
    """Records to any topic; ``flush``/``flush_async`` raise if the broker did not take them all."""

    def __init__(self, settings: Settings, client: Producer | None = None, **extra: Any) -> None:
        self._client = client or make_producer(settings, **extra)
        self.timeout_s = settings.produce_timeout_s
        #: Failed deliveries per topic since the last flush, with the first reason.
        self._failed: Counter[str] = Counter()
        self._reason: dict[str, str] = {}

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            topic = msg.topic() if msg is not None else "?"
            self._failed[topic] += 1
            self._reason.setdefault(topic, str(err))

    def produce(self, topic: str, value: bytes, *, key: bytes | None = None,
                partition: int | None = None,
                headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
        """Queue one record; waits (polling) while the client's queue is full."""
        kwargs: dict[str, Any] = {"value": value, "on_delivery": self._on_delivery}
        if key is not None:
            kwargs["key"] = key
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = headers
        while True:
            try:
                self._client.produce(topic, **kwargs)
                break
            except BufferError:
                self._client.poll(0.05)
            except KafkaException as exc:
                raise ProduceError(topic, 1, str(exc)) from exc
        self._client.poll(0)

    def broker_reachable(self, timeout_s: float) -> bool:
        """Whether the brokers answer a metadata request within ``timeout_s`` (readiness)."""
        try:
            self._client.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait for every queued record's delivery report (command-line tools)."""
        self._check(self._client.flush(self.timeout_s if timeout_s is None else timeout_s))

    async def flush_async(self, timeout_s: float | None = None) -> None:
        """``flush`` for servers and workers: the wait runs in a thread, not on the event loop."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        self._check(await asyncio.to_thread(self._client.flush, wait))

    def purge(self) -> None:
        """Drop the records still queued or in flight, once they were reported as not
        delivered: the client's destruction would otherwise wait for their timeout."""
        self._client.purge()
        self._client.flush(0)

    def _check(self, left: int) -> None:
        if self._failed:
            failed, reasons = self._failed, self._reason
            self._failed, self._reason = Counter(), {}
            topic, n = failed.most_common(1)[0]
            raise ProduceError(topic, n + left, reasons.get(topic, "delivery failed"))
        if left:
            raise ProduceError("*", left, "not acknowledged in time")

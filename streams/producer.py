"""Envelope producer: events grouped by the partition of their user_id, many per Kafka record.

Faust pays ~80 us per Kafka record whatever it holds, so events travel in JSON-array
envelopes. Grouping by ``partition_for(user_id)`` keeps each user's events in order on
one partition, the same one a keyed single-event record would reach.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import KafkaException, Producer

from shopstream.errors import ShopstreamError
from shopstream.settings import Settings
from streams import codec
from streams.partitioner import partition_for

log = logging.getLogger(__name__)


class ProduceError(ShopstreamError):
    """The broker did not accept a record."""

    retriable = True


def make_producer(settings: Settings, **extra: Any) -> Producer:
    """A confluent-kafka producer that partitions keys like Java clients (murmur2)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "partitioner": "murmur2_random",
        "linger.ms": 10,
        "compression.type": "none",
        "message.max.bytes": max(settings.max_record_bytes * 2, 1_048_576),
        "queue.buffering.max.kbytes": 1_048_576,
        "enable.idempotence": False,
    }
    conf.update(extra)
    return Producer(conf)


class EnvelopeProducer:
    """Buffers encoded events per partition and sends each buffer as one envelope record."""

    def __init__(
        self,
        settings: Settings,
        topic: str | None = None,
        max_events: int = 500,
        max_bytes: int = 256 * 1024,
        producer: Producer | None = None,
    ) -> None:
        self.topic = topic or settings.events_topic
        self.partitions = settings.partitions
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._producer = producer or make_producer(settings)
        self._buffers: dict[int, list[bytes]] = {}
        self._sizes: dict[int, int] = {}
        self._errors: list[str] = []
        #: Events handed to Kafka so far (envelope items plus raw records).
        self.events_sent = 0
        self.records_sent = 0

    def add(self, event: dict[str, Any]) -> int:
        """Queue one event object; returns its partition."""
        return self.add_encoded(codec.dumps(event), str(event.get("user_id", "")))

    def add_encoded(self, data: bytes, user_id: str) -> int:
        """Queue an already-encoded event object, keeping its bytes as they are."""
        part = partition_for(user_id, self.partitions)
        if len(data) >= self.max_bytes:
            # Too big to share a record: alone it is judged (and maybe dead-lettered) alone.
            self._produce(data, None, part)
            self.events_sent += 1
            return part
        buf = self._buffers.setdefault(part, [])
        buf.append(data)
        size = self._sizes.get(part, 0) + len(data) + 1
        self._sizes[part] = size
        if len(buf) >= self.max_events or size >= self.max_bytes:
            self._send(part)
        return part

    def add_raw(self, value: bytes, key: bytes | None = None, partition: int | None = None) -> None:
        """Send a record as it is (used by replay for lines that are not event objects)."""
        self._produce(value, key, partition)
        self.events_sent += 1

    def _send(self, part: int) -> None:
        buf = self._buffers.pop(part, None)
        self._sizes.pop(part, None)
        if not buf:
            return
        self._produce(b"[" + b",".join(buf) + b"]", None, part)
        self.events_sent += len(buf)

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def _produce(self, value: bytes, key: bytes | None, partition: int | None) -> None:
        kwargs: dict[str, Any] = {"value": value, "on_delivery": self._on_delivery}
        if key is not None:
            kwargs["key"] = key
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(self.topic, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise ProduceError(f"produce to {self.topic} failed: {exc}") from exc
        self.records_sent += 1
        self._producer.poll(0)

    def send_all(self) -> None:
        """Hand every partly filled envelope to the client without waiting for acks."""
        for part in list(self._buffers):
            self._send(part)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Send every buffer and wait until the broker has acknowledged all of them."""
        self.send_all()
        self._check(self._producer.flush(timeout_s), timeout_s)

    async def flush_async(self, timeout_s: float = 30.0) -> None:
        """``flush`` for servers: the wait for acks runs in a thread, not on the event loop."""
        self.send_all()
        self._check(await asyncio.to_thread(self._producer.flush, timeout_s), timeout_s)

    def _check(self, left: int, timeout_s: float) -> None:
        if left:
            raise ProduceError(f"{left} records to {self.topic} not delivered in {timeout_s}s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise ProduceError(f"{len(errors)} records to {self.topic} failed: {errors[0]}")

"""Envelope producer: events grouped by the partition of their routing key (the user_id for a
user's events), many per Kafka record.

Faust pays ~80 us per Kafka record whatever it holds, so events travel in JSON-array
envelopes. Grouping by ``partition_for(user_id)`` keeps each user's events in order on
one partition, the same one a keyed single-event record would reach. Room-wide events
(``schemas.events.ROOM_WIDE_TYPES``) are also copied to every other partition, in the same
position relative to the events queued around them.
"""

from __future__ import annotations

from typing import Any

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.partitioner import partition_for
from shopstream.kafka_io.producer import RecordProducer
from shopstream.schemas.events import KEY_FIELDS, ROOM_WIDE_TYPES
from shopstream.schemas.validate import validate_event


class EnvelopeProducer:
    """Buffers encoded events per partition and sends each buffer as one envelope record."""

    def __init__(
        self,
        settings: Settings,
        topic: str | None = None,
        max_events: int = 500,
        max_bytes: int = 256 * 1024,
        producer: RecordProducer | None = None,
    ) -> None:
        self.topic = topic or settings.events_topic
        self.partitions = settings.partitions
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._producer = producer or RecordProducer(settings)
        self._buffers: dict[int, list[bytes]] = {}
        self._sizes: dict[int, int] = {}
        #: Events handed to Kafka so far (envelope items plus raw records), copies not counted.
        self.events_sent = 0
        #: Copies of room-wide events handed to Kafka so far.
        self.copies_sent = 0
        #: Copies among each partition's buffered events.
        self._buffered_copies: dict[int, int] = {}
        self.records_sent = 0

    def add(self, event: dict[str, Any]) -> int:
        """Queue one event object; returns its partition."""
        room_wide = event.get("type") in ROOM_WIDE_TYPES and validate_event(event) is None
        key = event.get(KEY_FIELDS.get(str(event.get("type")), "user_id"), "")
        return self.add_encoded(codec.dumps(event), str(key), room_wide)

    def add_encoded(self, data: bytes, key: str, room_wide: bool = False) -> int:
        """Queue an already-encoded event object under its routing key (``routing_key``),
        keeping its bytes as they are; a room-wide event (a valid one: callers validate
        first) is queued for every partition, its key's one first."""
        part = partition_for(key, self.partitions)
        self._queue(data, part)
        if room_wide:
            for other in range(self.partitions):
                if other != part:
                    self._queue(data, other, copy=True)
        return part

    def _queue(self, data: bytes, part: int, copy: bool = False) -> None:
        if len(data) >= self.max_bytes:
            # Too big to share a record: alone it is judged (and maybe dead-lettered) alone.
            self._produce(data, None, part)
            self._count(1, int(copy))
            return
        buf = self._buffers.setdefault(part, [])
        buf.append(data)
        if copy:
            self._buffered_copies[part] = self._buffered_copies.get(part, 0) + 1
        size = self._sizes.get(part, 0) + len(data) + 1
        self._sizes[part] = size
        if len(buf) >= self.max_events or size >= self.max_bytes:
            self._send(part)

    def add_raw(self, value: bytes, key: bytes | None = None, partition: int | None = None) -> None:
        """Send a record as it is (used by replay for lines that are not event objects)."""
        self._produce(value, key, partition)
        self.events_sent += 1

    def _send(self, part: int) -> None:
        buf = self._buffers.pop(part, None)
        self._sizes.pop(part, None)
        copies = self._buffered_copies.pop(part, 0)
        if not buf:
            return
        self._produce(b"[" + b",".join(buf) + b"]", None, part)
        self._count(len(buf), copies)

    def _count(self, items: int, copies: int) -> None:
        self.events_sent += items - copies
        self.copies_sent += copies

    def _produce(self, value: bytes, key: bytes | None, partition: int | None) -> None:
        self._producer.produce(self.topic, value, key=key, partition=partition)
        self.records_sent += 1

    def send_all(self) -> None:
        """Hand every partly filled envelope to the client without waiting for acks."""
        for part in list(self._buffers):
            self._send(part)

    def broker_reachable(self, timeout_s: float) -> bool:
        return self._producer.broker_reachable(timeout_s)

    def flush(self, timeout_s: float | None = None) -> None:
        """Send every buffer and wait until the broker has acknowledged all of them."""
        self.send_all()
        self._producer.flush(timeout_s)

    async def flush_async(self, timeout_s: float | None = None) -> None:
        """``flush`` for servers: the wait for acks runs in a thread, not on the event loop."""
        self.send_all()
        await self._producer.flush_async(timeout_s)

    def purge(self) -> None:
        """Drop what was not delivered (see ``RecordProducer.purge``)."""
        self._buffers.clear()
        self._producer.purge()

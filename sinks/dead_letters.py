"""Dead-letter topic: the original bytes, the reason, and where they came from.

Published and flushed before the batch's fence moves, so a crash can repeat a dead letter
(consumers dedupe by the ``source`` header: topic/partition/offset/index) but never lose one.
"""

from __future__ import annotations

from shopstream.kafka_io.envelope import DeadLetter
from shopstream.kafka_io.producer import RecordProducer


class DeadLetterSink:
    def __init__(self, producer: RecordProducer, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    async def publish(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        for d in dead:
            self._producer.produce(self.topic, d.original, headers=d.headers())
        await self._producer.flush_async()

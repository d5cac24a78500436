"""Dead-letter topic: the original bytes, the reason, and where they came from.

Published and flushed before the batch's fence moves, so a crash can repeat a dead letter
(consumers dedupe by the ``source`` header: topic/partition/offset/index) but never lose one.
"""

from __future__ import annotations

import asyncio

from confluent_kafka import Producer

from streams.envelope import DeadLetter
from streams.producer import ProduceError


class DeadLetterSink:
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self.topic = topic
        self._errors: list[str] = []

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    async def publish(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        for d in dead:
            self._producer.produce(
                self.topic, value=d.original, headers=d.headers(), on_delivery=self._on_delivery
            )
        left = await asyncio.to_thread(self._producer.flush, 30.0)
        if left or self._errors:
            errors, self._errors = self._errors, []
            raise ProduceError(f"dead letters not delivered: {left} pending, errors {errors[:1]}")

"""Errors of the Kafka I/O layer."""

from __future__ import annotations

from shopstream.core.errors import ShopstreamError


class ProduceError(ShopstreamError):
    """The broker did not take some records; sending them again is safe (consumers dedup)."""

    retriable = True

    def __init__(self, topic: str, records: int, reason: str) -> None:
        super().__init__(f"{records} record(s) to {topic} not delivered: {reason}")
        self.topic = topic
        self.records = records


class TopicError(ShopstreamError):
    """Topics could not be created or described."""

    retriable = True

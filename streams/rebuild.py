"""Rebuild a partition's duplicate memory by re-reading Kafka after a restart or rebalance.

Redis holds the applied state and the fence; the event-id memory lives in the worker for
speed. When a worker takes over a partition, it re-reads the records from the newest
checkpoint whose watermark lies beyond the dedup horizon up to the fence, and replays the
same decode/validate/dedup decisions, so duplicates are recognised as if it never stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from shopstream.agents.base import PartitionBatch
from shopstream.core.settings import Settings
from shopstream.kafka_io.consumer import make_consumer
from shopstream.kafka_io.envelope import DeadLetter, decode_record, record_bound
from shopstream.kafka_io.partitioner import is_copy
from shopstream.schemas.events import Event
from shopstream.streams.dedup import Deduplicator
from shopstream.streams.errors import RebuildError

log = logging.getLogger(__name__)

#: A new replay checkpoint is recorded when the watermark moved this far since the last one.
CHECKPOINT_EVERY_MS = 1_000


def start_checkpoint(checkpoints: list[tuple[int, int]], watermark: int, horizon_ms: int) -> int:
    """Index of the checkpoint to replay from: the newest wholly beyond the horizon, else 0."""
    start = 0
    for i, (_, wm_before) in enumerate(checkpoints):
        if wm_before < watermark - horizon_ms:
            start = i
        else:
            break
    return start


def record_checkpoint(ckpts: list[tuple[int, int]], batch: PartitionBatch, first_offset: int,
                      horizon_ms: int, key: str) -> None:
    """Record in the batch's ops where a replay may start (``ckpts`` is the partition's list,
    kept in step), and drop checkpoints no replay will need."""
    if not ckpts or batch.watermark_before - ckpts[-1][1] >= CHECKPOINT_EVERY_MS:
        ckpts.append((first_offset, batch.watermark_before))
        batch.ops.zadd(key, batch.watermark_before, str(first_offset))
    keep_from = start_checkpoint(ckpts, batch.watermark, horizon_ms)
    for offset, _ in ckpts[:keep_from]:
        batch.ops.zrem(key, str(offset))
    del ckpts[:keep_from]


#: A record read again: offset, value, Kafka timestamp (epoch ms; None when it has none).
Row = tuple[int, bytes | None, int | None]


def read_partition(
    settings: Settings, topic: str, partition: int, first_offset: int, last_offset: int
) -> Iterator[Row]:
    """The records [first_offset, last_offset] still in a partition."""
    if last_offset < first_offset:
        return
    consumer = make_consumer(settings, "rebuild", {
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    try:
        start = first_offset if first_offset >= 0 else OFFSET_BEGINNING
        consumer.assign([TopicPartition(topic, partition, start)])
        while True:
            for msg in consumer.consume(10_000, timeout=0.1):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return
                    raise RebuildError(f"reading {topic}[{partition}] failed: {err}")
                offset = msg.offset()
                if offset is None:
                    continue
                if offset > last_offset:
                    return
                kind, stamp = msg.timestamp()
                yield offset, msg.value(), None if kind == TIMESTAMP_NOT_AVAILABLE else stamp
                if offset == last_offset:
                    return
    finally:
        consumer.close()


def log_start(settings: Settings, topic: str, partition: int, timeout_s: float = 10.0) -> int:
    """First offset still in a partition (its low watermark: 0 until retention removes any)."""
    consumer = make_consumer(settings, "rebuild", {"enable.auto.commit": False})
    try:
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout_s)
        return int(low)
    except KafkaException as exc:
        raise RebuildError(f"reading where {topic}[{partition}] starts failed: {exc}") from exc
    finally:
        consumer.close()


def read_records(
    settings: Settings, topic: str, partition: int, first_offset: int, last_offset: int
) -> list[Row]:
    """``read_partition`` as a list, for callers that run it in a thread."""
    return list(read_partition(settings, topic, partition, first_offset, last_offset))


def replay_dedup(
    settings: Settings,
    topic: str,
    partition: int,
    first_offset: int,
    last_offset: int,
    dedup: Deduplicator,
) -> int:
    """Feed records [first_offset, last_offset] of a partition into ``dedup``; returns count."""
    started = time.monotonic()
    seen = 0
    events: list[Event] = []
    dead: list[DeadLetter] = []
    rows = read_partition(settings, topic, partition, first_offset, last_offset)
    now_ms = int(time.time() * 1000)
    for offset, value, stamp in rows:
        events.clear()
        # The same judgement as when the record was first read: against its own timestamp.
        bound = record_bound(stamp, settings.max_future_ms, now_ms)
        decode_record(value, topic, partition, offset, settings.max_record_bytes, events, dead,
                      bound)
        dead.clear()
        for ev in events:
            if not is_copy(ev, partition, settings.partitions):
                dedup.is_duplicate(ev.event_id, ev.ts)
        seen += 1
    dedup.evict()
    log.info(
        "rebuilt %s[%d] dedup from %d..%d: %d records, %d ids in %.2fs",
        topic, partition, first_offset, last_offset, seen, len(dedup), time.monotonic() - started,
    )
    return seen

"""Kafka's murmur2 partitioner, as Java clients, aiokafka and librdkafka's murmur2_random use it.

Producers group events into envelopes by the partition their ``user_id`` maps to, so a user's
events land on one partition whether sent one per record (keyed) or in envelopes. Room-wide
events (``live_start``, ``live_end``) go to their user's partition and, as copies, to every
other one.
"""

from __future__ import annotations

from functools import lru_cache

from shopstream.schemas.events import ROOM_WIDE_TYPES, Event, routing_key

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """32-bit murmur2 of ``data`` exactly as org.apache.kafka.common.utils.Utils.murmur2."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length // 4
    for i in range(n4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length & 3
    tail = n4 * 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@lru_cache(maxsize=1 << 18)
def partition_for(key: str, partitions: int) -> int:
    """Partition of ``key`` among ``partitions``, as Kafka's default partitioner picks it."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def is_copy(event: Event, partition: int, partitions: int) -> bool:
    """A room-wide event's copy: on a partition other than its user's (see ROOM_WIDE_TYPES)."""
    return (event.type in ROOM_WIDE_TYPES
            and partition_for(routing_key(event), partitions) != partition)

"""Redis as the state store: one fenced, atomic Lua call per partition per batch.

The exactly-once effect: the fence hash of (group, topic, partition) holds the last applied
offset. A batch's changes land only if the fence still holds the offset read before the
batch was computed; a redelivered batch, or the part of it already applied, changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from shopstream.core.errors import ConfigError
from shopstream.core.settings import Settings
from shopstream.sinks import keys
from shopstream.sinks.errors import StaleFenceError

log = logging.getLogger(__name__)

Redis = aioredis.Redis | RedisCluster

_APPLY_LUA = (Path(__file__).parent / "apply_batch.lua").read_text()
_GET_MANY_LUA = (Path(__file__).parent / "get_many.lua").read_text()


def make_redis(settings: Settings) -> Redis:
    """Async client for the configured Redis or Redis Cluster."""
    if not settings.redis_url:
        raise ConfigError("redis_url: expected a redis:// URL, got nothing")
    wait = settings.redis_timeout_s
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, decode_responses=False,
                                     socket_timeout=wait, socket_connect_timeout=wait)
    return aioredis.Redis.from_url(settings.redis_url, decode_responses=False,
                                   socket_timeout=wait, socket_connect_timeout=wait)


#: Longest a readiness probe waits for Redis (or, in the API, the brokers).
READY_TIMEOUT_S = 2.0


async def answers(redis: Redis, timeout_s: float = READY_TIMEOUT_S) -> bool:
    """True when Redis answers a PING within ``timeout_s``: the readiness probes' check, which
    reports a stalled or absent Redis as False rather than failing the probe."""
    try:
        return bool(await asyncio.wait_for(redis.ping(), timeout_s))
    except (RedisError, OSError, TimeoutError):
        return False


async def get_many(redis: Redis, rows: list[tuple[str, list[str]]]) -> list[list[bytes | None]]:
    """Values of ``prefix + name`` for each (prefix, names) row, one Lua call per row, the
    rows concurrently. A row's keys must share one hash tag (one partition's state); an
    empty row reads as an empty list."""
    script = redis.register_script(_GET_MANY_LUA)

    async def one(prefix: str, names: list[str]) -> list[bytes | None]:
        if not names:
            return []
        got = await script(keys=[prefix], args=[prefix, orjson.dumps(names)])
        # decode_responses=False: values are bytes, never str; a missing key reads as None.
        return cast(list[bytes | None], got)

    return list(await asyncio.gather(*(one(prefix, names) for prefix, names in rows)))


#: Why a partition's state does not belong to the log being read: it was built from another
#: log (the fence's topic id differs), or its fence lies beyond the log's end.
OTHER_LOG = "other_log"
FENCE_AHEAD = "fence_ahead"


@dataclass(slots=True)
class Fence:
    """Where a partition's applied state stands."""

    #: Last applied offset, -1 before the first batch.
    offset: int
    #: Partition watermark (largest event time) after that offset.
    watermark: int
    #: Id of the log (the topic's id) the state was built from; None before the first batch
    #: or when the broker keeps no topic ids.
    log: str | None = None

    def of_other_log(self, log_id: str | None) -> bool:
        """Stamped by another log than ``log_id`` (both known): nothing of that log is here."""
        return self.log is not None and log_id is not None and self.log != log_id

    def proven_by(self, log_id: str | None) -> bool:
        """Stamped by ``log_id`` itself: that log reached this offset, whatever a trailing
        high watermark says."""
        return self.log is not None and self.log == log_id


def _utf8(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode()
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def _exact(n: int) -> int | str:
    """Integers beyond 2**53 travel as decimal text: Lua's cjson would round them as doubles."""
    return n if -_EXACT < n < _EXACT else str(n)


#: Integers below this magnitude are exact in a double.
_EXACT = 2**53


#: ``[n]``, the ops' reference to their n-th binary value, made once per n: a list made per
#: value would be a container for the garbage collector to count and traverse, which cost
#: about 1 us per value in the batch loop (bench/stage_costs.py).
_REFS: list[list[int]] = []


def _ref(n: int) -> list[int]:
    while len(_REFS) < n:
        _REFS.append([len(_REFS) + 1])
    return _REFS[n - 1]


class Ops:
    """State changes of one partition's batch, collected then flushed in one Lua call.

    Agents aggregate in Python first, so a batch of thousands of events turns into tens
    of operations here.
    """

    __slots__ = ("args", "blobs")

    def __init__(self) -> None:
        self.args: list[Any] = []
        #: Binary values (packed state), sent as arguments of their own: the JSON array of
        #: ops carries only UTF-8 text, so it refers to the n-th blob as ``[n]``.
        self.blobs: list[bytes] = []

    def __len__(self) -> int:
        return len(self.args)

    def encode(self) -> bytes:
        """All operations as one JSON array (values given as bytes must be UTF-8 text)."""
        return orjson.dumps(self.args, default=_utf8)

    def hincrby(self, key: str, field: str, amount: int) -> None:
        self.args += ("HINCRBY", key, field, _exact(amount))

    def hset(self, key: str, field: str, value: Any) -> None:
        self.args += ("HSET", key, field, value)

    def hset_bytes(self, key: str, field: str, value: bytes) -> None:
        """HSET of a binary value (any bytes, not only UTF-8 text)."""
        self.blobs.append(value)
        self.args += ("HSET", key, field, _ref(len(self.blobs)))

    def hsetnx(self, key: str, field: str, value: Any) -> None:
        self.args += ("HSETNX", key, field, value)

    def hmax(self, key: str, field: str, value: int) -> None:
        """Set ``field`` to ``value`` unless it already holds a larger integer."""
        self.args += ("HMAX", key, field, value)

    def hdel(self, key: str, field: str) -> None:
        self.args += ("HDEL", key, field)

    def zadd(self, key: str, score: int | float, member: str) -> None:
        self.args += ("ZADD", key, score, member)

    def zincrby(self, key: str, amount: int, member: str) -> None:
        self.args += ("ZINCRBY", key, amount, member)

    def zrem(self, key: str, member: str) -> None:
        self.args += ("ZREM", key, member)

    def zremrangebyscore(self, key: str, low: int | str, high: int | str) -> None:
        self.args += ("ZREMRANGEBYSCORE", key, low, high)

    def pexpire(self, key: str, ms: int) -> None:
        self.args += ("PEXPIRE", key, ms)

    def pexpireat(self, key: str, at_ms: int) -> None:
        self.args += ("PEXPIREAT", key, at_ms)

    def delete(self, key: str) -> None:
        self.args += ("DEL", key)

    def set(self, key: str, value: Any) -> None:
        self.args += ("SET", key, value)

    def set_bytes(self, key: str, value: bytes) -> None:
        """SET of a binary value (any bytes, not only UTF-8 text)."""
        self.blobs.append(value)
        self.args += ("SET", key, _ref(len(self.blobs)))

    def incrby(self, key: str, amount: int) -> None:
        self.args += ("INCRBY", key, _exact(amount))

    def sadd(self, key: str, member: str) -> None:
        self.args += ("SADD", key, member)

    def rpush(self, key: str, value: Any) -> None:
        self.args += ("RPUSH", key, value)

    def xadd_capped(self, key: str, maxlen: int, field: str, value: Any) -> None:
        self.args += ("XADD", key, maxlen, field, value)


def stale_fence(partitions: Sequence[int], landed: Sequence[bool]) -> StaleFenceError | None:
    """The error naming the partitions whose fenced call did not land (``landed[i]`` is the
    answer of ``partitions[i]``'s call), None when every call landed."""
    stale = [p for p, ok in zip(partitions, landed, strict=True) if not ok]
    if not stale:
        return None
    return StaleFenceError(f"fence moved under this worker for partitions {stale}")


class RedisState:
    """Reads fences and applies fenced batches for one consumer group and topic."""

    def __init__(self, redis: Redis, app_id: str, topic: str) -> None:
        self.redis = redis
        self.app_id = app_id
        self.topic = topic
        self._apply = redis.register_script(_APPLY_LUA)

    def fence_key(self, partition: int) -> str:
        return keys.fence(self.app_id, self.topic, partition)

    async def read_fences(self, partitions: list[int]) -> dict[int, Fence]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.hmget(self.fence_key(p), "offset", "wm", "log")
            rows = await pipe.execute()
        return {
            p: Fence(int(off) if off is not None else -1, int(wm) if wm is not None else 0,
                     log.decode() if log is not None else None)
            for p, (off, wm, log) in zip(partitions, rows, strict=True)
        }

    async def apply(self, writes: dict[int, tuple[Fence, Fence, Ops]]) -> None:
        """Apply ``{partition: (fence read before, fence after, ops)}``, one Lua call each,
        concurrently.

        Raises StaleFenceError naming the partitions whose fence moved meanwhile; the
        other partitions' batches are applied.
        """
        landed = await asyncio.gather(*(self.apply_one(p, *w) for p, w in writes.items()))
        if (stale := stale_fence(list(writes), landed)) is not None:
            raise stale

    async def apply_one(self, partition: int, before: Fence, after: Fence, ops: Ops) -> bool:
        """One partition's fenced call; False when its fence no longer holds ``before`` or
        holds another log than ``after.log`` (nothing was written). Calls for different
        partitions may run concurrently: each is atomic and touches its own partition's keys
        only."""
        res = await self._apply(keys=[self.fence_key(partition)],
                                args=[before.offset, after.offset, after.watermark, ops.encode(),
                                      after.log or "", *ops.blobs])
        return int(res[0]) == 1

    async def checkpoints(self, partition: int) -> list[tuple[int, int]]:
        """(first offset, watermark before it) of recorded batches, oldest first."""
        rows = await self.redis.zrange(
            keys.checkpoints(self.app_id, self.topic, partition), 0, -1, withscores=True
        )
        return sorted((int(row[0]), int(row[1])) for row in rows)

"""Delete one app's whole state from Redis: the explicit way out of a refused fence.

Every key shopstream writes starts with ``<app_id>:`` (sinks/*keys.py), so a scan for that
prefix finds fences, dedup checkpoints, counters, dead-letter streams and every capability's
state, and nothing of another app sharing the Redis.
"""

from __future__ import annotations

from collections import Counter

from shopstream.sinks.redis_state import Redis

#: Keys deleted per round trip.
CHUNK = 500


def _kind(key: bytes, app_id: str) -> str:
    """What a key holds, for the summary: its first name part after the app and tag."""
    parts = key.decode(errors="replace")[len(app_id) + 1:].split(":")
    names = [p for p in parts if not p.startswith("{")]
    return names[0] if names else "?"


async def app_keys(redis: Redis, app_id: str) -> Counter[str]:
    """Keys of ``app_id`` by kind (fence, ckpt, counts, stats, funnel, cu, flash, ...)."""
    found: Counter[str] = Counter()
    async for key in redis.scan_iter(match=f"{app_id}:*", count=1000):
        found[_kind(key, app_id)] += 1
    return found


async def delete_app_state(redis: Redis, app_id: str) -> int:
    """Delete every key of ``app_id``; returns how many."""
    batch: list[bytes] = []
    deleted = 0
    async for key in redis.scan_iter(match=f"{app_id}:*", count=1000):
        batch.append(key)
        if len(batch) >= CHUNK:
            deleted += await _delete(redis, batch)
            batch = []
    if batch:
        deleted += await _delete(redis, batch)
    return deleted


async def _delete(redis: Redis, batch: list[bytes]) -> int:
    # One key per call: keys of different partitions live in different cluster slots.
    async with redis.pipeline(transaction=False) as pipe:
        for key in batch:
            pipe.unlink(key)
        return sum(int(n) for n in await pipe.execute())

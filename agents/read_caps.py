"""How much one API read may take: caps on what a window reads and on what an answer holds.

A window's cost is what exists in it (rows are sparse), so the caps count rows, not time: a
read over a cap is refused before it reads the rows, naming the cap (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from shopstream.sinks.redis_state import Redis

#: Most per-partition minute (or bucket) rows one window may read: with 8 busy partitions
#: about 8.7 days of minutes.
MAX_ROWS: Final = 100_000
#: Most buckets one answer may hold: a week at minute resolution.
MAX_BUCKETS: Final = 10_080
#: Most items one page of a list route holds (``limit``), and the largest ``offset``.
MAX_PAGE: Final = 500
MAX_OFFSET: Final = 1_000_000


class ReadTooLarge(ValueError):
    """A read over one of the caps above."""

    def __init__(self, what: str, cap: int, hint: str) -> None:
        super().__init__(f"{what}: over the cap of {cap}; {hint}")
        self.what = what
        self.cap = cap


def check_buckets(n: int) -> None:
    if n > MAX_BUCKETS:
        raise ReadTooLarge("buckets", MAX_BUCKETS, "narrow from/to or use a coarser res")


async def check_rows(redis: Redis, index_keys: Sequence[str], from_ms: int, to_ms: int) -> None:
    """Refuse a window whose row indexes (sorted sets scored by time) hold more than MAX_ROWS
    rows in [from_ms, to_ms): one ZCOUNT each, before any row is read."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in index_keys:
            pipe.zcount(key, from_ms, f"({to_ms}")
        sizes = await pipe.execute()
    if sum(int(n) for n in sizes) > MAX_ROWS:
        raise ReadTooLarge("rows", MAX_ROWS, "narrow from/to")


async def minute_rows(redis: Redis, partitions: int, index_key: Callable[[int], str],
                      row_key: Callable[[int, int], str], from_ms: int,
                      to_ms: int) -> list[tuple[int, dict[bytes, bytes]]]:
    """(start, hash) of every partition's rows starting in [from_ms, to_ms), the starts read
    from each partition's index (a sorted set scored by a row's start: a minute for most
    capabilities, a minute, hour or day for traffic's): two round trips in all."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.zrangebyscore(index_key(p), from_ms, f"({to_ms}")
        minute_lists = await pipe.execute()
    wanted = [(p, int(m)) for p, mins in enumerate(minute_lists) for m in mins]
    async with redis.pipeline(transaction=False) as pipe:
        for p, m in wanted:
            pipe.hgetall(row_key(p, m))
        raws = await pipe.execute()
    return [(m, raw) for (_, m), raw in zip(wanted, raws, strict=True)]


async def late_events(redis: Redis, partitions: int, late_key: Callable[[int], str]) -> int:
    """A capability's late events over every partition's counter (one round trip)."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.get(late_key(p))
        return sum(int(x or 0) for x in await pipe.execute())

"""Per-minute counts by event type and channel, and GMV from successful payments.

State per partition and minute (keys in sinks/keys.py): a hash with fields
``<type>|<channel>`` (count), ``gmv`` (fen) and ``paid`` (successful payments); a sorted set
of minutes indexes them so a query reads only minutes that exist.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from shopstream.agents.base import EVERY_EVENT, NoHooks, PartitionBatch
from shopstream.agents.read_caps import check_buckets, check_rows
from shopstream.core.timeunits import MINUTE_MS
from shopstream.sinks.event_stats.keys import stats_index_key, stats_minute_key
from shopstream.sinks.redis_state import Redis

#: Events without a channel are counted under this one.
NO_CHANNEL = "other"


def minute_of(ts: int) -> int:
    return ts - ts % MINUTE_MS


class EventStats(NoHooks):
    """Aggregates a batch in Python, then writes one HINCRBY per (minute, field)."""

    name = "event_stats"
    takes = EVERY_EVENT

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id

    def apply(self, batch: PartitionBatch, loaded: None) -> None:
        events = batch.feeds[self.name].events
        # Counter's C loop counts the tuples; field names are built once per distinct tuple.
        counts = Counter(
            (ev.ts // MINUTE_MS, ev.type, ev.channel or NO_CHANNEL)
            for ev in events
        )
        money: Counter[tuple[int, str]] = Counter()
        for ev in events:
            if ev.type == "payment" and ev.status == "success":
                minute = minute_of(ev.ts)
                money[(minute, "gmv")] += ev.amount
                money[(minute, "paid")] += 1
        minutes = set()
        ops = batch.ops
        for (m, etype, channel), n in counts.items():
            minute = m * MINUTE_MS
            key = stats_minute_key(self.app_id, batch.partition, minute)
            ops.hincrby(key, f"{etype}|{channel}", n)
            minutes.add(minute)
        for (minute, fld), n in money.items():
            ops.hincrby(stats_minute_key(self.app_id, batch.partition, minute), fld, n)
        index = stats_index_key(self.app_id, batch.partition)
        for minute in minutes:
            ops.zadd(index, minute, str(minute))


async def read_stats(
    redis: Redis, app_id: str, partitions: int, from_ms: int, to_ms: int
) -> dict[str, Any]:
    """Counts and GMV per minute in [from_ms, to_ms), summed over all partitions; ReadTooLarge
    over the row cap (a row per partition and minute: the minutes are the answer's rows too)."""
    await check_rows(redis, [stats_index_key(app_id, p) for p in range(partitions)], from_ms,
                     to_ms)
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.zrangebyscore(stats_index_key(app_id, p), from_ms, f"({to_ms}")
        minute_lists = await pipe.execute()
    wanted = [
        (p, int(m)) for p, mins in enumerate(minute_lists) for m in mins
    ]
    async with redis.pipeline(transaction=False) as pipe:
        for p, minute in wanted:
            pipe.hgetall(stats_minute_key(app_id, p, minute))
        rows = await pipe.execute()

    per_minute: dict[int, dict[str, Any]] = {}
    totals: dict[str, Any] = {"counts": {}, "gmv": 0, "paid": 0, "events": 0}
    for (_, minute), row in zip(wanted, rows, strict=True):
        slot = per_minute.setdefault(minute, {"minute": minute, "counts": {}, "gmv": 0, "paid": 0})
        for raw_field, raw_n in row.items():
            fld, n = raw_field.decode(), int(raw_n)
            if fld in ("gmv", "paid"):
                slot[fld] += n
                totals[fld] += n
                continue
            etype, channel = fld.split("|", 1)
            by_channel = slot["counts"].setdefault(etype, {})
            by_channel[channel] = by_channel.get(channel, 0) + n
            tot = totals["counts"].setdefault(etype, {})
            tot[channel] = tot.get(channel, 0) + n
            totals["events"] += n
    check_buckets(len(per_minute))
    return {
        "from": from_ms,
        "to": to_ms,
        "minutes": [per_minute[m] for m in sorted(per_minute)],
        "totals": totals,
    }

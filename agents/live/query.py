"""Reading live rooms back: each partition holds a shard of every room; sum the shards.

Reads are bounded: a room's series is built from the minutes that exist, its buckets capped
(``read_caps``); the on-air list reads one member per room and partition plus its page.

Distinct viewers and buyers add up exactly across shards: a user lives on one partition.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from shopstream.agents.live.rules import MEASURES, WATCH_BOUNDS_MS
from shopstream.agents.read_caps import check_buckets
from shopstream.core.timeunits import MINUTE_MS
from shopstream.sinks.buckets import bucket_start
from shopstream.sinks.live import keys as lk
from shopstream.sinks.redis_state import Redis


@dataclass(frozen=True, slots=True)
class OnAir:
    """One page of the rooms on air, most viewers first, and what the page leaves out."""

    rooms: list[dict[str, Any]]
    #: Rooms on air in all.
    total: int
    #: Viewers now of the rooms on air not on this page.
    viewers_elsewhere: int


async def on_air(redis: Redis, app_id: str, partitions: int, now_ms: int, limit: int,
                 offset: int = 0) -> OnAir:
    """Rooms on air now, most viewers first (then room id), ``limit`` of them from ``offset``:
    viewers, comments in the last full minute (wall clock), paid GMV and orders so far, start.

    The order comes from two sorted sets per partition (rooms on air; rooms with open views),
    so the cost of all rooms is one member each; only the page's rooms are read in detail.
    """
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.zrange(lk.onair_key(app_id, p), 0, -1)
            pipe.zrange(lk.watching_key(app_id, p), 0, -1, withscores=True)
        rows = await pipe.execute()
    viewers: dict[str, int] = {}
    for p in range(partitions):
        for member in rows[2 * p]:
            viewers.setdefault(member.decode(), 0)
    for p in range(partitions):
        for member, score in rows[2 * p + 1]:
            room = member.decode()
            if room in viewers:
                viewers[room] += int(score)
    order = sorted(viewers, key=lambda room: (-viewers[room], room))
    page = order[offset:offset + limit]
    last_minute = f"c|{now_ms - now_ms % MINUTE_MS - MINUTE_MS}"
    async with redis.pipeline(transaction=False) as pipe:
        for room in page:
            for p in range(partitions):
                pipe.hmget(lk.room_key(app_id, p, room), last_minute, "pg", "o", "start")
        values = await pipe.execute()
    out: list[dict[str, Any]] = []
    for i, room in enumerate(page):
        sums, started = [0, 0, 0], 0
        for row in values[i * partitions:(i + 1) * partitions]:
            for j, v in enumerate(row[:3]):
                sums[j] += int(v or 0)
            started = max(started, int(row[3] or 0))
        out.append({"room_id": room, "viewers": viewers[room], "comments_per_minute": sums[0],
                    "paid_gmv": sums[1], "orders": sums[2], "started_at": started})
    shown = sum(viewers[room] for room in page)
    return OnAir(out, len(order), sum(viewers.values()) - shown)


async def _shards(redis: Redis, app_id: str, partitions: int,
                  room: str) -> tuple[dict[str, int], list[int], bool]:
    """Room hash fields summed over partitions (start/end: the latest), the sizes of (viewers,
    buyers, viewers who bought), and whether any partition has the room on air."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.hgetall(lk.room_key(app_id, p, room))
            pipe.scard(lk.seen_key(app_id, p, room))
            pipe.scard(lk.buyers_key(app_id, p, room))
        for p in range(partitions):
            pipe.zscore(lk.onair_key(app_id, p), room)
        rows = await pipe.execute()
    both = await asyncio.gather(*(
        redis.sinter([lk.seen_key(app_id, p, room), lk.buyers_key(app_id, p, room)])
        for p in range(partitions)))
    fields: dict[str, int] = {}
    sizes = [0, 0, sum(len(b) for b in both)]
    for p in range(partitions):
        row, seen, buyers = rows[3 * p], rows[3 * p + 1], rows[3 * p + 2]
        sizes[0] += int(seen)
        sizes[1] += int(buyers)
        for raw, raw_n in row.items():
            name, n = raw.decode(), int(raw_n)
            if name in ("start", "end"):
                fields[name] = max(n, fields.get(name, 0))
            else:
                fields[name] = fields.get(name, 0) + n
    return fields, sizes, any(score is not None for score in rows[3 * partitions:])


def minute_changes(fields: dict[str, int]) -> list[tuple[int, dict[str, int]]]:
    """The room's minutes that have a field, in order, each with its counts (viewers as the
    minute's change of viewers)."""
    deltas: dict[int, dict[str, int]] = {}
    for name, n in fields.items():
        measure, sep, at = name.partition("|")
        if sep:
            deltas.setdefault(int(at), {})[MEASURES[measure]] = n
    return sorted(deltas.items())


@dataclass(slots=True)
class Series:
    """A room's buckets in a window, built from the minutes that exist (never a row per empty
    minute): a bucket is there when one of its minutes counts something or has viewers."""

    buckets: dict[int, dict[str, int]] = field(default_factory=dict)
    #: (viewers, minute) of the first minute with the most viewers.
    peak: tuple[int, int] | None = None

    def add(self, bucket: int, minute: int, row: dict[str, int]) -> None:
        slot = self.buckets.get(bucket)
        if slot is None:
            slot = self.buckets[bucket] = {name: 0 for name in MEASURES.values()}
            check_buckets(len(self.buckets))
        for name, n in row.items():
            slot[name] = max(slot[name], n) if name == "viewers" else slot[name] + n
        viewers = row["viewers"]
        if self.peak is None or viewers > self.peak[0] or (viewers == self.peak[0]
                                                            and minute < self.peak[1]):
            self.peak = (viewers, minute)


#: A step that lands in the next bucket from any bucket's start (a day is 23 to 25 hours).
_NEXT = {"m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": 26 * 60 * MINUTE_MS}


def room_series(changes: list[tuple[int, dict[str, int]]], from_ms: int, to_ms: int, res: str,
                zone: ZoneInfo) -> Series:
    """Buckets of the minutes in [from_ms, to_ms) from the room's minute changes.

    Viewers in a minute are the running sum of the changes; a stretch of minutes without a
    change but with viewers adds its viewers to each bucket it covers, one step per bucket,
    so the work is bounded by the changes plus the buckets (capped: ReadTooLarge).
    """
    out = Series()
    first = -(-from_ms // MINUTE_MS) * MINUTE_MS
    last = -(-to_ms // MINUTE_MS) * MINUTE_MS - MINUTE_MS
    viewers, prev = 0, None
    for m, delta in changes:
        if prev is not None and viewers:
            lo, hi = max(prev + MINUTE_MS, first), min(m - MINUTE_MS, last)
            b = bucket_start(lo, res, zone)
            while lo <= hi:
                out.add(b, lo, {"viewers": viewers})
                b = bucket_start(b + _NEXT[res], res, zone)
                lo = b
        viewers += delta.get("viewers", 0)
        row = {**delta, "viewers": viewers}
        if first <= m <= last and any(row.values()):
            out.add(bucket_start(m, res, zone), m, row)
        prev = m
    return out


def _summary(rows: list[dict[str, int]]) -> dict[str, Any]:
    tot = {name: sum(r[name] for r in rows) for name in MEASURES.values() if name != "viewers"}
    closed = tot["views_closed"]
    hist = [{"lt_ms": WATCH_BOUNDS_MS[i] if i < len(WATCH_BOUNDS_MS) else None,
             "views": tot.pop(f"watch_bucket_{i}")} for i in range(len(WATCH_BOUNDS_MS) + 1)]
    return {**tot, "watch_mean_ms": tot["watch_ms"] / closed if closed else None,
            "watch_histogram": hist}


async def read_room(redis: Redis, app_id: str, partitions: int, room: str, from_ms: int,
                    to_ms: int, res: str, zone: ZoneInfo) -> dict[str, Any] | None:
    """The API answer for one room, or None for a room never seen."""
    fields, (unique, buyers, viewer_buyers), live = await _shards(redis, app_id, partitions,
                                                                  room)
    if not fields and not unique:
        return None
    series = room_series(minute_changes(fields), from_ms, to_ms, res, zone)
    buckets, peak = series.buckets, series.peak
    start, end = fields.get("start"), fields.get("end")
    return {
        "room_id": room, "from": from_ms, "to": to_ms, "on_air": live,
        "started_at": start, "ended_at": end,
        "viewers_now": fields.get("now", 0),
        "peak": {"viewers": peak[0], "minute": peak[1]} if peak else None,
        "unique_viewers": unique, "buyers": buyers, "viewer_buyers": viewer_buyers,
        "conversion": viewer_buyers / unique if unique else None,
        "totals": _summary(list(buckets.values())),
        "buckets": [{"start": s, "viewers": b["viewers"],
                     **{k: v for k, v in b.items() if k != "viewers"
                        and not k.startswith("watch_bucket")}}
                    for s, b in sorted(buckets.items())],
    }

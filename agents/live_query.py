"""Reading live rooms back: each partition holds a shard of every room; sum the shards.

Distinct viewers and buyers add up exactly across shards: a user lives on one partition.
"""

from __future__ import annotations

import asyncio
from typing import Any
from zoneinfo import ZoneInfo

from shopstream.agents.live_rules import MEASURES, MINUTE_MS, WATCH_BOUNDS_MS
from shopstream.sinks import live_keys as lk
from shopstream.sinks.funnel_keys import bucket_start
from shopstream.sinks.redis_state import Redis


async def on_air(redis: Redis, app_id: str, partitions: int, now_ms: int) -> list[dict[str, Any]]:
    """Rooms on air now, most viewers first: viewers, comments in the last full minute (wall
    clock), paid GMV so far, start time."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.zrange(lk.onair_key(app_id, p), 0, -1, withscores=True)
        rows = await pipe.execute()
    started: dict[str, int] = {}
    for row in rows:
        for member, score in row:
            room = member.decode()
            started[room] = max(int(score), started.get(room, 0))
    rooms = sorted(started)
    last_minute = f"c|{now_ms - now_ms % MINUTE_MS - MINUTE_MS}"
    async with redis.pipeline(transaction=False) as pipe:
        for room in rooms:
            for p in range(partitions):
                pipe.hmget(lk.room_key(app_id, p, room), "now", last_minute, "pg", "o")
        values = await pipe.execute()
    out: list[dict[str, Any]] = []
    for i, room in enumerate(rooms):
        sums = [0, 0, 0, 0]
        for row in values[i * partitions:(i + 1) * partitions]:
            for j, v in enumerate(row):
                sums[j] += int(v or 0)
        out.append({"room_id": room, "viewers": sums[0], "comments_per_minute": sums[1],
                    "paid_gmv": sums[2], "orders": sums[3], "started_at": started[room]})
    out.sort(key=lambda r: (-r["viewers"], r["room_id"]))
    return out


async def _shards(redis: Redis, app_id: str, partitions: int,
                  room: str) -> tuple[dict[str, int], list[int]]:
    """Room hash fields summed over partitions (start/end: the latest), and per partition the
    sizes of (viewers, buyers, viewers who bought)."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.hgetall(lk.room_key(app_id, p, room))
            pipe.scard(lk.seen_key(app_id, p, room))
            pipe.scard(lk.buyers_key(app_id, p, room))
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
    return fields, sizes


def minute_series(fields: dict[str, int]) -> dict[int, dict[str, int]]:
    """The room's minutes with viewers as the running sum of their per-minute changes: every
    minute between the first and last that has a field, less all-zero minutes at either end."""
    deltas: dict[int, dict[str, int]] = {}
    for name, n in fields.items():
        measure, sep, at = name.partition("|")
        if sep:
            deltas.setdefault(int(at), {})[MEASURES[measure]] = n
    if not deltas:
        return {}
    series: dict[int, dict[str, int]] = {}
    viewers = 0
    for m in range(min(deltas), max(deltas) + MINUTE_MS, MINUTE_MS):
        row = {name: 0 for name in MEASURES.values()}
        row.update(deltas.get(m, {}))
        viewers += row["viewers"]
        row["viewers"] = viewers
        series[m] = row
    busy = [m for m, row in series.items() if any(row.values())]
    return {m: series[m] for m in series if busy and busy[0] <= m <= busy[-1]}


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
    fields, (unique, buyers, viewer_buyers) = await _shards(redis, app_id, partitions, room)
    if not fields and not unique:
        return None
    series = {m: row for m, row in minute_series(fields).items() if from_ms <= m < to_ms}
    buckets: dict[int, dict[str, int]] = {}
    for m, row in series.items():
        slot = buckets.setdefault(bucket_start(m, res, zone),
                                  {name: 0 for name in MEASURES.values()})
        for name, n in row.items():
            slot[name] = max(slot[name], n) if name == "viewers" else slot[name] + n
    peak = max(series.items(), key=lambda kv: (kv[1]["viewers"], -kv[0]), default=None)
    start, end = fields.get("start"), fields.get("end")
    return {
        "room_id": room, "from": from_ms, "to": to_ms,
        "on_air": start is not None and start > (end or 0),
        "started_at": start, "ended_at": end,
        "viewers_now": fields.get("now", 0),
        "peak": {"viewers": peak[1]["viewers"], "minute": peak[0]} if peak else None,
        "unique_viewers": unique, "buyers": buyers, "viewer_buyers": viewer_buyers,
        "conversion": viewer_buyers / unique if unique else None,
        "totals": _summary(list(series.values())),
        "buckets": [{"start": s, "viewers": b["viewers"],
                     **{k: v for k, v in b.items() if k != "viewers"
                        and not k.startswith("watch_bucket")}}
                    for s, b in sorted(buckets.items())],
    }

"""Live rooms: viewers, watch time, comments, likes and room-attributed orders, exactly once.

Per batch: ``load`` reads, per partition, the state of the users the batch touches, the open
views of rooms a ``live_end`` closes, the views the advancing watermark may drop as idle, and
the rooms of orders being paid; ``apply`` runs ``rules.LiveShard`` (pure) over the events
and room-wide copies in partition order; the changes ride the batch's fenced write (keys in
``sinks/live/keys``). Every ~5 s ``tick`` refreshes the room gauges of the top rooms (their
details only: bounded work whatever the number of rooms on air).
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple, cast

import orjson
from redis.exceptions import RedisError

from shopstream.agents.base import NoHooks, PartitionBatch, Takes
from shopstream.agents.live.query import on_air
from shopstream.agents.live.rules import (
    RELEVANT,
    Changes,
    LiveShard,
    UserLive,
    decode_user,
    encode_user,
)
from shopstream.agents.live_section import LiveConfig
from shopstream.core.settings import Settings
from shopstream.core.timeunits import DAY_MS
from shopstream.monitoring.metrics import Metrics
from shopstream.schemas.events import ROOM_WIDE_TYPES, RoomEvent, UserEvent
from shopstream.sinks.live import keys as lk
from shopstream.sinks.redis_state import Redis

log = logging.getLogger(__name__)

#: How long an attributed, unpaid order keeps its room (wall clock): payments come well before.
ORDER_TTL_MS = 7 * DAY_MS
#: Room hashes and sets live this long after their last change.
ROOM_TTL_MS = 30 * DAY_MS
GAUGE_EVERY_MS = 5_000


class Loaded(NamedTuple):
    """What ``load`` read for a partition's batch."""

    users: dict[str, UserLive]
    #: room -> users with an open view, for the rooms a ``live_end`` of the batch closes.
    room_open: dict[str, set[str]]
    #: (room, user) of views the advancing watermark may drop as idle.
    candidates: list[tuple[str, str]]
    #: order -> room, of the orders being paid that a room holds.
    orders: dict[str, str]
    #: room -> its score in the on-air list, for the rooms of the batch on air.
    on_air: dict[str, int]


class _Wants(NamedTuple):
    """What a partition's events name, before anything is read."""

    users: list[str]
    #: Rooms a ``live_end`` of the batch closes.
    ending: list[str]
    #: Orders being paid.
    orders: list[str]
    #: Rooms the batch's events are about.
    active: list[str]

    @classmethod
    def of(cls, b: PartitionBatch, feed: str) -> _Wants:
        users: list[str] = []
        ending: set[str] = set()
        orders: list[str] = []
        rooms: set[str] = set()
        for ev in cast(list[UserEvent], b.feeds[feed].in_order()):
            if isinstance(ev, RoomEvent):
                rooms.add(ev.room_id)
            if ev.type == "live_end":
                ending.add(ev.room_id)
            elif ev.type == "payment":
                if ev.status == "success":
                    orders.append(ev.order_id)
            elif ev.type != "live_start":
                users.append(ev.user_id)
        return cls(users, sorted(ending), orders, sorted(rooms))


class LiveRooms(NoHooks):
    name = "live"
    takes = Takes(RELEVANT, on_time=True, copies=ROOM_WIDE_TYPES, late_key=lk.late_key)

    def __init__(self, settings: Settings, cfg: LiveConfig, redis: Redis,
                 metrics: Metrics | None = None) -> None:
        self.app_id = settings.app_id
        self.partitions = settings.partitions
        self.cfg = cfg
        self.redis = redis
        self.metrics = metrics
        self._last_gauge = 0
        #: A user's state outlives its last closed view by the attribution window.
        self.user_ttl_ms = cfg.attribution_ms + cfg.lateness_ms + cfg.idle_ms

    async def load(self, batches: list[PartitionBatch]) -> list[Loaded]:
        """Two steps whatever the partitions: one pipeline reads what the events name (idle
        views, open views of ending rooms, on-air scores, rooms of paid orders: one GET each),
        then the users those and the events touch, one MGET per partition (one hash tag),
        the partitions concurrently. MGET stays out of pipelines: Redis Cluster clients
        refuse it there."""
        a, r = self.app_id, self.redis
        wants = [_Wants.of(b, self.name) for b in batches]
        async with r.pipeline(transaction=False) as pipe:
            for b, w in zip(batches, wants, strict=True):
                p = b.partition
                pipe.zrangebyscore(lk.idle_key(a, p), "-inf",
                                   f"({b.watermark - self.cfg.lateness_ms - self.cfg.idle_ms}")
                for room in w.ending:
                    pipe.hkeys(lk.open_key(a, p, room))
                if w.active:
                    pipe.zmscore(lk.onair_key(a, p), w.active)
                for o in w.orders:
                    pipe.get(lk.order_key(a, p, o))
            rows = iter(await pipe.execute())
        firsts = []
        for w in wants:
            idle = next(rows)
            room_open = {room: {u.decode() for u in next(rows)} for room in w.ending}
            scores = next(rows) if w.active else []
            order_rooms = [next(rows) for _ in w.orders]
            candidates = [tuple(orjson.loads(m)) for m in idle]
            wanted = list(dict.fromkeys(
                [*w.users, *(u for _, u in candidates),
                 *(u for members in room_open.values() for u in members)]))
            firsts.append((room_open, candidates, wanted,
                           {room: int(score) for room, score in zip(w.active, scores, strict=True)
                            if score is not None},
                           {o: room.decode() for o, room in zip(w.orders, order_rooms,
                                                                 strict=True)
                            if room is not None}))
        async def users_of(b: PartitionBatch, wanted: list[str]) -> list[bytes | None]:
            if not wanted:
                return []
            return cast(list[bytes | None],
                        await r.mget([lk.user_key(a, b.partition, u) for u in wanted]))

        blobs = await asyncio.gather(*(users_of(b, first[2])
                                       for b, first in zip(batches, firsts, strict=True)))
        out = []
        for (room_open, candidates, wanted, rooms_on_air, orders), users in zip(
                firsts, blobs, strict=True):
            out.append(Loaded({u: decode_user(blob) for u, blob in zip(wanted, users,
                                                                       strict=True)},
                              room_open, candidates, orders, rooms_on_air))
        return out

    def apply(self, batch: PartitionBatch, loaded: Loaded) -> None:
        shard = LiveShard(self.cfg, loaded.users, loaded.room_open, loaded.orders)
        shard.run(batch.feeds[self.name].in_order())
        shard.sweep(loaded.candidates, batch.watermark)
        self._write(batch, shard)
        self._write_on_air(batch, shard.out, loaded.on_air)

    def _write(self, batch: PartitionBatch, shard: LiveShard) -> None:
        a, p, ops, out = self.app_id, batch.partition, batch.ops, shard.out
        rooms: set[str] = set()
        for (room, fld), n in out.fields.items():
            # Written even when the changes cancel: a minute's field exists whatever the
            # batch boundaries (the query's minute range reads which fields exist).
            ops.hincrby(lk.room_key(a, p, room), fld, n)
            rooms.add(room)
        for room, ts in out.starts.items():
            ops.hmax(lk.room_key(a, p, room), "start", ts)
            rooms.add(room)
        for room, ts in out.ends.items():
            ops.hmax(lk.room_key(a, p, room), "end", ts)
            rooms.add(room)
        for room, ts in out.rooms.items():
            ops.hsetnx(lk.rooms_key(a, p), room, ts)
        for room, uid in sorted(out.seen):
            ops.sadd(lk.seen_key(a, p, room), uid)
            rooms.add(room)
        for room, uid in sorted(out.buyers):
            ops.sadd(lk.buyers_key(a, p, room), uid)
            rooms.add(room)
        for room in sorted(rooms):
            for key in (lk.room_key(a, p, room), lk.seen_key(a, p, room),
                        lk.buyers_key(a, p, room)):
                ops.pexpire(key, ROOM_TTL_MS)
        idle = lk.idle_key(a, p)
        for room, uid in sorted(out.touched):
            view = shard.users[uid].views.get(room)
            member = orjson.dumps([room, uid]).decode()
            if view is None:
                ops.hdel(lk.open_key(a, p, room), uid)
                ops.zrem(idle, member)
            else:
                ops.hset(lk.open_key(a, p, room), uid, view[0])
                ops.zadd(idle, view[1], member)
        for uid in sorted(out.users):
            user = shard.users[uid]
            key = lk.user_key(a, p, uid)
            if user.views:
                ops.set(key, encode_user(user))
            elif user.left is not None:
                ops.set(key, encode_user(user))
                ops.pexpire(key, self.user_ttl_ms)
        for order, room in out.orders.items():
            if order not in out.paid:
                key = lk.order_key(a, p, order)
                ops.set(key, room)
                ops.pexpire(key, ORDER_TTL_MS)
        for order in sorted(out.paid - out.orders.keys()):
            ops.delete(lk.order_key(a, p, order))

    def _write_on_air(self, batch: PartitionBatch, out: Changes,
                      on_air: dict[str, int]) -> None:
        """Rooms on air here: started later than ended, scored by their latest event here;
        those silent for ``on_air_silence_ms`` of this partition's watermark leave. Open views
        per room here (``watching``), for ordering the list without reading every room."""
        a, p, ops = self.app_id, batch.partition, batch.ops
        key = lk.onair_key(a, p)
        for room, last in sorted(out.last.items()):
            if room in out.starts or room in out.ends:
                # On air while its latest start is later than its latest end (as far as known).
                if out.starts.get(room, -1) > out.ends.get(room, -1):
                    ops.zadd(key, max(last, on_air.get(room, last)), room)
                else:
                    ops.zrem(key, room)
            elif room in on_air:
                ops.zadd(key, max(last, on_air[room]), room)
        ops.zremrangebyscore(key, "-inf", f"({batch.watermark - self.cfg.on_air_silence_ms}")
        watching = lk.watching_key(a, p)
        changed = False
        for (room, fld), n in sorted(out.fields.items()):
            if fld == "now" and n:
                ops.zincrby(watching, n, room)
                changed = True
        if changed:
            ops.zremrangebyscore(watching, "-inf", 0)

    async def tick(self, now_ms: int) -> None:
        """Room gauges for the top rooms by viewers now (only they are read in detail); the
        viewers of the rest summed under ``other``."""
        if self.metrics is None or now_ms - self._last_gauge < GAUGE_EVERY_MS:
            return
        self._last_gauge = now_ms
        try:
            page = await on_air(self.redis, self.app_id, self.partitions, now_ms,
                                self.cfg.top_rooms)
        except RedisError as exc:
            log.warning("live room gauges not refreshed: %s", exc)
            return
        self.metrics.set_live_rooms(page.rooms, page.total, page.viewers_elsewhere)


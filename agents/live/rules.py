"""Live rooms, pure: views opened, kept alive and closed; orders attributed to rooms.

The definitions (docs/live-and-ops.md; tests/agents/live_ref.py restates them independently),
per partition, events in partition order, late events left out by the batch loop
(``streams.feeds``):
- ``live_join`` opens a view of (room, user) unless one is open: then it is activity. A view
  with no activity for ``idle_ms`` closes at its last activity plus ``idle_ms`` (checked at the
  user's next event in the room, and for every view once the watermark minus the lateness
  passed that moment: no accepted event can reach it any more).
- ``live_leave`` closes the open view at its time (never before the join); without one it is
  ignored. Comments and likes count per minute and are activity of an open view.
- ``live_end`` (on every partition, see ``kafka_io.partitioner``) closes every open view of the
  room at its time, or at the view's idle time if that came first; never before the join. Its
  copies are judged late against each partition's watermark but do not move it.
- ``order_submit``: ``live_room_id`` wins; else the open view (not idle, joined by the order's
  time) with the latest (activity, join, room id); else the view the user closed last, if it
  closed at or after the order's time minus ``attribution_ms``. The first successful payment
  of an attributed order counts as the room's paid order and paid GMV.

Per minute a room counts: viewers present at some moment of the minute (``v``: +1 in the join's
minute, -1 in the minute after the close's), comments, likes, attributed orders and GMV, paid
orders and GMV, closed views with their watch time and histogram bucket (by the close's minute).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from shopstream.agents.live_section import LiveConfig
from shopstream.core.timeunits import HOUR_MS, MINUTE_MS
from shopstream.schemas.events import Event, LiveEnd, LiveStart, OrderSubmit, Payment, ViewerEvent

#: Upper bounds (exclusive, ms) of the watch-time histogram's buckets; one more bucket is open.
WATCH_BOUNDS_MS: Final = (MINUTE_MS, 5 * MINUTE_MS, 15 * MINUTE_MS, 30 * MINUTE_MS, HOUR_MS)
#: Per-minute measures of a room, by their field prefix in the room hash.
MEASURES: Final = {
    "v": "viewers", "c": "comments", "l": "likes", "o": "orders", "g": "gmv",
    "po": "paid_orders", "pg": "paid_gmv", "wn": "views_closed", "ws": "watch_ms",
    **{f"wh{i}": f"watch_bucket_{i}" for i in range(len(WATCH_BOUNDS_MS) + 1)},
}
#: Measures also kept as a running total (field without a minute), for the on-air list.
TOTALS: Final = frozenset({"c", "l", "o", "g", "po", "pg"})
LIVE_TYPES: Final = frozenset({"live_start", "live_end", "live_join", "live_leave",
                               "live_comment", "live_like"})
#: Events the live agent reads: live ones, and orders and payments for attribution.
RELEVANT: Final = LIVE_TYPES | {"order_submit", "payment"}
def minute(ts: int) -> int:
    return ts - ts % MINUTE_MS


def watch_bucket(duration_ms: int) -> int:
    """Index of the histogram bucket of a view that lasted ``duration_ms``."""
    for i, bound in enumerate(WATCH_BOUNDS_MS):
        if duration_ms < bound:
            return i
    return len(WATCH_BOUNDS_MS)


@dataclass(slots=True)
class UserLive:
    """One user's live state in one partition."""

    #: room -> [join time, last activity] of each open view.
    views: dict[str, list[int]] = field(default_factory=dict)
    #: (room, close time) of the view the user closed last.
    left: tuple[str, int] | None = None


def decode_user(blob: bytes | None) -> UserLive:
    if not blob:
        return UserLive()
    doc = orjson.loads(blob)
    left = doc.get("l")
    return UserLive({r: list(v) for r, v in doc.get("v", {}).items()},
                    (left[0], left[1]) if left else None)


def encode_user(user: UserLive) -> bytes:
    doc: dict[str, Any] = {}
    if user.views:
        doc["v"] = user.views
    if user.left:
        doc["l"] = list(user.left)
    return orjson.dumps(doc)


@dataclass(slots=True)
class Changes:
    """What one partition's batch changes, for ``agents.live`` to write."""

    #: (room, field) -> increment of the room hash.
    fields: Counter[tuple[str, str]] = field(default_factory=Counter)
    seen: set[tuple[str, str]] = field(default_factory=set)
    buyers: set[tuple[str, str]] = field(default_factory=set)
    #: (room, user) pairs whose view opened, moved or closed.
    touched: set[tuple[str, str]] = field(default_factory=set)
    #: room -> latest live_start / live_end time in the batch.
    starts: dict[str, int] = field(default_factory=dict)
    ends: dict[str, int] = field(default_factory=dict)
    #: room -> earliest and latest event time in the batch (the rooms index; on air).
    rooms: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    #: order -> room attributed in this batch; orders whose first successful payment landed.
    orders: dict[str, str] = field(default_factory=dict)
    paid: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)


class LiveShard:
    """Applies the definitions above to one partition's events, in partition order."""

    def __init__(self, cfg: LiveConfig, users: dict[str, UserLive],
                 room_open: dict[str, set[str]], orders: Mapping[str, str]) -> None:
        self.cfg = cfg
        self.users = users
        #: room -> users with an open view, for the rooms a live_end in this batch closes.
        self.room_open = room_open
        self.known_orders = orders
        self.out = Changes()

    def _user(self, uid: str) -> UserLive:
        user = self.users.get(uid)
        if user is None:
            user = self.users[uid] = UserLive()
        return user

    def _count(self, room: str, measure: str, ts: int, n: int = 1) -> None:
        fields = self.out.fields
        fields[(room, f"{measure}|{minute(ts)}")] += n
        if measure in TOTALS:
            fields[(room, measure)] += n

    def _close(self, room: str, uid: str, user: UserLive, at: int) -> None:
        join, _ = user.views.pop(room)
        end = max(at, join)
        if user.left is None or end >= user.left[1]:
            user.left = (room, end)
        out = self.out
        out.fields[(room, "now")] -= 1
        self._count(room, "v", end + MINUTE_MS, -1)
        self._count(room, "wn", end)
        self._count(room, "ws", end, end - join)
        self._count(room, f"wh{watch_bucket(end - join)}", end)
        out.touched.add((room, uid))
        out.users.add(uid)
        members = self.room_open.get(room)
        if members is not None:
            members.discard(uid)

    def _live_view(self, room: str, uid: str, user: UserLive, ts: int) -> list[int] | None:
        """The open view of (room, user) at ``ts``, closing it first if it went idle."""
        view = user.views.get(room)
        if view is not None and ts > view[1] + self.cfg.idle_ms:
            self._close(room, uid, user, view[1] + self.cfg.idle_ms)
            return None
        return view

    def run(self, events: Sequence[Event]) -> None:
        """A partition's batch: its events on time, room-wide copies at their place."""
        for ev in events:
            self.event(ev)

    def event(self, ev: Event) -> None:
        """One event (or a room-wide event's copy) on time, in partition order."""
        etype, ts = ev.type, ev.ts
        if isinstance(ev, LiveStart | LiveEnd):
            self._room_wide(etype, ev.room_id, ts)
        elif isinstance(ev, ViewerEvent):
            self._viewer(etype, ev, ts)
        elif ev.type == "order_submit":
            self._order(ev, ts)
        elif ev.type == "payment" and ev.status == "success":
            self._payment(ev, ts)

    def _seen(self, room: str, ts: int) -> None:
        out = self.out
        out.rooms[room] = min(ts, out.rooms.get(room, ts))
        out.last[room] = max(ts, out.last.get(room, ts))

    def _room_wide(self, etype: str, room: str, ts: int) -> None:
        out = self.out
        self._seen(room, ts)
        if etype == "live_start":
            out.starts[room] = max(ts, out.starts.get(room, ts))
            return
        out.ends[room] = max(ts, out.ends.get(room, ts))
        for uid in sorted(self.room_open.get(room, ())):
            user = self._user(uid)
            view = user.views.get(room)
            if view is not None:
                self._close(room, uid, user, min(ts, view[1] + self.cfg.idle_ms))

    def _viewer(self, etype: str, ev: ViewerEvent, ts: int) -> None:
        room, uid = ev.room_id, ev.user_id
        out = self.out
        self._seen(room, ts)
        if etype == "live_comment":
            self._count(room, "c", ts)
        elif ev.type == "live_like":
            self._count(room, "l", ts, ev.count)
        user = self._user(uid)
        view = self._live_view(room, uid, user, ts)
        if view is not None:
            if etype == "live_leave":
                self._close(room, uid, user, ts)
            elif ts > view[1]:
                view[1] = ts
                out.touched.add((room, uid))
                out.users.add(uid)
        elif etype == "live_join":
            user.views[room] = [ts, ts]
            out.fields[(room, "now")] += 1
            self._count(room, "v", ts)
            out.seen.add((room, uid))
            out.touched.add((room, uid))
            out.users.add(uid)
            members = self.room_open.get(room)
            if members is not None:
                members.add(uid)

    def _order(self, ev: OrderSubmit, ts: int) -> None:
        uid = ev.user_id
        room = ev.live_room_id
        if room is None:
            room = self._attribute(uid, ts)
        if room is None:
            return
        out = self.out
        out.rooms[room] = min(ts, out.rooms.get(room, ts))
        self._count(room, "o", ts)
        self._count(room, "g", ts, ev.amount)
        out.buyers.add((room, uid))
        out.orders[ev.order_id] = room

    def _attribute(self, uid: str, ts: int) -> str | None:
        user = self.users.get(uid)
        if user is None:
            return None
        watching = []
        for room in sorted(user.views):
            view = self._live_view(room, uid, user, ts)
            if view is not None and view[0] <= ts:
                watching.append((view[1], view[0], room))
        if watching:
            return max(watching)[2]
        if user.left is not None and user.left[1] >= ts - self.cfg.attribution_ms:
            return user.left[0]
        return None

    def _payment(self, ev: Payment, ts: int) -> None:
        order = ev.order_id
        out = self.out
        if order in out.paid:
            return
        room = out.orders.get(order) or self.known_orders.get(order)
        if room is None:
            return
        self._count(room, "po", ts)
        self._count(room, "pg", ts, ev.amount)
        out.paid.add(order)

    def sweep(self, candidates: Iterable[tuple[str, str]], wm: int) -> None:
        """Close the views no accepted event can reach any more (idle before the horizon of
        the running watermark ``wm``)."""
        horizon = wm - self.cfg.lateness_ms
        pairs = set(candidates) | self.out.touched
        for room, uid in sorted(pairs):
            user = self.users.get(uid)
            view = user.views.get(room) if user is not None else None
            if user is not None and view is not None and view[1] + self.cfg.idle_ms < horizon:
                self._close(room, uid, user, view[1] + self.cfg.idle_ms)

"""Plain-Python reference of live rooms and the shop's pulse (docs/live-and-ops.md), and a
traffic generator with the edge cases.

Written from the definitions, not from agents/live*.py or agents/ops.py. Each partition reads,
in log order, its users' events and a copy of every live_start/live_end; an event is late when
older than the partition's largest event time so far (its users' events only) minus the allowed
lateness; repeated event ids of a partition's users are left out.

Views: a join opens a view of (room, user) unless one is open; a view whose last activity
(join, repeated join, comment, like) is more than ``idle`` before an event of the user in the
room, before an order's time, or before a live_end, closes at last activity + idle; so does
every view whose last activity + idle lies before the final watermark minus the lateness.
A leave closes at max(its time, join); a live_end closes the room's views at
max(join, min(end, last + idle)). Orders: live_room_id, else the open, non-idle view joined by
the order's time with the latest (activity, join), else the last closed view if it closed at or
after the order's time minus the attribution window. The first successful payment of an
attributed order is the room's paid order.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from shopstream.kafka_io.partitioner import partition_for

MIN = 60_000
T0 = 1_795_100_000_000
BOUNDS = (60_000, 300_000, 900_000, 1_800_000, 3_600_000)
CHANNELS = ["search", "ads", "recommend", "live", "social", "push", "direct"]
ROOM_WIDE = ("live_start", "live_end")
MEASURES = ["viewers", "comments", "likes", "orders", "gmv", "paid_orders", "paid_gmv",
            "views_closed", "watch_ms"] + [f"watch_bucket_{i}" for i in range(6)]


def _bucket(d: int) -> int:
    return next((i for i, b in enumerate(BOUNDS) if d < b), len(BOUNDS))


def partition_streams(log: list[dict[str, Any]], partitions: int):
    """Per partition: (event, is_copy) in log order."""
    streams: dict[int, list[tuple[dict[str, Any], bool]]] = defaultdict(list)
    for ev in log:
        home = partition_for(ev["user_id"], partitions)
        streams[home].append((ev, False))
        if ev["type"] in ROOM_WIDE:
            for p in range(partitions):
                if p != home:
                    streams[p].append((ev, True))
    return streams


class Room:
    def __init__(self) -> None:
        self.closed: list[tuple[str, int, int]] = []  # (user, join, end)
        self.open: dict[str, list[int]] = {}          # user -> [join, last]
        self.minute: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.seen: set[str] = set()
        self.buyers: set[str] = set()
        self.start = None
        self.end = None


def live_reference(log: list[dict[str, Any]], partitions: int, idle: int, attribution: int,
                   lateness: int) -> tuple[dict[str, dict[str, Any]], int]:
    """{room: answer} and the number of late events (live, order_submit, payment)."""
    rooms: dict[str, Room] = defaultdict(Room)

    def run(_p: int, stream: list[tuple[dict[str, Any], bool]]) -> int:
        late_total = 0
        wm = 0
        ids: set[str] = set()
        views: dict[tuple[str, str], list[int]] = {}
        last_left: dict[str, tuple[str, int]] = {}
        order_room: dict[str, str] = {}
        paid: set[str] = set()

        def close(room: str, user: str, at: int) -> None:
            join, _ = views.pop((room, user))
            end = max(join, at)
            r = rooms[room]
            r.closed.append((user, join, end))
            del r.open[f"{_p}:{user}"]
            if user not in last_left or end >= last_left[user][1]:
                last_left[user] = (room, end)

        def expire(room: str, user: str, ts: int) -> None:
            v = views.get((room, user))
            if v is not None and ts > v[1] + idle:
                close(room, user, v[1] + idle)

        for ev, copy in stream:
            t, typ = ev["ts"], ev["type"]
            if not copy:
                if ev["event_id"] in ids:
                    continue
                ids.add(ev["event_id"])
            if t < wm - lateness:
                if not copy and (typ.startswith("live_") or typ in ("order_submit", "payment")):
                    late_total += 1
                continue
            if not copy:
                wm = max(wm, t)
            room_id = ev.get("room_id")
            user = ev["user_id"]
            m = t // MIN * MIN
            if typ == "live_start":
                r = rooms[room_id]
                r.start = max(r.start or 0, t)
            elif typ == "live_end":
                r = rooms[room_id]
                r.end = max(r.end or 0, t)
                for (rm, u), v in sorted(views.items()):
                    if rm == room_id:
                        close(rm, u, min(t, v[1] + idle))
            elif typ.startswith("live_"):
                r = rooms[room_id]
                if typ == "live_comment":
                    r.minute[m]["comments"] += 1
                if typ == "live_like":
                    r.minute[m]["likes"] += ev["count"]
                expire(room_id, user, t)
                v = views.get((room_id, user))
                if typ == "live_join" and v is None:
                    views[(room_id, user)] = [t, t]
                    r.open[f"{_p}:{user}"] = [t, t]
                    r.seen.add(user)
                elif typ == "live_leave" and v is not None:
                    close(room_id, user, t)
                elif v is not None:
                    v[1] = max(v[1], t)
            elif typ == "order_submit":
                target = ev.get("live_room_id")
                if target is None:
                    for rm in sorted({rm for (rm, u) in views if u == user}):
                        expire(rm, user, t)
                    cands = [(v[1], v[0], rm) for (rm, u), v in views.items()
                             if u == user and v[0] <= t]
                    if cands:
                        target = max(cands)[2]
                    elif user in last_left and last_left[user][1] >= t - attribution:
                        target = last_left[user][0]
                if target is not None:
                    r = rooms[target]
                    r.minute[m]["orders"] += 1
                    r.minute[m]["gmv"] += ev["amount"]
                    r.buyers.add(user)
                    order_room[ev["order_id"]] = target
            elif typ == "payment" and ev["status"] == "success":
                o = ev["order_id"]
                if o in order_room and o not in paid:
                    paid.add(o)
                    r = rooms[order_room[o]]
                    r.minute[m]["paid_orders"] += 1
                    r.minute[m]["paid_gmv"] += ev["amount"]
        for (rm, u), v in sorted(views.items()):
            if v[1] + idle < wm - lateness:
                close(rm, u, v[1] + idle)
        return late_total

    late_total = sum(run(p, stream) for p, stream in
                     sorted(partition_streams(log, partitions).items()))
    return {room: _answer(r) for room, r in rooms.items()}, late_total


def _answer(r: Room) -> dict[str, Any]:
    spans = [(j, e) for _, j, e in r.closed] + [(v[0], None) for v in r.open.values()]
    for _, j, e in r.closed:
        row = r.minute[e // MIN * MIN]
        row["views_closed"] += 1
        row["watch_ms"] += e - j
        row[f"watch_bucket_{_bucket(e - j)}"] += 1
    touched = set(r.minute)
    for j, e in spans:
        touched.add(j // MIN * MIN)
        if e is not None:
            touched.add(e // MIN * MIN + MIN)
    series: dict[int, dict[str, int]] = {}
    if touched:
        for m in range(min(touched), max(touched) + MIN, MIN):
            row = {k: r.minute.get(m, {}).get(k, 0) for k in MEASURES}
            row["viewers"] = sum(1 for j, e in spans
                                 if j // MIN * MIN <= m and (e is None or m <= e // MIN * MIN))
            series[m] = row
        # A minute with nothing counted and nobody watching is no row (docs/live-and-ops.md).
        series = {m: row for m, row in series.items() if any(row.values())}
    return {"viewers_now": len(r.open), "unique_viewers": len(r.seen),
            "buyers": len(r.buyers), "viewer_buyers": len(r.seen & r.buyers),
            "series": series}


def pulse_reference(log: list[dict[str, Any]], partitions: int,
                    lateness: int) -> tuple[dict[int, dict[str, dict[str, int]]],
                                            dict[str, list[int]], int]:
    """{minute: {channel: measures}}, {sku: [units, gmv]} and late order/payment/cancel events."""
    rows: dict[int, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(
        lambda: defaultdict(int)))
    skus: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    buyers: set[str] = set()
    late = 0
    for _p, stream in sorted(partition_streams(log, partitions).items()):
        wm, ids = 0, set()
        for ev, copy in stream:
            if copy or ev["event_id"] in ids:
                continue
            ids.add(ev["event_id"])
            t, typ = ev["ts"], ev["type"]
            if t < wm - lateness:
                late += typ in ("order_submit", "payment", "order_cancel")
                continue
            wm = max(wm, t)
            if typ not in ("order_submit", "payment", "order_cancel"):
                continue
            row = rows[t // MIN * MIN][ev.get("channel", "other")]
            if typ == "order_submit":
                row["orders"] += 1
                for it in ev["items"]:
                    skus[it["sku"]][0] += it["qty"]
                    skus[it["sku"]][1] += it["qty"] * it["price"]
            elif typ == "order_cancel":
                row["cancellations"] += 1
            elif typ == "payment" and ev["status"] == "failed":
                row["payments_failed"] += 1
            elif typ == "payment":
                row["payments_success"] += 1
                row["paid_gmv"] += ev["amount"]
                row["returning_buyers" if ev["user_id"] in buyers else "new_buyers"] += 1
                buyers.add(ev["user_id"])
    return rows, skus, late


def generate(n_rooms: int, n_users: int, seed: int) -> list[dict[str, Any]]:
    """A log in arrival order: rooms that start and (mostly) end, viewers who join (sometimes
    twice), comment, like, go idle, leave (sometimes without having joined), buy during or
    after watching (some orders name their room), pay or fail; out-of-order and late
    timestamps, re-sent duplicates."""
    rnd = random.Random(seed)
    timed: list[tuple[float, dict[str, Any]]] = []
    n = 0

    def emit(t: int, ev: dict[str, Any], arrival: float | None = None) -> None:
        nonlocal n
        n += 1
        ev = {**ev, "event_id": f"e{seed}-{n}", "ts": t}
        if not ev["type"].startswith("live_s") and ev["type"] != "live_end":
            r = rnd.random()
            if r < 0.10:
                ev["ts"] = t + rnd.randrange(-60_000, 20_000)
            elif r < 0.11:
                ev["ts"] = t - rnd.randrange(6 * MIN, 15 * MIN)
        timed.append((arrival if arrival is not None else t + rnd.random(), ev))
        if rnd.random() < 0.01:
            timed.append((t + rnd.randrange(0, 5_000), dict(ev)))

    for k in range(n_rooms):
        room = f"room{k}"
        start = T0 + rnd.randrange(0, 150 * MIN)
        dur = rnd.randrange(10 * MIN, 60 * MIN)
        emit(start, {"type": "live_start", "room_id": room, "user_id": f"host{k}"})
        if rnd.random() < 0.9:
            emit(start + dur, {"type": "live_end", "room_id": room, "user_id": f"host{k}"})
        for _ in range(rnd.randrange(2, 14)):
            uid = f"u{rnd.randrange(n_users)}"
            ch = rnd.choice(CHANNELS)
            t = start + rnd.randrange(0, dur)
            base = {"room_id": room, "user_id": uid, "channel": ch}
            emit(t, {**base, "type": "live_join"})
            if rnd.random() < 0.1:
                emit(t + rnd.randrange(1_000, 60_000), {**base, "type": "live_join"})
            for _ in range(rnd.randrange(0, 4)):
                t += rnd.choice([5_000, 40_000, 2 * MIN, 7 * MIN])
                if rnd.random() < 0.5:
                    emit(t, {**base, "type": "live_comment"})
                else:
                    emit(t, {**base, "type": "live_like", "count": rnd.randrange(1, 30)})
            r = rnd.random()
            if r < 0.6:
                t += rnd.randrange(1_000, 20 * MIN)
                emit(t, {**base, "type": "live_leave"})
            if rnd.random() < 0.3:
                t += rnd.choice([10_000, 5 * MIN, 25 * MIN, 50 * MIN])
                amount = rnd.randrange(100, 50_000)
                order = {"type": "order_submit", "user_id": uid, "channel": ch,
                         "order_id": f"o{seed}-{n}", "amount": amount,
                         "items": [{"sku": f"sku{rnd.randrange(60)}", "qty": 1,
                                    "price": amount}]}
                if rnd.random() < 0.25:
                    order["live_room_id"] = rnd.choice([room, f"room{rnd.randrange(n_rooms)}"])
                emit(t, order)
                roll = rnd.random()
                status = "success" if roll < 0.8 else "failed"
                emit(t + rnd.randrange(1_000, 60_000), {
                    "type": "payment", "user_id": uid, "channel": ch,
                    "order_id": order["order_id"], "amount": amount, "status": status})
                if status == "failed":
                    emit(t + 70_000, {"type": "order_cancel", "user_id": uid, "channel": ch,
                                      "order_id": order["order_id"]})
                elif roll < 0.85:
                    emit(t + 90_000, {"type": "payment", "user_id": uid, "channel": ch,
                                      "order_id": order["order_id"], "amount": amount,
                                      "status": "success"})
        for _ in range(rnd.randrange(0, 2)):
            emit(start + rnd.randrange(0, dur), {"type": "live_leave", "room_id": room,
                                                 "user_id": f"u{rnd.randrange(n_users)}"})
    # Rooms still on air when the log ends, with viewers inside.
    end = max(t for t, _ in timed)
    for k in range(n_rooms, n_rooms + 5):
        start = int(end) - 3 * MIN
        emit(start, {"type": "live_start", "room_id": f"room{k}", "user_id": f"host{k}"})
        for j in range(20):
            emit(start + j * 1_000, {"type": "live_join", "room_id": f"room{k}",
                                     "user_id": f"u{rnd.randrange(n_users)}"})
    timed.sort(key=lambda x: x[0])
    return [ev for _, ev in timed]

"""A generated promotion day and a plain-Python reference of the coupon rules.

Written apart from agents/ on purpose, from docs/cart-recovery.md and, for the live follow-up's
watch time, the views of docs/live-and-ops.md: it simulates each user alone, in event-time
order (the room-wide ``live_end`` events at their place in the log), with the documented rules
and guards, so the engine's pushes can be checked against it.

Live follow-up as documented: every ``live_end`` of a room ends a session (one no later than the
room's previous end is a repeat and changes nothing). A join opens a view unless one is open (a
repeated join is activity, the view keeps its first join); comments and likes are activity; a
view with no activity for ``IDLE`` closes at its last activity plus ``IDLE``; a leave closes it
at its time; the end closes it at the end, or at its idle time if earlier. The session's watch
time is the sum of the user's views of the room closed since the previous end. A viewer who
watched at least ``MIN_WATCH`` is followed up ``WITHIN`` after the end, suppressed if they
ordered at or after the end.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from shopstream.kafka_io.partitioner import partition_for
from tests.agents.coupon_support import HOUR, MIN, SH, at

DAY_START = at(11, 0)
#: Every partition gets a last event here, so all partitions end on the same watermark.
END = at(12, 9)
#: room -> (host, sessions on air): rooms go on air several times a day, one back to back; the
#: follow-ups of r3's evening session and r4's last one fall in quiet hours (deferred to 08:00).
ROOMS = {"r1": ("h1", [(at(11, 10), at(11, 10, 50)), (at(11, 14), at(11, 14, 40)),
                       (at(11, 19), at(11, 19, 45))]),
         "r2": ("h2", [(at(11, 11), at(11, 11, 40)), (at(11, 11, 45), at(11, 12, 30)),
                       (at(11, 20), at(11, 21))]),
         "r3": ("h3", [(at(11, 13, 15), at(11, 14, 5)), (at(11, 21, 15), at(11, 22, 10))]),
         "r4": ("h4", [(at(11, 9), at(11, 9, 30)), (at(11, 16), at(11, 17)),
                       (at(11, 23), at(11, 23, 40))])}
SESSIONS = sorted((room, start, end) for room, (_, sessions) in ROOMS.items()
                  for start, end in sessions)
PRICES = (990, 2990, 4990, 7990, 9990, 12_900, 15_900, 17_900)

STEPS_MIN = (60, 240, 600)
STEP_COUPON = (0, 1000, 0)
SECTIONS = {"cart": {"steps": [{"after_min": a, "coupon_fen": c}
                               for a, c in zip(STEPS_MIN, STEP_COUPON, strict=True)]},
            "coupons": {"daily_cap": 2, "live_followup": {"min_watch_min": 10, "within_min": 30}}}
COOLDOWN = {"cart_recovery": 7 * 24 * HOUR, "threshold_nudge": 7 * 24 * HOUR, "new_user": 0,
            "live_followup": 24 * HOUR}
COUPON = {"threshold_nudge": 2000, "new_user": 1000, "live_followup": 500}
RULE_ORDER = ("cart_recovery", "threshold_nudge", "new_user", "live_followup")
THRESHOLD, BAND, MIN_WATCH, WITHIN, CAP = 19_900, 3_000, 10 * MIN, 30 * MIN, 2
#: ``[live] idle_ms`` default.
IDLE = 5 * MIN


def generate_day(users: int, partitions: int, seed: int = 7) -> list[dict[str, Any]]:
    """Sessions of browsing, carts, orders and live viewing spread over one Shanghai day."""
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []

    def add(etype: str, user: str, ts: int, **f: Any) -> None:
        out.append({"event_id": f"d{len(out)}", "type": etype, "ts": ts, "user_id": user, **f})

    for room, (host, sessions) in ROOMS.items():
        for start, end in sessions:
            add("live_start", host, start, room_id=room)
            add("live_end", host, end, room_id=room)
    for i in range(users):
        u = f"u{i}"
        cart: dict[str, int] = {}
        for _ in range(rnd.randint(1, 4)):
            t = DAY_START + rnd.randrange(24 * HOUR)
            add("page_view", u, t, page="home")
            for _ in range(rnd.randint(1, 5)):
                t += rnd.randint(5_000, 120_000)
                add("product_view", u, t, sku=f"k{rnd.randrange(50)}", price=rnd.choice(PRICES))
            if rnd.random() < 0.6:
                for _ in range(rnd.randint(1, 3)):
                    t += rnd.randint(5_000, 300_000)
                    sku = f"k{rnd.randrange(50)}"
                    cart[sku] = rnd.choice(PRICES)
                    add("cart_add", u, t, sku=sku, qty=rnd.randint(1, 2), price=cart[sku])
            if cart and rnd.random() < 0.15:
                t += rnd.randint(5_000, 3 * HOUR)
                add("cart_remove", u, t, sku=rnd.choice(sorted(cart)), qty=1)
            if cart and rnd.random() < 0.3:
                t += rnd.randint(MIN, 2 * HOUR)
                sku = rnd.choice(sorted(cart))
                add("order_submit", u, t, order_id=f"o{len(out)}", amount=cart[sku],
                    items=[{"sku": sku, "qty": 1, "price": cart[sku]}])
                add("payment", u, t + rnd.randint(1_000, 600_000), order_id=f"o{len(out)}",
                    amount=cart[sku], status=rnd.choice(("success", "success", "failed")))
            if rnd.random() < 0.3:
                _viewing(rnd, add, u)
    for p in range(partitions):
        clock = next(f"clock{j}" for j in range(10_000)
                     if partition_for(f"clock{j}", partitions) == p)
        add("page_view", clock, END, page="home")
    return out


def _viewing(rnd: random.Random, add: Any, u: str) -> None:
    """One user in one or two sessions: joins, activity with gaps (some past the idle time),
    repeated joins, leaves and rejoins, sometimes a stray leave; some order after the end,
    before the follow-up is due or after."""
    for room, start, end in rnd.sample(SESSIONS, rnd.choice((1, 1, 1, 2))):
        t = start + rnd.randrange(end - start - MIN)
        add("live_join", u, t, room_id=room)
        while True:
            t += rnd.choice((20_000, 90_000, 3 * MIN, 4 * MIN, 4 * MIN + 59_000, 6 * MIN))
            if t >= end:
                break
            roll = rnd.random()
            if roll < 0.45:
                add("live_comment", u, t, room_id=room)
            elif roll < 0.75:
                add("live_like", u, t, room_id=room, count=rnd.randint(1, 9))
            elif roll < 0.85:
                add("live_join", u, t, room_id=room)
            elif roll < 0.93:
                add("live_leave", u, t, room_id=room)
                if rnd.random() < 0.5:
                    break
            else:
                add("live_leave", u, t, room_id=room)
                t += rnd.randint(1_000, 2 * MIN)
                if t < end:
                    add("live_join", u, t, room_id=room)
        roll = rnd.random()
        if roll < 0.3:
            t = end + rnd.choice((0, rnd.randint(1_000, WITHIN - 1), WITHIN, WITHIN + 1_000))
            price = rnd.choice(PRICES)
            add("order_submit", u, t, order_id=f"lo{u}{t}", amount=price,
                items=[{"sku": "k0", "qty": 1, "price": price}])


def _pid(rule: str, user: str, trigger: int, step: int) -> str:
    return hashlib.sha1(f"{rule}|{user}|{trigger}|{step}".encode()).hexdigest()[:24]  # noqa: S324


def _local(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, SH)


def _release(ts: int) -> int | None:
    d = _local(ts)
    if 8 <= d.hour < 22:
        return None
    day = d.date() if d.hour < 8 else d.date() + timedelta(days=1)
    return int(datetime(day.year, day.month, day.day, 8, tzinfo=SH).timestamp() * 1000)


def reference(events: list[dict[str, Any]], steps_min: tuple[int, ...] = STEPS_MIN,
              end: int = END) -> tuple[set[tuple], Counter[tuple[str, str]]]:
    """(push_id, rule, user, ts, step) of every push, and counts of other decisions.

    The log is ``events`` sorted by time (stable), as the tests produce it; every user's
    stream gets each other user's ``live_end`` at its place (room-wide). ``steps_min``: the
    cart schedule's delays; ``end``: the time every partition's last event reaches."""
    log = sorted(events, key=lambda e: e["ts"])
    ends = [(i, e, True) for i, e in enumerate(log) if e["type"] == "live_end"]
    per_user: dict[str, list[tuple[int, dict[str, Any], bool]]] = {}
    for i, e in enumerate(log):
        per_user.setdefault(e["user_id"], []).append((i, e, False))
    pushes: set[tuple] = set()
    counts: Counter[tuple[str, str]] = Counter()
    for user, own in per_user.items():
        wide = [x for x in ends if x[1]["user_id"] != user]
        stream = [(e, is_wide) for _, e, is_wide in heapq.merge(own, wide, key=lambda x: x[0])]
        _simulate(user, stream, pushes, counts, steps_min, end)
    return pushes, counts


def _simulate(user: str, stream: list[tuple[dict[str, Any], bool]], pushes: set[tuple],
              counts: Counter[tuple[str, str]], steps_min: tuple[int, ...], end: int) -> None:
    items: dict[str, list[int]] = {}
    episode: int | None = None
    step = -1
    ordered = -1
    sent_by_day: Counter[str] = Counter()
    last: dict[str, int] = {}
    last_episode: int | None = None
    views: dict[str, list[int]] = {}  # room -> [join, last activity] of the open view
    watch: Counter[str] = Counter()   # room -> watch time of views closed this session
    room_ended: dict[str, int] = {}   # room -> its latest end
    heap: list[tuple[int, int, tuple[int, ...], int, str, Any]] = []
    seq = 0

    def push(t: int, prio: int, kind: str, data: Any, tie: tuple[int, ...] = ()) -> None:
        # Deferred pushes released at the same 08:00 go in order of trigger, rule, step.
        nonlocal seq
        seq += 1
        if t <= end:
            heapq.heappush(heap, (t, prio, tie, seq, kind, data))

    def total() -> int:
        return sum(q * p for q, p in items.values())

    def guard(c: dict[str, Any], now: int, may_defer: bool = True) -> None:
        nonlocal last_episode
        rule = c["rule"]
        valid = ordered < c["since"]
        if rule == "cart_recovery":
            valid = valid and episode == c["episode"]
        if rule == "threshold_nudge":
            valid = valid and THRESHOLD - BAND <= total() < THRESHOLD
        if not valid:
            counts[(rule, "suppressed")] += 1
            return
        rel = _release(now) if may_defer else None
        if rel is not None:
            counts[(rule, "deferred")] += 1
            push(rel, 0, "defer", c, (c["trigger"], RULE_ORDER.index(rule), c["step"]))
            return
        same = rule == "cart_recovery" and last_episode == c["episode"]
        day = _local(now).date().isoformat()
        if (rule in last and not same and now < last[rule] + COOLDOWN[rule]) or \
                sent_by_day[day] >= CAP:
            counts[(rule, "capped")] += 1
            return
        sent_by_day[day] += 1
        last[rule] = now
        if rule == "cart_recovery":
            last_episode = c["episode"]
        pushes.add((_pid(rule, user, c["trigger"], c["step"]), rule, user, now, c["step"]))

    def cand(rule: str, trigger: int, since: int, st: int = 0, ep: int | None = None) -> dict:
        return {"rule": rule, "trigger": trigger, "since": since, "step": st, "episode": ep}

    def rearm(t: int) -> None:
        nonlocal episode, step
        if items:
            episode, step = t, 0
            push(t + steps_min[0] * MIN, 0, "cart", t)
        else:
            episode, step = None, -1

    def close(room: str, t: int) -> None:
        join, _ = views.pop(room)
        watch[room] += max(0, t - join)

    def viewer(room: str, typ: str, t: int) -> None:
        v = views.get(room)
        if v is not None and t > v[1] + IDLE:
            close(room, v[1] + IDLE)
            v = None
        if v is None:
            if typ == "live_join":
                views[room] = [t, t]
        elif typ == "live_leave":
            close(room, t)
        else:
            v[1] = max(v[1], t)

    def room_end(room: str, t: int) -> None:
        if t <= room_ended.get(room, -1):
            return
        room_ended[room] = t
        v = views.get(room)
        if v is not None:
            close(room, min(t, v[1] + IDLE))
        watched = watch.pop(room, 0)
        if watched >= MIN_WATCH:
            push(t + WITHIN, 0, "live", (room, t))

    for e, is_wide in stream:
        push(e["ts"], 1, "wide" if is_wide else "event", e)
    first = True
    while heap:
        t, _, _, _, kind, data = heapq.heappop(heap)
        if kind == "event":
            e = data
            if first:
                first = False
                guard(cand("new_user", t, t), t)
            typ = e["type"]
            if typ == "cart_add":
                items[e["sku"]] = [items.get(e["sku"], [0, 0])[0] + e["qty"], e["price"]]
                rearm(t)
                if THRESHOLD - BAND <= total() < THRESHOLD:
                    guard(cand("threshold_nudge", t, t), t)
            elif typ == "cart_remove":
                if e["sku"] in items:
                    items[e["sku"]][0] -= e["qty"]
                    if items[e["sku"]][0] <= 0:
                        del items[e["sku"]]
                rearm(t)
            elif typ == "order_submit" or (typ == "payment" and e["status"] == "success"):
                ordered = t
                for it in e.get("items", []):
                    if it["sku"] in items:
                        items[it["sku"]][0] -= it["qty"]
                        if items[it["sku"]][0] <= 0:
                            del items[it["sku"]]
                if episode is not None and step >= 0:
                    counts[("cart_recovery", "suppressed")] += 1
                episode, step = None, -1
            elif typ in ("live_join", "live_comment", "live_like", "live_leave"):
                viewer(e["room_id"], typ, t)
            elif typ == "live_end":
                room_end(e["room_id"], t)
        elif kind == "wide":
            room_end(data["room_id"], t)
        elif kind == "cart":
            if episode != data or step < 0 or episode + steps_min[step] * MIN != t:
                continue
            fired = step
            step = step + 1 if step + 1 < len(steps_min) else -1
            if step >= 0:
                push(episode + steps_min[step] * MIN, 0, "cart", episode)
            guard(cand("cart_recovery", t, episode, fired, episode), t)
        elif kind == "defer":
            guard(data, t, may_defer=False)
        else:
            guard(cand("live_followup", t, data[1]), t)

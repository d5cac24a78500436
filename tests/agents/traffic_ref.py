"""Plain-Python reference of traffic value (docs/traffic.md), and a log generator.

Written from the definitions, not from agents/traffic: repeated event ids are left out; a
user's events are read in log order. Sessions: an event joins its user's current session when
it has the same session_id (or both none) and its time is less than 30 minutes before the
session's first or after its last event, else it starts a new current one. A session counts
in the minute, hour and business day (Asia/Shanghai) of its earliest event, under overall, the
channel (``other`` when absent) and the campaign (if any) of the event that started it;
bounced with exactly one page view; dwell = latest - earliest. UV: distinct users with a page
view in the bucket (and dim). PV: page views; orders: order_submit; paid orders and paid GMV:
successful payments, each at its own time under its own channel and campaign.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

MIN = 60_000
GAP = 30 * MIN
ZONE = ZoneInfo("Asia/Shanghai")
#: 2026-11-11 23:10 in Shanghai: the logs cross a business day.
T0 = int(datetime(2026, 11, 11, 23, 10, tzinfo=ZONE).timestamp() * 1000)
CHANNELS = ["search", "ads", "recommend", "live", "social", "push", "direct", "other", None]
CAMPAIGNS = ["d11-main", "d11-phones", "brand-x", "retarget", None, None]
#: Largest distance, in time, of an event behind an earlier one in the log (< the lateness).
DISORDER = 90_000
Key = tuple[str, int, str]


def bucket(ts: int, res: str) -> int:
    if res == "minute":
        return ts - ts % MIN
    if res == "hour":
        return ts - ts % (60 * MIN)
    local = datetime.fromtimestamp(ts / 1000, ZONE)
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def where(ev: dict[str, Any]) -> list[str]:
    out = ["*", "c:" + (ev.get("channel") or "other")]
    if ev.get("campaign"):
        out.append("k:" + ev["campaign"])
    return out


def traffic_reference(log: list[dict[str, Any]]) -> dict[Key, dict[str, int]]:
    """{(res, bucket start, dim): {measure: n}}, res minute|hour|day, dim ``*``, ``c:<ch>``,
    ``k:<campaign>``; measures uv, pv, sessions, bounces, dwell_ms, orders, paid_orders,
    paid_gmv."""
    ids: set[str] = set()
    per_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in log:
        if ev["event_id"] not in ids:
            ids.add(ev["event_id"])
            per_user[ev["user_id"]].append(ev)
    out: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    visitors: dict[Key, set[str]] = defaultdict(set)
    for user, events in per_user.items():
        sessions: list[list[dict[str, Any]]] = []
        for ev in events:
            if sessions:
                cur = sessions[-1]
                lo = min(e["ts"] for e in cur)
                hi = max(e["ts"] for e in cur)
                if cur[0].get("session_id") == ev.get("session_id") and \
                        lo - GAP < ev["ts"] < hi + GAP:
                    cur.append(ev)
                    continue
            sessions.append([ev])
        for evs in sessions:
            first = min(e["ts"] for e in evs)
            dwell = max(e["ts"] for e in evs) - first
            pvs = sum(e["type"] == "page_view" for e in evs)
            for res in ("minute", "hour", "day"):
                for dim in where(evs[0]):
                    row = out[(res, bucket(first, res), dim)]
                    row["sessions"] += 1
                    row["bounces"] += pvs == 1
                    row["dwell_ms"] += dwell
        for ev in events:
            for res in ("minute", "hour", "day"):
                for dim in where(ev):
                    k = (res, bucket(ev["ts"], res), dim)
                    if ev["type"] == "page_view":
                        out[k]["pv"] += 1
                        visitors[k].add(user)
                    elif ev["type"] == "order_submit":
                        out[k]["orders"] += 1
                    elif ev["type"] == "payment" and ev["status"] == "success":
                        out[k]["paid_orders"] += 1
                        out[k]["paid_gmv"] += ev["amount"]
    for k, users in visitors.items():
        out[k]["uv"] = len(users)
    return {k: dict(v) for k, v in out.items() if any(v.values())}


def ratios(row: dict[str, int]) -> dict[str, float | None]:
    """The documented ratios of one row."""
    def div(a: str, b: str) -> float | None:
        return row.get(a, 0) / row[b] if row.get(b) else None

    return {"bounce_rate": div("bounces", "sessions"), "avg_dwell_ms": div("dwell_ms", "sessions"),
            "conversion": div("orders", "uv"), "aov": div("paid_gmv", "paid_orders"),
            "uv_value": div("paid_gmv", "uv")}


def generate(n_events: int, n_users: int, seed: int, span_ms: int) -> list[dict[str, Any]]:
    """Visits of ``n_users`` over ``span_ms`` from T0: sessions with and without session_id
    (some ids reused later, some visits with a 30-40 minute pause), channels and campaigns per
    visit with events that name another or none, orders and payments (some failed), 1% of
    events sent twice, the log in time order up to ``DISORDER`` out of place."""
    rnd = random.Random(seed)
    events: list[dict[str, Any]] = []
    n = 0
    last_sid: dict[str, str] = {}
    while len(events) < n_events:
        user = f"u{rnd.randrange(n_users)}"
        t = T0 + rnd.randrange(span_ms)
        r = rnd.random()
        sid = (None if r < 0.3 else last_sid.get(user, f"s{n}") if r < 0.4 else f"s{n}")
        if sid:
            last_sid[user] = sid
        channel, campaign = rnd.choice(CHANNELS), rnd.choice(CAMPAIGNS)
        for i in range(rnd.choice([1, 1, 1, 2, 3, 5, 8, 12])):
            n += 1
            if i:
                t += rnd.randrange(31 * MIN, 40 * MIN) if rnd.random() < 0.03 \
                    else rnd.randrange(1_000, 8 * MIN)
            ev: dict[str, Any] = {"event_id": f"e{n}", "ts": t, "user_id": user}
            if sid:
                ev["session_id"] = sid
            ch, camp = (channel, campaign) if rnd.random() < 0.9 else \
                (rnd.choice(CHANNELS), rnd.choice(CAMPAIGNS))
            if ch:
                ev["channel"] = ch
            if camp:
                ev["campaign"] = camp
            kind = rnd.random()
            if i == 0 and kind < 0.9 or 0.3 < kind < 0.7:
                ev.update(type="page_view", page=f"/p{rnd.randrange(50)}")
            elif kind < 0.85:
                ev.update(type="product_view", sku=f"k{rnd.randrange(30)}", price=9_900)
            elif kind < 0.93:
                ev.update(type="cart_add", sku=f"k{rnd.randrange(30)}", qty=1, price=9_900)
            else:
                amount = rnd.randrange(1_000, 60_000)
                ev.update(type="order_submit", order_id=f"o{n}", amount=amount,
                          items=[{"sku": "k1", "qty": 1, "price": amount}])
                events.append(ev)
                n += 1
                t += rnd.randrange(1_000, 3 * MIN)
                ev = {**ev, "event_id": f"e{n}", "ts": t, "type": "payment",
                      "status": "success" if rnd.random() < 0.85 else "failed"}
                del ev["items"]
            events.append(ev)
    events.sort(key=lambda e: e["ts"] + rnd.randrange(DISORDER))
    log: list[dict[str, Any]] = []
    for ev in events:
        log.append(ev)
        if rnd.random() < 0.01:
            log.append(dict(ev))
    return log

"""Ad economics restated from docs/ads.md in plain Python, independent of agents/ads, and a
generator of logs that exercise its rules (attribution window edges, own campaigns, keywords,
cancellations, repeated and failed payments, new and returning buyers, late events,
duplicates, campaigns with a healthy and a poor ROAS, and one whose ROAS dips and recovers)."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from shopstream.kafka_io.partitioner import partition_for

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_794_326_400_000  # 2026-11-11 00:00 Asia/Shanghai
NAMES = ("spend", "clicks", "orders", "paid_orders", "paid_gmv", "new_buyers")
CHANNELS = ("search", "ads", "recommend", "live", "social", "push", "direct", "other")


def home(ev: dict[str, Any], partitions: int) -> int:
    """An ad_cost lives on its campaign's partition, every other event on its user's."""
    key = ev["campaign"] if ev["type"] == "ad_cost" else ev["user_id"]
    return partition_for(key, partitions)


def reference(log: list[dict[str, Any]], partitions: int, lateness: int, paid: set[str],
              window: int, new_window: int) -> tuple[dict[tuple[int, str, str, str],
                                                         dict[str, int]], int]:
    """{(minute, channel, campaign, keyword): measures} and the number of late ads events."""
    rows: dict[tuple[int, str, str, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(NAMES, 0))
    late = 0
    streams: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ev in log:
        streams[home(ev, partitions)].append(ev)
    for stream in streams.values():
        seen: set[str] = set()
        wm = 0
        touches: dict[str, list[tuple[int, tuple[str, str, str]]]] = defaultdict(list)
        payments: dict[str, list[int]] = defaultdict(list)
        open_orders: dict[str, tuple[str, str, str]] = {}
        for ev in stream:
            if ev["event_id"] in seen:
                continue
            seen.add(ev["event_id"])
            t = ev["ts"]
            if t < wm - lateness:
                late += 1
                continue
            wm = max(wm, t)
            minute = t // MIN * MIN
            kind = ev["type"]
            if kind == "ad_cost":
                key = (minute, ev["channel"], ev["campaign"], ev.get("keyword", ""))
                rows[key]["spend"] += ev["cost"]
            elif kind == "page_view" and "campaign" in ev:
                dims = (ev.get("channel", "other"), ev["campaign"], ev.get("keyword", ""))
                rows[(minute, *dims)]["clicks"] += 1
                if ev.get("channel") in paid:
                    touches[ev["user_id"]].append((t, dims))
            elif kind == "order_submit":
                if "campaign" in ev:
                    dims = (ev.get("channel", "other"), ev["campaign"], "")
                else:
                    # The latest touch in event time; of equal times the one seen last.
                    best = None
                    for tt, d in touches[ev["user_id"]]:
                        if best is None or tt >= best[0]:
                            best = (tt, d)
                    dims = best[1] if best and 0 <= t - best[0] <= window else None
                key_o = (ev["user_id"], ev["order_id"])
                if dims is not None:
                    rows[(minute, *dims)]["orders"] += 1
                    open_orders[repr(key_o)] = dims
            elif kind == "order_cancel":
                open_orders.pop(repr((ev["user_id"], ev["order_id"])), None)
            elif kind == "payment" and ev["status"] == "success":
                earlier = payments[ev["user_id"]]
                is_new = not any(p >= t - new_window for p in earlier)
                earlier.append(t)
                dims = open_orders.pop(repr((ev["user_id"], ev["order_id"])), None)
                if dims is not None:
                    r = rows[(minute, *dims)]
                    r["paid_orders"] += 1
                    r["paid_gmv"] += ev["amount"]
                    r["new_buyers"] += is_new
    return dict(rows), late


def roas_alerts(rows: dict[tuple[int, str, str, str], dict[str, int]], floor: float,
                min_spend: int, through: int) -> list[tuple[str, int, int, int]]:
    """(campaign, minute, spend, paid GMV) of every alert, judging each minute from the first
    with a row to ``through``: a campaign's trailing hour is its rows of minutes m-59..m (over
    channels and keywords); it is below when its spend is above min_spend and paid GMV /
    spend is below the floor; an alert when it is below and was not at the minute before."""
    by_minute: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for (minute, _ch, campaign, _kw), m in rows.items():
        acc = by_minute[minute][campaign]
        acc[0] += m["spend"]
        acc[1] += m["paid_gmv"]
    out = []
    was_below: set[str] = set()
    for m in range(min(by_minute), through + MIN, MIN):
        trailing: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for k in range(60):
            for campaign, (s, g) in by_minute.get(m - k * MIN, {}).items():
                trailing[campaign][0] += s
                trailing[campaign][1] += g
        below = {c for c, (s, g) in trailing.items() if s > min_spend and g / s < floor}
        out += [(c, m, trailing[c][0], trailing[c][1]) for c in sorted(below - was_below)]
        was_below = below
    return sorted(out)


def generate(n_users: int, n_campaigns: int, hours: int, seed: int,
             late_share: float = 0.0) -> list[dict[str, Any]]:
    """A log in arrival order; ``late_share`` of user events arrive 6-15 minutes behind."""
    rnd = random.Random(seed)
    timed: list[tuple[float, dict[str, Any]]] = []
    n = 0
    campaigns = [f"camp{k}" for k in range(n_campaigns)]
    # Some campaigns convert well; the last two poorly, at a high spend: the last one only in
    # the first 30 minutes of every 100, so its trailing hour recovers and falls again.
    pull = {c: (0.5 if k < n_campaigns - 2 else 0.0) for k, c in enumerate(campaigns)}
    price = {c: (3_000 if k < n_campaigns - 2 else 2_000_000) for k, c in enumerate(campaigns)}

    def price_at(c: str, minute: int) -> int:
        if c == campaigns[-1] and (minute - T0) % (100 * MIN) >= 30 * MIN:
            return 3_000
        return price[c]

    keywords = ["phone", "shoes", "tea", "中文|关键词"]

    def emit(t: int, ev: dict[str, Any]) -> None:
        nonlocal n
        n += 1
        ev = {**ev, "event_id": f"a{seed}-{n}", "ts": t}
        arrival = t + rnd.random() * 5_000
        if ev["type"] != "ad_cost" and rnd.random() < late_share:
            arrival = t + rnd.randrange(6 * MIN, 15 * MIN)
        timed.append((arrival, ev))
        if rnd.random() < 0.01:
            timed.append((arrival + rnd.randrange(0, 3_000), dict(ev)))

    end = T0 + hours * HOUR
    for c in campaigns:
        for minute in range(T0, end, MIN):
            if rnd.random() < 0.7:
                ev = {"type": "ad_cost", "campaign": c, "channel": rnd.choice(["ads", "social"]),
                      "cost": rnd.randrange(0, price_at(c, minute)),
                      "creative": f"cr{rnd.randrange(3)}"}
                if rnd.random() < 0.3:
                    ev["keyword"] = rnd.choice(keywords)
                emit(minute + rnd.randrange(MIN), ev)
    for k in range(n_users):
        uid = f"u{k}"
        t = T0 + rnd.randrange(0, hours * HOUR)
        for _ in range(rnd.randrange(1, 6)):
            t += rnd.choice([0, 1_000, 5 * MIN, 29 * MIN, 30 * MIN, 31 * MIN, 2 * HOUR])
            camp = rnd.choice(campaigns)
            ch = rnd.choice(["ads", "ads", "search", "social", "recommend"])
            view: dict[str, Any] = {"type": "page_view", "user_id": uid, "page": "p",
                                    "channel": ch}
            if rnd.random() < 0.8:
                view["campaign"] = camp
            if rnd.random() < 0.3:
                view["keyword"] = rnd.choice(keywords)
            if rnd.random() < 0.1:
                del view["channel"]
            emit(t, view)
            if rnd.random() > pull[camp] + 0.1:
                continue
            gap = rnd.choice([0, 2_000, 10 * MIN, 29 * MIN, 30 * MIN, 31 * MIN, 3 * HOUR])
            amount = rnd.randrange(100, 60_000)
            oid = f"o{seed}-{n}"
            order: dict[str, Any] = {"type": "order_submit", "user_id": uid, "order_id": oid,
                                     "amount": amount, "channel": rnd.choice(CHANNELS),
                                     "items": [{"sku": "s1", "qty": 1, "price": amount}]}
            if rnd.random() < 0.15:
                order["campaign"] = rnd.choice(campaigns)
            if rnd.random() < 0.1:
                del order["channel"]
            t_o = t + gap
            emit(t_o, order)
            roll = rnd.random()
            pay = {"type": "payment", "user_id": uid, "order_id": oid, "amount": amount}
            if roll < 0.1:
                emit(t_o + 20_000, {"type": "order_cancel", "user_id": uid, "order_id": oid})
                emit(t_o + 30_000, {**pay, "status": "success"})
            elif roll < 0.25:
                emit(t_o + 20_000, {**pay, "status": "failed"})
            else:
                t_p = t_o + rnd.randrange(1_000, 60_000)
                emit(t_p, {**pay, "status": "success"})
                if roll > 0.95:
                    emit(t_o + 90_000, {**pay, "status": "success"})
                elif roll > 0.85:
                    # A repeat purchase at the new-buyer window's edge (2 h in the tests).
                    again = {**order, "order_id": oid + "r", "campaign": camp}
                    t_r = t_p + 2 * HOUR + rnd.choice([-1, 0, 1])
                    emit(t_r - 1_000, again)
                    emit(t_r, {**pay, "order_id": oid + "r", "status": "success"})
            t = t_o
    timed.sort(key=lambda x: x[0])
    return [ev for _, ev in timed]

"""Plain-Python reference of the funnel semantics (docs/funnels.md) and a traffic generator.

Written from the definition, not from agents/funnel*: a unit enters at its first step-1 event;
steps count in order by event time (equal times are in order), once per entry, while the
event time is before entry + window; after the window (for that event) or the last step, a
step-1 event starts a new entry; breakdown values come from the entry event. Events are taken
per partition in log order; duplicates (same event_id) and events older than the partition's
largest time so far minus the allowed lateness are left out.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shopstream.kafka_io.partitioner import partition_for

T0 = 1_795_000_020_000
MIN = 60_000
CHANNELS = ["search", "ads", "recommend", "live", "social", "push", "direct"]

# Funnels as TOML would give them.
FUNNELS_TOML: list[dict[str, Any]] = [
    {"name": "purchase",
     "steps": ["page_view", "product_view", "cart_add", "order_submit",
               {"type": "payment", "where": {"status": "success"}}]},
    {"name": "campaign", "count_by": "session", "window": "30m",
     "breakdowns": ["channel", "campaign"],
     "steps": [{"type": "page_view", "where": {"page": "campaign"}}, "product_view", "cart_add",
               "order_submit"]},
    {"name": "quick", "window_ms": 10 * MIN, "breakdowns": ["region", "device"],
     "steps": ["product_view", "cart_add", {"type": "payment", "where": {"status": "success"}}]},
    {"name": "failed-pay", "breakdowns": ["channel"],
     "steps": [{"type": "payment", "where": {"status": "failed"}}]},
]


def _pred(step: Any) -> Any:
    if isinstance(step, str):
        return lambda ev: ev["type"] == step
    where = step.get("where", {})
    return lambda ev: ev["type"] == step["type"] and all(ev.get(k) == v for k, v in where.items())


def window_of(f: dict[str, Any]) -> int:
    if "window_ms" in f:
        return int(f["window_ms"])
    w = f.get("window", "24h")
    return int(w[:-1]) * {"m": MIN, "h": 60 * MIN}[w[-1]]


def reach_unit(steps: list[Any], window: int, breakdowns: list[str],
               events: list[dict[str, Any]]) -> list[tuple[int, int, int, tuple[str, ...]]]:
    """(step number, entry time, reach time, breakdown values) for each step reached."""
    preds = [_pred(s) for s in steps]
    out = []
    cur: dict[str, Any] | None = None  # start, times (one per step reached), values
    for ev in events:
        t = ev["ts"]
        if cur is not None and len(cur["times"]) < len(preds) and t < cur["start"] + window:
            k = len(cur["times"])
            if t >= cur["times"][-1] and preds[k](ev):
                cur["times"].append(t)
                out.append((k + 1, cur["start"], t, cur["values"]))
            continue
        if preds[0](ev):
            values = tuple(str(ev[b]) if b in ev else "(none)" for b in breakdowns)
            cur = {"start": t, "times": [t], "values": values}
            out.append((1, t, t, values))
    return out


def accepted(log: list[dict[str, Any]], partitions: int, lateness: int) -> tuple[list[dict], int]:
    """Events the funnels see, in partition order, and the number of late ones."""
    seen: set[str] = set()
    wm: dict[int, int] = defaultdict(int)
    out, late = [], 0
    for ev in log:
        p = partition_for(ev["user_id"], partitions)
        if ev["event_id"] in seen:
            continue
        seen.add(ev["event_id"])
        if ev["ts"] < wm[p] - lateness:
            late += 1
        else:
            out.append(ev)
        wm[p] = max(wm[p], ev["ts"])
    return out, late


def _start(ts: int, res: str, zone: ZoneInfo) -> int:
    if res == "minute":
        return ts // MIN * MIN
    if res == "hour":
        return ts // (60 * MIN) * (60 * MIN)
    d = datetime.fromtimestamp(ts / 1000, zone)
    return int(datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() * 1000)


def reference(log: list[dict[str, Any]], funnels: list[dict[str, Any]], partitions: int,
              lateness: int = 5 * MIN, zone: str = "Asia/Shanghai") -> tuple[dict, int]:
    """{(funnel, view, res, by): {bucket start: {value: [count per step]}}} and late count."""
    tz = ZoneInfo(zone)
    events, late = accepted(log, partitions, lateness)
    out: dict[tuple[str, str, str, str], dict[int, dict[str, list[int]]]] = {}
    for f in funnels:
        units: dict[str, list[dict]] = defaultdict(list)
        for ev in events:
            if f.get("count_by", "user") == "session":
                if "session_id" not in ev:
                    continue
                units[ev["user_id"] + "\0" + ev["session_id"]].append(ev)
            else:
                units[ev["user_id"]].append(ev)
        bds = f.get("breakdowns", ["channel"])
        n = len(f["steps"])
        for evs in units.values():
            for step, entry, at, values in reach_unit(f["steps"], window_of(f), bds, evs):
                for view, t in (("cohort", entry), ("flow", at)):
                    for res in ("minute", "hour", "day"):
                        for by, v in zip(bds, values, strict=True):
                            slot = out.setdefault((f["name"], view, res, by), {})
                            counts = slot.setdefault(_start(t, res, tz), {}).setdefault(v, [0] * n)
                            counts[step - 1] += 1
    return out, late


def generate(n_users: int, seed: int, session_share: float = 0.95) -> list[dict[str, Any]]:
    """A log in arrival order: visits walking down the funnel with drop-offs, out-of-order
    timestamps (several devices), late arrivals, and re-sent duplicates."""
    rnd = random.Random(seed)
    timed: list[tuple[float, dict[str, Any]]] = []
    n = 0
    for u in range(n_users):
        uid = f"u{u}"
        t = T0 + rnd.randrange(0, 120 * MIN)
        region = rnd.choice(["east", "north", "south"])
        for visit in range(rnd.randint(3, 16)):
            sid = f"s{u}-{visit}"
            common = {"user_id": uid, "channel": rnd.choice(CHANNELS), "region": region,
                      "device": rnd.choice(["ios", "android", "web"])}
            if rnd.random() < 0.5:
                common["campaign"] = rnd.choice(["c11", "c618"])
            path: list[dict[str, Any]] = [
                {"type": "page_view", "page": "campaign" if rnd.random() < 0.4 else "home"}]
            for typ, p in (("product_view", 0.75), ("cart_add", 0.55), ("order_submit", 0.65),
                           ("payment", 0.85)):
                if rnd.random() > p:
                    break
                path.append({"type": typ})
            if rnd.random() < 0.3:
                path.insert(rnd.randrange(1, len(path) + 1), {"type": "product_view"})
            for item in path:
                t += rnd.choice([1_000, 20_000, 90_000, 4 * MIN, 9 * MIN])
                n += 1
                ev = {**common, **item, "event_id": f"e{n}", "ts": t}
                if rnd.random() < session_share:
                    ev["session_id"] = sid
                _fill(ev, n, rnd)
                r = rnd.random()
                if r < 0.12:
                    ev["ts"] = t + rnd.randrange(-60_000, 20_000)  # another device's clock
                elif r < 0.13:
                    ev["ts"] = t - rnd.randrange(6 * MIN, 15 * MIN)  # arrives late
                timed.append((t + rnd.random(), ev))
                if rnd.random() < 0.01:
                    timed.append((t + rnd.randrange(0, 5_000), dict(ev)))  # re-sent
            t += rnd.randrange(MIN, 40 * MIN)
    timed.sort(key=lambda x: x[0])
    return [ev for _, ev in timed]


def _fill(ev: dict[str, Any], n: int, rnd: random.Random) -> None:
    typ = ev["type"]
    if typ == "product_view":
        ev.update(sku=f"sku{n % 50}", price=1999)
    elif typ == "cart_add":
        ev.update(sku=f"sku{n % 50}", qty=1, price=1999)
    elif typ == "order_submit":
        ev.update(order_id=f"o{n}", items=[{"sku": "sku1", "qty": 1, "price": 1999}], amount=1999)
    elif typ == "payment":
        ev.update(order_id=f"o{n}", amount=1999,
                  status="success" if rnd.random() < 0.85 else "failed")

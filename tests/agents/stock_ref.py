"""Stock health restated from docs/stock.md in plain Python, independent of agents/stock, and
a generator of promotion-like logs with stock updates, orders, payments and returns.

The reference answers per (SKU, judged minute) by searching each SKU's sorted events rather
than folding minute by minute as the agent's rules do.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MIN = 60_000
DAY = 86_400_000
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: 2026-11-05 00:00 Asia/Shanghai.
START = 1_793_808_000_000


@dataclass(frozen=True)
class Cfg:
    sales_days: int = 7
    safety_factor: float = 1.5
    overstock_days: float = 60.0
    return_days: int = 30
    return_rate_max: float = 0.15
    return_min_sold: int = 20
    min_history_min: int = 60


def day_of(ts: int, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.fromtimestamp(ts / 1000, zone).replace(hour=0, minute=0, second=0,
                                                            microsecond=0)


def ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def generate(n_events: int, seed: int, skus: int = 30, users: int = 1500, days: int = 10,
             start: int = START) -> list[dict[str, Any]]:
    """A log in time order: orders (1-3 lines), payments (mostly success, some failed, some
    repeated), stock takes per SKU every few hours (some at zero), returns (``sku0`` comes back
    about a quarter of the time), page views as noise."""
    rng = random.Random(seed)
    span = days * 24 * 60 * MIN
    out: list[dict[str, Any]] = []
    open_orders: list[tuple[str, str, list[tuple[str, int]]]] = []
    paid: list[tuple[str, str, list[tuple[str, int]]]] = []
    sku_names = [f"sku{i}" for i in range(skus)]
    weights = [1 / (i + 1) for i in range(skus)]
    n = 0
    ts = start
    step = span // n_events
    while len(out) < n_events:
        ts += rng.randint(0, 2 * step)
        n += 1
        eid = f"e{n}"
        r = rng.random()
        user = f"u{rng.randrange(users)}"
        if r < 0.25:
            order = f"o{n}"
            lines = [(rng.choices(sku_names, weights)[0], rng.randint(1, 3))
                     for _ in range(rng.randint(1, 3))]
            out.append({"event_id": eid, "type": "order_submit", "ts": ts, "user_id": user,
                        "order_id": order, "amount": 100,
                        "items": [{"sku": s, "qty": q, "price": 100} for s, q in lines]})
            open_orders.append((user, order, lines))
        elif r < 0.47 and open_orders:
            user, order, lines = open_orders.pop(rng.randrange(len(open_orders)))
            status = "success" if rng.random() < 0.85 else "failed"
            out.append({"event_id": eid, "type": "payment", "ts": ts, "user_id": user,
                        "order_id": order, "amount": 100, "status": status})
            if status == "success":
                paid.append((user, order, lines))
                if rng.random() < 0.05:
                    out.append({"event_id": eid + "r", "type": "payment", "ts": ts + 1,
                                "user_id": user, "order_id": order, "amount": 100,
                                "status": "success"})
        elif r < 0.49:
            out.append({"event_id": eid, "type": "payment", "ts": ts, "user_id": user,
                        "order_id": f"nope{n}", "amount": 1, "status": "success"})
        elif r < 0.56 and paid:
            user, order, lines = paid[rng.randrange(len(paid))]
            sku, qty = lines[0]
            rate = 1.0 if sku == "sku0" else 0.05
            if rng.random() < rate:
                out.append({"event_id": eid, "type": "order_return", "ts": ts, "user_id": user,
                            "order_id": order, "sku": sku, "qty": qty, "reason": "size"})
        elif r < 0.575:
            sku = rng.choices(sku_names, weights)[0]
            qty = 0 if rng.random() < 0.1 else rng.randint(1, 4000)
            ev = {"event_id": eid, "type": "stock_update", "ts": ts, "sku": sku, "qty": qty,
                  "warehouse": "w1"}
            out.append(ev)
            if rng.random() < 0.05:
                out.append({**ev, "event_id": eid + "s", "qty": rng.randint(0, 50)})
        else:
            out.append({"event_id": eid, "type": "page_view", "ts": ts, "user_id": user,
                        "page": "home"})
    return out[:n_events]


def alert_id(kind: str, sku: str, minute: int) -> str:
    return hashlib.sha256(f"{kind}|{sku}|{minute}".encode()).hexdigest()[:24]


class _Series:
    """One SKU's timed amounts, sorted, with prefix sums."""

    def __init__(self, rows: list[tuple[int, int]]) -> None:
        rows.sort(key=lambda r: r[0])
        self.ts = [t for t, _ in rows]
        self.sums = [0]
        for _, n in rows:
            self.sums.append(self.sums[-1] + n)

    def between(self, low_excl: int, high_incl: int) -> int:
        """Sum of amounts with low_excl < ts <= high_incl."""
        lo = bisect.bisect_right(self.ts, low_excl)
        hi = bisect.bisect_right(self.ts, high_incl)
        return self.sums[hi] - self.sums[lo] if hi > lo else 0


def reference(log: list[dict[str, Any]], cfg: Cfg,
              zone: ZoneInfo = SHANGHAI) -> tuple[dict[tuple[str, int], dict[str, Any]],
                                                  list[dict[str, Any]]]:
    """(view per (sku, judged minute), alerts in order) from the definitions.

    Log order is each user's partition order (one user's events are in log order here).
    Paid units: the lines of an order submitted before its first successful payment, at the
    payment's time. On hand at t: the latest stock update at or before t (the later one in
    log order at an equal time) minus units paid after it, up to t. Judged minutes: minutes
    holding an update, a paid unit or a return; in each, the SKUs with one, and every SKU seen
    so far in the first judged minute of a business day.
    """
    orders: dict[str, list[tuple[str, int]]] = {}
    updates: dict[str, list[tuple[int, int, int]]] = {}
    paid: dict[str, list[tuple[int, int]]] = {}
    returned: dict[str, list[tuple[int, int]]] = {}
    touched: dict[int, set[str]] = {}
    for seq, ev in enumerate(log):
        t = ev["type"]
        if t == "order_submit":
            units: dict[str, int] = {}
            for item in ev["items"]:
                units[item["sku"]] = units.get(item["sku"], 0) + item["qty"]
            orders[ev["order_id"]] = list(units.items())
        elif t == "payment" and ev["status"] == "success":
            lines = orders.pop(ev["order_id"], None)
            for sku, q in lines or []:
                paid.setdefault(sku, []).append((ev["ts"], q))
                touched.setdefault(ev["ts"] // MIN * MIN, set()).add(sku)
        elif t == "stock_update":
            updates.setdefault(ev["sku"], []).append((ev["ts"], seq, ev["qty"]))
            touched.setdefault(ev["ts"] // MIN * MIN, set()).add(ev["sku"])
        elif t == "order_return":
            returned.setdefault(ev["sku"], []).append((ev["ts"], ev["qty"]))
            touched.setdefault(ev["ts"] // MIN * MIN, set()).add(ev["sku"])
    for rows in updates.values():
        rows.sort()
    paid_s = {s: _Series(list(r)) for s, r in paid.items()}
    ret_s = {s: _Series(list(r)) for s, r in returned.items()}
    empty = _Series([])
    views: dict[tuple[str, int], dict[str, Any]] = {}
    alerts: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    state: dict[str, str] = {}
    high: dict[str, bool] = {}
    last_day: datetime | None = None
    for m in sorted(touched):
        t = m + MIN - 1
        day = day_of(m, zone)
        for sku in touched[m]:
            seen.setdefault(sku, m)
        skus = sorted(seen) if day != last_day else sorted(touched[m])
        last_day = day
        for sku in skus:
            ps = paid_s.get(sku, empty)
            ups = [u for u in updates.get(sku, []) if u[0] <= t]
            sales_from = day_of(ms(day - timedelta(days=cfg.sales_days - 1)) + 12 * 3600_000,
                                zone)
            # A rate over the span observed in the window: from its start or the SKU's first
            # minute, whichever is later, to the end of minute m.
            span = t + 1 - max(seen[sku], ms(sales_from))
            expected = ps.between(ms(sales_from) - 1, t) * DAY / span
            long_enough = span >= cfg.min_history_min * MIN
            ret_from = day_of(ms(day - timedelta(days=cfg.return_days - 1)) + 12 * 3600_000,
                              zone)
            sold = ps.between(ms(ret_from) - 1, t)
            back = ret_s.get(sku, empty).between(ms(ret_from) - 1, t)
            rate = back / sold if sold else None
            if ups:
                u_ts, _, u_qty = ups[-1]
                on_hand: int | None = u_qty - ps.between(u_ts, t)
            else:
                on_hand = None
            safety = cfg.safety_factor * expected
            if on_hand is None:
                st = "unknown"
            elif on_hand <= 0:
                st = "out"
            elif long_enough and expected > 0 and on_hand < safety:
                st = "low"
            elif long_enough and expected > 0 and on_hand > cfg.overstock_days * expected:
                st = "over"
            else:
                st = "ok"
            is_high = (rate is not None and sold >= cfg.return_min_sold
                       and rate > cfg.return_rate_max)
            view = {"on_hand": on_hand, "expected_daily_sales": expected, "safety_stock": safety,
                    "days_of_cover": on_hand / expected if on_hand is not None and expected
                    else None, "state": st, "sold": sold, "returned": back,
                    "return_rate": rate, "returns_high": is_high}
            views[(sku, m)] = view
            before = state.get(sku, "unknown")
            kinds = []
            if st in ("low", "out", "over") and st != before and not (before == "out"
                                                                     and st == "low"):
                kinds.append({"low": "stock_low", "out": "stock_out", "over": "stock_over"}[st])
            if is_high and not high.get(sku, False):
                kinds.append("stock_return_rate")
            state[sku], high[sku] = st, is_high
            alerts += [{"type": k, "sku": sku, "minute": m, "alert_id": alert_id(k, sku, m)}
                       for k in kinds]
    return views, alerts

"""A generated customer log of many weeks, deterministic from a seed, and the settings that
compress the 365-day and dormancy rules into it (customers_ref.py decides it).

Users are light (a few visits), regular (a few orders) or heavy (many orders, check-ins,
reviews, redemptions). Orders carry SKUs with repurchase cycles (exact and prefix keys); some
are paid twice, cancelled, refunded in part or whole (also after they left the spend window, or
after their points were spent), some are never paid, some payments fail or have no submit.
Reviews: some negative (service tasks, acknowledged in time, late, at the deadline, twice or
never, plus acks of unknown ids), some repeated, some of unpaid orders. Check-ins several a day,
some around the Shanghai midnight; redemptions, some beyond the balance; referrals (self,
repeated, invitee already paid). Events fall in quiet hours, some share a timestamp, some
arrive late (placed where no timer or event of the user lies between their time and the
partition's progress, so that their place is defined), a few repeat an event id.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shopstream.kafka_io.partitioner import partition_for
from tests.agents.customers_ref import (
    DAY,
    HOUR,
    MIN,
    SH,
    Cfg,
    Result,
    cfg_of,
    cycle_of,
    reference,
    task_id,
)

START = int(datetime(2026, 6, 20, tzinfo=SH).timestamp() * 1000)
DAYS = 100
END = START + DAYS * DAY

#: The settings the log is run with: a 40-day spend window, four bands, dormancy of 12 days
#: (8 and 6 for the upper tiers), a cooldown and tiers on some rules, coupons per tier; quiet
#: hours ending before 08:00, when the Shanghai day and the UTC day still differ.
SECTIONS: dict[str, Any] = {
    "coupons": {"quiet_hours": "22:30-07:30"},
    "customers": {
        "spend_days": 40,
        "daily_cap": 2,
        "tiers": [{"name": "new", "min_fen": 0}, {"name": "silver", "min_fen": 50_000},
                  {"name": "gold", "min_fen": 200_000}, {"name": "diamond", "min_fen": 600_000}],
        "review_reminder": {"after_days": 3, "coupon_fen": 500, "cooldown_days": 4,
                            "coupon_fen_by_tier": {"gold": 800, "diamond": 1000}},
        "repurchase_reminder": {"lead_days": 3, "coupon_fen": 2000,
                                "tiers": ["silver", "gold", "diamond"],
                                "cycles": {"milk-1l": 10, "milk*": 14, "rice*": 25,
                                           "coffee-beans": 20, "co*": 12, "diapers*": 18}},
        "dormant_recall": {"days": 12, "days_by_tier": {"gold": 8, "diamond": 6}},
        "service_apology": {"coupon_fen": 1000},
        "referral_reward": {"coupon_fen": 2000},
        "service": {"bad_rating": 2, "ack_min": 60},
    },
}
#: SKU -> price (fen). Cycles: milk-1l 10 (exact), milk-2l 14 (milk*), rice-5kg 25, coffee-beans
#: 20 (exact beats co*), cola-6 12 (co*), diapers-m 18; the rest have none.
CATALOG = {"milk-1l": 1_290, "milk-2l": 2_390, "rice-5kg": 6_990, "coffee-beans": 12_900,
           "cola-6": 3_490, "diapers-m": 15_900, "tshirt": 9_900, "phone": 199_900,
           "kettle": 29_900, "shoes": 59_900}


def config() -> Cfg:
    return cfg_of(SECTIONS)


class _Log:
    """Events with their arrival key: (arrival time, sequence)."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.rows: list[tuple[int, int, dict[str, Any]]] = []

    def add(self, typ: str, user: str | None, ts: int, **f: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"event_id": f"c{len(self.rows)}", "type": typ, "ts": ts, **f}
        if user is not None:
            ev["user_id"] = user
        self.rows.append((ts, len(self.rows), ev))
        return ev


def _moment(rnd: random.Random, day: int) -> int:
    """A time on ``day`` (0-based), a fifth of them in the quiet hours."""
    base = START + day * DAY
    if rnd.random() < 0.2:
        return base + rnd.choice((rnd.randrange(0, 8 * HOUR), rnd.randrange(22 * HOUR, DAY)))
    return base + rnd.randrange(8 * HOUR, 22 * HOUR)


def _items(rnd: random.Random, cfg: Cfg) -> list[dict[str, Any]]:
    """1-3 distinct SKUs, no two with the same cycle (their reminders would share a push id)."""
    out: list[dict[str, Any]] = []
    cycles: set[int] = set()
    for sku in rnd.sample(sorted(CATALOG), rnd.choice((1, 1, 2, 3))):
        c = cycle_of(sku, cfg.cycles)
        if c is not None and c in cycles:
            continue
        if c is not None:
            cycles.add(c)
        out.append({"sku": sku, "qty": rnd.randint(1, 3), "price": CATALOG[sku]})
    return out


def _order(log: _Log, u: str, t: int, k: int, cfg: Cfg, paid_times: set[int],
           bad: list[tuple[str, str, int]]) -> int:
    """One order of ``u`` at ``t``: submit, payments, maybe reviews, cancel, refunds. Returns
    the time of its last event before any much later refund."""
    rnd = log.rnd
    oid = f"{u}-o{k}"
    items = _items(rnd, cfg)
    amount = sum(it["qty"] * it["price"] for it in items)
    roll = rnd.random()
    if roll > 0.05:
        log.add("order_submit", u, t, order_id=oid, items=items, amount=amount)
    if roll < 0.08:
        return t  # never paid
    pay = t if rnd.random() < 0.1 else t + rnd.randrange(1_000, 30 * MIN)
    while pay in paid_times:
        pay += 1
    if rnd.random() < 0.1:
        log.add("payment", u, pay, order_id=oid, amount=amount, status="failed")
        pay += rnd.randrange(1_000, 10 * MIN)
        while pay in paid_times:
            pay += 1
    paid_times.add(pay)
    log.add("payment", u, pay, order_id=oid, amount=amount, status="success")
    last = pay
    if rnd.random() < 0.05:
        last = pay + rnd.randrange(1, 5 * MIN)
        log.add("payment", u, last, order_id=oid, amount=amount, status="success")
    roll = rnd.random()
    if roll < 0.05:
        last = pay + rnd.randrange(MIN, 2 * DAY)
        log.add("order_cancel", u, last, order_id=oid)
    elif roll < 0.15:
        last = pay + rnd.randrange(HOUR, 10 * DAY)
        part = rnd.choice((amount, amount // 2, rnd.randrange(1, amount + 1), amount + 500))
        log.add("refund", u, last, order_id=oid, amount=part)
        if rnd.random() < 0.3:
            last += rnd.randrange(MIN, DAY)
            log.add("refund", u, last, order_id=oid, amount=rnd.randrange(1, amount + 1))
    elif roll < 0.18:
        # After the order left the 40-day window: nothing for the customer loop.
        log.add("refund", u, pay + 40 * DAY + rnd.randrange(0, 5 * DAY), order_id=oid,
                amount=amount)
    if rnd.random() < 0.45:
        rt = pay if rnd.random() < 0.05 else pay + rnd.choice(
            (rnd.randrange(HOUR, 2 * DAY), rnd.randrange(2 * DAY, 6 * DAY)))
        rating = rnd.choice((1, 2, 3, 4, 5, 5, 5, 4, 4, 2))
        log.add("review", u, rt, order_id=oid, rating=rating, text="meh" if rating < 3 else "ok")
        last = max(last, rt)
        if rating <= cfg.bad_rating:
            bad.append((u, oid, rt))
        if rnd.random() < 0.12:
            rt2 = rt + rnd.choice((0, rnd.randrange(MIN, 3 * HOUR), rnd.randrange(HOUR, 3 * DAY)))
            rating2 = rnd.choice((1, 2, 4))
            log.add("review", u, rt2, order_id=oid, rating=rating2)
            last = max(last, rt2)
            if rating2 <= cfg.bad_rating:
                bad.append((u, oid, rt2))
    return last


def _aligned(log: _Log, u: str, k: int, cfg: Cfg, paid_times: set[int]) -> None:
    """Orders whose reminders fall on the very ms an earlier order leaves the spend window:
    the documented order of one user's timers (spend expiry first) gives their tier."""
    rnd = log.rnd
    for p0 in sorted(paid_times):
        if rnd.random() >= 0.3:
            continue
        sku = rnd.choice(("kettle", "milk-1l"))
        cycle = cycle_of(sku, cfg.cycles)
        lag = cfg.review_after_ms if cycle is None else cycle - cfg.lead_ms
        pay = p0 + cfg.spend_ms - lag
        if pay in paid_times or pay >= END - 8 * DAY:
            continue
        paid_times.add(pay)
        oid = f"{u}-a{k}"
        k += 1
        items = [{"sku": sku, "qty": 1, "price": CATALOG[sku]}]
        log.add("order_submit", u, pay, order_id=oid, items=items, amount=CATALOG[sku])
        log.add("payment", u, pay, order_id=oid, amount=CATALOG[sku], status="success")


def _acks(log: _Log, bad: list[tuple[str, str, int]], cfg: Cfg) -> None:
    """Acks of the tasks bad reviews may open: in time, at the deadline, late, twice, never."""
    rnd = log.rnd
    for u, oid, ts in bad:
        tid = task_id(u, oid, ts)
        roll = rnd.random()
        if roll < 0.25:
            continue
        at = ts + (rnd.randrange(MIN, cfg.ack_ms) if roll < 0.7 else
                   cfg.ack_ms if roll < 0.77 else rnd.randrange(cfg.ack_ms + 1, 6 * HOUR))
        log.add("task_ack", u, at, task_id=tid)
        if rnd.random() < 0.15:
            log.add("task_ack", u, at + rnd.randrange(0, HOUR), task_id=tid)
        if rnd.random() < 0.05:
            log.add("task_ack", u, at + 1, task_id=tid[::-1])


def _check_ins(log: _Log, u: str, day: int) -> None:
    rnd = log.rnd
    midnight = START + day * DAY
    roll = rnd.random()
    if roll < 0.15:  # around midnight: the last ms of one business day, the first of the next
        log.add("check_in", u, midnight - 1)
        log.add("check_in", u, midnight + rnd.choice((0, 1, 500)))
    else:
        t = _moment(rnd, day)
        log.add("check_in", u, t)
        if roll < 0.35:
            log.add("check_in", u, t + rnd.choice((0, rnd.randrange(1, 12 * HOUR))))


def _user(log: _Log, u: str, kind: str, cfg: Cfg, bad: list[tuple[str, str, int]]) -> int:
    """One user's events; returns how many orders they made."""
    rnd = log.rnd
    days = sorted(rnd.sample(range(DAYS), {"light": rnd.randint(1, 2),
                                           "regular": rnd.randint(2, 3),
                                           "heavy": rnd.randint(6, 12)}[kind]))
    paid_times: set[int] = set()
    orders = 0
    for d in days:
        t = _moment(rnd, d)
        log.add("page_view", u, t, page="home")
        if kind == "light":
            if rnd.random() < 0.3:
                _check_ins(log, u, d)
            continue
        for _ in range(rnd.choice((1, 1, 1, 2)) if kind == "regular" else rnd.randint(1, 3)):
            t += rnd.randrange(MIN, 3 * HOUR)
            if t >= END - 8 * DAY:
                break
            _order(log, u, t, orders, cfg, paid_times, bad)
            orders += 1
        if kind == "heavy" or rnd.random() < 0.3:
            _check_ins(log, u, d)
        if rnd.random() < (0.35 if kind == "heavy" else 0.05):
            log.add("points_redeem", u, t + rnd.randrange(HOUR, 5 * HOUR),
                    points=rnd.choice((10, 50, 200, 500, 1_000, 3_000)), reward="voucher")
        if rnd.random() < 0.03:
            log.add("refund", u, t + HOUR, order_id=f"{u}-nope", amount=1_000)
            log.add("review", u, t + HOUR, order_id=f"{u}-unpaid", rating=rnd.choice((1, 5)))
    if kind != "light" and rnd.random() < 0.5:
        _aligned(log, u, orders, cfg, paid_times)
    return orders


def _referrals(log: _Log, users: list[str], first_pay: Callable[[str], int | None]) -> None:
    rnd = log.rnd
    for inv in rnd.sample(users, len(users) // 30):
        ref = rnd.choice(users) if rnd.random() < 0.9 else f"outsider{rnd.randrange(10**6)}"
        paid = first_pay(inv)
        roll = rnd.random()
        if roll < 0.05:
            ref = inv  # self-referral: refused
        if paid is not None and roll > 0.2:
            at = paid - rnd.randrange(MIN, 3 * DAY)  # before the first payment: rewarded
        elif paid is not None:
            at = paid + rnd.choice((0, rnd.randrange(1, DAY)))  # already paid (or same ms)
        else:
            at = START + rnd.randrange(DAYS * DAY)
        at = max(at, START)
        log.add("referral", None, at, referrer_id=ref, invitee_id=inv)
        if rnd.random() < 0.1:
            log.add("referral", None, at + rnd.randrange(0, DAY), referrer_id=rnd.choice(users),
                    invitee_id=inv)


def generate(users: int, partitions: int, seed: int = 1) -> list[dict[str, Any]]:
    """The log in arrival order, ending with one event per partition at ``END``."""
    rnd = random.Random(seed)
    cfg = config()
    log = _Log(rnd)
    bad: list[tuple[str, str, int]] = []
    names = [f"u{i}" for i in range(users)]
    for u in names:
        roll = rnd.random()
        _user(log, u, "light" if roll < 0.7 else "regular" if roll < 0.95 else "heavy", cfg, bad)
    _acks(log, bad, cfg)
    first: dict[str, int] = {}
    for ts, _, ev in log.rows:
        if ev["type"] == "payment" and ev["status"] == "success":
            first[ev["user_id"]] = min(first.get(ev["user_id"], ts), ts)
    _referrals(log, names, first.get)
    for k in range(20):  # users whose only events are refused: never known
        t = START + rnd.randrange(DAYS * DAY)
        log.add("points_redeem", f"ghost{k}", t, points=1 + k, reward="voucher")
        log.add("task_ack", f"ghost{k}", t + 1, task_id=task_id(f"ghost{k}", "o", t))
    for ts, _, ev in list(log.rows):  # a few repeats of an event id, right after it
        if ev["type"] in ("check_in", "page_view") and rnd.random() < 0.003:
            log.rows.append((ts, len(log.rows), dict(ev)))
    rows = [r for r in log.rows if START <= r[0] < END]
    for p in range(partitions):
        closer = next(f"closer{j}" for j in range(10_000) if partition_for(f"closer{j}",
                                                                          partitions) == p)
        rows.append((END, len(log.rows) + p, {"event_id": f"end{p}", "type": "page_view",
                                              "ts": END, "user_id": closer, "page": "home"}))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [ev for _, _, ev in rows]


def with_late(log: list[dict[str, Any]], partitions: int, seed: int,
              share: float = 0.01) -> tuple[list[dict[str, Any]], Result]:
    """``log`` with a share of users' events arriving 10-90 minutes late, and the reference of
    the result. A late event is kept only where its place is defined: no event of its user
    arrives before it with a later time, and none of its user's timers fired between its time
    and its partition's progress when it arrives (else it would be decided after them)."""
    rnd = random.Random(seed)
    cfg = config()
    by_user: dict[str, list[int]] = {}
    for i, ev in enumerate(log):
        by_user.setdefault(_owner(ev), []).append(i)
    repeated = {k for k, n in Counter(ev["event_id"] for ev in log).items() if n > 1}
    chosen = {}
    for u in sorted(by_user):
        if u.startswith("u") and rnd.random() < share:
            i = rnd.choice(by_user[u])
            if log[i]["type"] in ("check_in", "page_view", "review", "points_redeem") and \
                    log[i]["event_id"] not in repeated:
                chosen[i] = rnd.randrange(10 * MIN, 90 * MIN)
    # Users share nothing but the referrer's reward (no state of the referrer): the timers
    # of the chosen users are those of their own events alone.
    users = {_owner(log[i]) for i in chosen}
    before = reference([ev for ev in log if _owner(ev) in users], cfg, END)
    moved = _arrive(log, chosen)
    ok = _placed(moved, {id(log[i]) for i in chosen}, before, partitions)
    delays = {i: d for i, d in chosen.items() if id(log[i]) in ok}
    merged = _arrive(log, delays)
    after = reference(merged, cfg, END)
    assert _placed(merged, {id(log[i]) for i in delays}, after, partitions) == {
        id(log[i]) for i in delays}
    return merged, after


def _arrive(log: list[dict[str, Any]], delays: dict[int, int]) -> list[dict[str, Any]]:
    """``log`` in arrival order when event ``i`` arrives ``delays[i]`` after its time."""
    keyed = sorted((ev["ts"] + delays.get(i, 0), i) for i, ev in enumerate(log))
    return [log[i] for _, i in keyed]


def _owner(ev: dict[str, Any]) -> str:
    """The user whose state the event is applied to (its partition's key)."""
    return str(ev["invitee_id"] if ev["type"] == "referral" else ev["user_id"])


def _placed(log: list[dict[str, Any]], late: set[int], ref: Result,
            partitions: int) -> set[int]:
    """The late events (by ``id``) whose place in ``log`` is defined."""
    wm: dict[int, int] = {}
    latest: dict[str, int] = {}
    ok: set[int] = set()
    for ev in log:
        u = _owner(ev)
        p = partition_for(u, partitions)
        if id(ev) in late:
            mark = wm.get(p, 0)
            fired = ref.fired.get(u, [])
            if latest.get(u, -1) <= ev["ts"] and not any(ev["ts"] < t <= mark for t in fired):
                ok.add(id(ev))
        wm[p] = max(wm.get(p, 0), ev["ts"])
        latest[u] = max(latest.get(u, -1), ev["ts"])
    return ok

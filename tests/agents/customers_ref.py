"""A plain-Python reference of the customer loop (tiers, points, nudges, service tasks,
referrals), written from its definitions and apart from agents/ on purpose.

One global event-time loop: every event sorted by (ts, arrival index), every timer in one heap;
a timer due at t fires before the events at ts >= t, and one user's timers due at the same ms
fire in the documented order (spend expiry, review reminder by order, repurchase reminder by
SKU, dormant recall, escalation by task, deferred pushes by trigger, rule and push id). The only
effect across users is the referrer's reward, decided on the invitee's side with no state of
the referrer. ``run`` stops firing timers after ``end`` (the last watermark of every
partition).
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

SH = ZoneInfo("Asia/Shanghai")
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR

REVIEW, REPURCHASE, DORMANT, APOLOGY, REFERRAL = (
    "review_reminder", "repurchase_reminder", "dormant_recall", "service_apology",
    "referral_reward")
#: The rules in their documented order (ties of deferred pushes released together).
RULES = (REVIEW, REPURCHASE, DORMANT, APOLOGY, REFERRAL)
#: Timer kinds in the order one user's timers of one ms fire.
T_SPEND, T_REVIEW, T_REPURCHASE, T_DORMANT, T_ESCALATE, T_DEFERRED = range(6)


@dataclass(frozen=True)
class Rule:
    coupon_fen: int
    by_tier: Mapping[str, int] = field(default_factory=dict)
    tiers: tuple[str, ...] = ()
    cooldown_ms: int = 0


DEFAULT_RULES = {REVIEW: Rule(500), REPURCHASE: Rule(2000), DORMANT: Rule(0),
                 APOLOGY: Rule(1000), REFERRAL: Rule(2000)}


@dataclass(frozen=True)
class Cfg:
    """The settings the definitions name, with their documented defaults."""

    spend_ms: int = 365 * DAY
    tiers: tuple[tuple[str, int], ...] = (("new", 0), ("potential", 100_000),
                                          ("loyal", 500_001))
    points_per_yuan: int = 1
    review_points: int = 10
    check_in_points: int = 5
    daily_cap: int = 2
    #: Quiet hours as minutes of the local day [start, end), wrapping midnight.
    quiet: tuple[int, int] = (22 * 60, 8 * 60)
    review_after_ms: int = 3 * DAY
    lead_ms: int = 3 * DAY
    #: SKU or ``prefix*`` -> cycle (ms).
    cycles: Mapping[str, int] = field(default_factory=dict)
    dormant_ms: int = 30 * DAY
    dormant_by_tier: Mapping[str, int] = field(default_factory=dict)
    bad_rating: int = 2
    ack_ms: int = 60 * MIN
    rules: Mapping[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))


def _ms(table: Mapping[str, Any], name: str, minutes: str, default_ms: int) -> int:
    if minutes in table:
        return int(table[minutes]) * MIN
    return int(table[name]) * DAY if name in table else default_ms


def cfg_of(sections: Mapping[str, Any]) -> Cfg:
    """The reference's reading of the ``[customers]`` and ``[coupons]`` tables it is run with
    (only the keys the definitions name)."""
    cu = sections.get("customers", {})
    d = Cfg()
    rules = {}
    for name, base in DEFAULT_RULES.items():
        t = cu.get(name, {})
        rules[name] = Rule(t.get("coupon_fen", base.coupon_fen),
                           dict(t.get("coupon_fen_by_tier", {})), tuple(t.get("tiers", ())),
                           _ms(t, "cooldown_days", "cooldown_min", 0))
    rep = cu.get(REPURCHASE, {})
    cycles = {k: v * DAY for k, v in rep.get("cycles", {}).items()}
    cycles.update({k: v * MIN for k, v in rep.get("cycles_min", {}).items()})
    dor = cu.get(DORMANT, {})
    by_tier = {k: v * DAY for k, v in dor.get("days_by_tier", {}).items()}
    by_tier.update({k: v * MIN for k, v in dor.get("minutes_by_tier", {}).items()})
    qs, qe = sections.get("coupons", {}).get("quiet_hours", "22:00-08:00").split("-")
    service = cu.get("service", {})
    return Cfg(
        spend_ms=_ms(cu, "spend_days", "spend_min", d.spend_ms),
        tiers=tuple((t["name"], t["min_fen"]) for t in cu.get("tiers", [])) or d.tiers,
        points_per_yuan=cu.get("points_per_yuan", 1), review_points=cu.get("review_points", 10),
        check_in_points=cu.get("check_in_points", 5), daily_cap=cu.get("daily_cap", 2),
        quiet=(_hhmm(qs), _hhmm(qe)),
        review_after_ms=_ms(cu.get(REVIEW, {}), "after_days", "after_min", d.review_after_ms),
        lead_ms=_ms(rep, "lead_days", "lead_min", d.lead_ms), cycles=cycles,
        dormant_ms=_ms(dor, "days", "minutes", d.dormant_ms), dormant_by_tier=by_tier,
        bad_rating=service.get("bad_rating", 2), ack_ms=service.get("ack_min", 60) * MIN,
        rules=rules)


def _hhmm(s: str) -> int:
    h, m = s.split(":")
    return int(h) * 60 + int(m)


def sha24(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:24]  # noqa: S324 - an id, not a secret


#: docs/nudges.md: the field a rule's push id names beside the rule (none: the recall).
SUBJECT = {"review_reminder": "order_id", "repurchase_reminder": "sku",
           "referral_reward": "invitee_id", "service_apology": "task_id"}


def push_id(rule: str, user: str, trigger: int, step: int, subject: str | None = None) -> str:
    named = rule if subject is None else f"{rule}|{subject}"
    return sha24(f"{named}|{user}|{trigger}|{step}")


def task_id(user: str, order_id: str, ts: int) -> str:
    return sha24(f"task|{user}|{order_id}|{ts}")


def business_day(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, SH).date().isoformat()


def quiet_release(ts: int, quiet: tuple[int, int]) -> int | None:
    """End of the quiet hours ``ts`` falls in, or None outside them."""
    local = datetime.fromtimestamp(ts / 1000, SH)
    minute = local.hour * 60 + local.minute
    s, e = quiet
    inside = (s <= minute < e) if s < e else (minute >= s or minute < e)
    if s == e or not inside:
        return None
    day = local.date() if minute < e else local.date() + timedelta(days=1)
    return int(datetime(day.year, day.month, day.day, e // 60, e % 60, tzinfo=SH).timestamp()
               * 1000)


def cycle_of(sku: str, cycles: Mapping[str, int]) -> int | None:
    """The SKU's cycle: its exact key, else the longest matching ``prefix*``."""
    if sku in cycles:
        return cycles[sku]
    best = max((k for k in cycles if k.endswith("*") and sku.startswith(k[:-1])),
               key=len, default=None)
    return None if best is None else cycles[best]


@dataclass
class Order:
    amount: int
    remaining: int
    paid: int
    in_window: bool = True


@dataclass
class Task:
    order_id: str
    rating: int
    opened: int
    due: int
    status: str = "open"


@dataclass
class User:
    tier: str
    known: bool = False
    orders: dict[str, Order] = field(default_factory=dict)
    submits: dict[str, list[str]] = field(default_factory=dict)
    points: int = 0
    forgiven: int = 0
    reviewed: set[str] = field(default_factory=set)
    check_ins: set[str] = field(default_factory=set)
    last_seen: int = -1
    dormant_at: int | None = None
    last_push: dict[str, int] = field(default_factory=dict)
    day: str = ""
    sent: int = 0
    #: sku -> (due, order_id) of the pending repurchase reminder.
    repurchase: dict[str, tuple[int, str]] = field(default_factory=dict)
    referrer: str | None = None
    paid_any: bool = False
    tasks: dict[str, Task] = field(default_factory=dict)

    def spend(self) -> int:
        return sum(o.remaining for o in self.orders.values() if o.in_window)

    def order_count(self) -> int:
        return sum(1 for o in self.orders.values() if o.in_window and o.remaining > 0)


@dataclass
class Result:
    #: user -> (tier, spend_fen, orders, points, points_forgiven), known users only.
    users: dict[str, tuple[str, int, int, int, int]]
    #: (push_id, rule, user_id, ts, coupon_fen) of every push sent.
    pushes: set[tuple[str, str, str, int, int]]
    #: push_id -> the push's trigger, step, tier (not the referrer's: decided without its
    #: state) and the rule's fields.
    push_docs: dict[str, dict[str, Any]]
    #: (rule, result) of every decision other than sent.
    decisions: Counter[tuple[str, str]]
    #: event_id -> tier_changed document.
    tier_docs: dict[str, dict[str, Any]]
    #: alert_id -> service task alert.
    alerts: dict[str, dict[str, Any]]
    #: event_id -> refusal reason.
    refused: dict[str, str]
    #: user -> due times of the timers that fired (live ones), for placing late events.
    fired: dict[str, list[int]]

    def population(self, tiers: Iterable[str]) -> list[dict[str, Any]]:
        n = Counter(t for t, *_ in self.users.values())
        return [{"tier": t, "users": n[t]} for t in tiers]


class Reference:
    """The definitions, run over one log."""

    def __init__(self, cfg: Cfg) -> None:
        self.cfg = cfg
        self.users: dict[str, User] = {}
        self.heap: list[tuple[int, str, int, tuple[Any, ...], int, Any]] = []
        self.seq = 0
        self.res = Result({}, set(), {}, Counter(), {}, {}, {}, {})

    # -- plumbing -------------------------------------------------------------------------

    def user(self, u: str) -> User:
        if u not in self.users:
            self.users[u] = User(self.cfg.tiers[0][0])
        return self.users[u]

    def timer(self, due: int, u: str, kind: int, tie: tuple[Any, ...], payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (due, u, kind, tie, self.seq, payload))

    def tier_of(self, spend: int) -> str:
        return [name for name, lo in self.cfg.tiers if lo <= spend][-1]

    def retier(self, u: str, st: User, ts: int) -> None:
        new = self.tier_of(st.spend())
        if new != st.tier:
            eid = sha24(f"tier|{u}|{ts}|{st.tier}|{new}")
            self.res.tier_docs[eid] = {"event_id": eid, "user_id": u, "from": st.tier,
                                       "to": new, "spend_fen": st.spend(), "ts": ts}
            st.tier = new

    def run(self, log: list[dict[str, Any]], end: int) -> Result:
        order = sorted(range(len(log)), key=lambda i: (log[i]["ts"], i))
        seen: set[str] = set()
        for i in order:
            ev = log[i]
            self.fire_until(ev["ts"])
            if ev["event_id"] in seen:
                continue
            seen.add(ev["event_id"])
            self.event(ev)
        self.fire_until(end)
        for u, st in self.users.items():
            if st.known:
                self.res.users[u] = (st.tier, st.spend(), st.order_count(), st.points,
                                     st.forgiven)
        return self.res

    def fire_until(self, t: int) -> None:
        """Fire the timers due at or before ``t`` (those due at ``t`` precede its events)."""
        while self.heap and self.heap[0][0] <= t:
            due, u, kind, tie, _, payload = heapq.heappop(self.heap)
            if self.fire(due, u, kind, tie, payload):
                self.res.fired.setdefault(u, []).append(due)

    # -- timers ---------------------------------------------------------------------------

    def fire(self, now: int, u: str, kind: int, tie: tuple[Any, ...], payload: Any) -> bool:
        """One timer; False when it was replaced or cancelled (it does not fire)."""
        st = self.users[u]
        if kind == T_SPEND:
            st.orders[payload].in_window = False
            self.retier(u, st, now)
        elif kind == T_REVIEW:
            oid = payload
            self.consider(u, self.cand(REVIEW, u, now, valid=("review", oid), order_id=oid), now)
        elif kind == T_REPURCHASE:
            sku = tie[0]
            if st.repurchase.get(sku) != (now, payload):
                return False
            del st.repurchase[sku]
            self.consider(u, self.cand(REPURCHASE, u, now, valid=("order", payload), sku=sku,
                                       order_id=payload), now)
        elif kind == T_DORMANT:
            if st.dormant_at != now:
                return False
            st.dormant_at = None
            self.consider(u, self.cand(DORMANT, u, now, last_seen=st.last_seen), now)
        elif kind == T_ESCALATE:
            task = st.tasks[payload]
            if task.status == "open":
                task.status = "escalated"
                self.alert(payload, "escalated", "service_task_escalated", u, task, now)
        else:
            self.consider(u, payload, now, allow_defer=False)
        return True

    # -- guards ---------------------------------------------------------------------------

    def cand(self, rule: str, u: str, trigger: int, step: int = 0,
             valid: tuple[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        subject = fields[SUBJECT[rule]] if rule in SUBJECT else None
        return {"push_id": push_id(rule, u, trigger, step, subject), "rule": rule, "user_id": u,
                "trigger": trigger, "step": step, "valid": valid, **fields}

    def still_valid(self, st: User, c: dict[str, Any]) -> bool:
        if c["valid"] is None:
            return True
        what, oid = c["valid"]
        if what == "review" and oid in st.reviewed:
            return False
        return st.orders[oid].remaining > 0

    def consider(self, u: str, c: dict[str, Any], now: int, allow_defer: bool = True) -> None:
        """The guards at ``now`` for a candidate decided on ``u``'s state (for the referrer's
        reward, ``u`` is the invitee: only the quiet hours apply)."""
        cfg, rule = self.cfg, c["rule"]
        rc = cfg.rules[rule]
        referrer = c["user_id"] != u
        st = self.users[u]
        if not referrer and not self.still_valid(st, c):
            self.res.decisions[(rule, "suppressed")] += 1
            return
        if not referrer and rc.tiers and st.tier not in rc.tiers:
            self.res.decisions[(rule, "ineligible")] += 1
            return
        release = quiet_release(now, cfg.quiet) if allow_defer else None
        if release is not None:
            self.res.decisions[(rule, "deferred")] += 1
            self.timer(release, u, T_DEFERRED, (c["trigger"], RULES.index(rule), c["push_id"]),
                       c)
            return
        if referrer:
            self.send(c, now, rc.coupon_fen, None)
            return
        last = st.last_push.get(rule)
        day = business_day(now)
        sent = st.sent if st.day == day else 0
        if (last is not None and now < last + rc.cooldown_ms) or sent >= cfg.daily_cap:
            self.res.decisions[(rule, "capped")] += 1
            return
        st.day, st.sent = day, sent + 1
        st.last_push[rule] = now
        self.send(c, now, rc.by_tier.get(st.tier, rc.coupon_fen), st.tier)

    def send(self, c: dict[str, Any], now: int, coupon: int, tier: str | None) -> None:
        """A push to the outbox; two candidates must never share an id."""
        pid = c["push_id"]
        assert pid not in self.res.push_docs, c
        self.res.pushes.add((pid, c["rule"], c["user_id"], now, coupon))
        doc = {k: v for k, v in c.items() if k not in ("push_id", "rule", "user_id", "valid")}
        self.res.push_docs[pid] = doc if tier is None else {**doc, "tier": tier}

    # -- events ---------------------------------------------------------------------------

    def refuse(self, ev: dict[str, Any], reason: str) -> None:
        self.res.refused[ev["event_id"]] = reason

    def event(self, ev: dict[str, Any]) -> None:
        typ, ts = ev["type"], ev["ts"]
        u = ev["invitee_id"] if typ == "referral" else ev["user_id"]
        st = self.user(u)
        if typ == "points_redeem" and st.points < ev["points"]:
            return self.refuse(ev, "insufficient_points")
        if typ == "referral" and ev["referrer_id"] == u:
            return self.refuse(ev, "self_referral")
        if typ == "referral" and st.referrer is not None:
            return self.refuse(ev, "already_referred")
        if typ == "task_ack" and ev["task_id"] not in st.tasks:
            return self.refuse(ev, "unknown_task")
        st.known = True
        handler = getattr(self, "on_" + typ, None)
        if handler is not None:
            handler(u, st, ev, ts)
        if typ in ("payment", "order_cancel", "refund"):  # the events that move spend
            self.retier(u, st, ts)
        st.last_seen = max(st.last_seen, ts)
        st.dormant_at = st.last_seen + self.cfg.dormant_by_tier.get(st.tier,
                                                                    self.cfg.dormant_ms)
        self.timer(st.dormant_at, u, T_DORMANT, (), None)
        return None

    def on_order_submit(self, u: str, st: User, ev: dict[str, Any], ts: int) -> None:
        if ev["order_id"] not in st.orders:
            st.submits[ev["order_id"]] = [it["sku"] for it in ev["items"]]

    def on_payment(self, u: str, st: User, ev: dict[str, Any], ts: int) -> None:
        oid, cfg = ev["order_id"], self.cfg
        if ev["status"] != "success" or oid in st.orders:
            return
        amount = ev["amount"]
        st.orders[oid] = Order(amount, amount, ts)
        st.points += amount // 100 * cfg.points_per_yuan
        self.timer(ts + cfg.spend_ms, u, T_SPEND, (oid,), oid)
        self.timer(ts + cfg.review_after_ms, u, T_REVIEW, (oid,), oid)
        for sku in sorted(set(st.submits.get(oid, ()))):
            cycle = cycle_of(sku, cfg.cycles)
            if cycle is None:
                continue
            if sku in st.repurchase:
                self.res.decisions[(REPURCHASE, "suppressed")] += 1
            due = ts + cycle - cfg.lead_ms
            st.repurchase[sku] = (due, oid)
            self.timer(due, u, T_REPURCHASE, (sku,), oid)
        first = not st.paid_any
        st.paid_any = True
        if first and st.referrer is not None:
            self.retier(u, st, ts)
            fields: dict[str, Any] = {"invitee_id": u, "referrer_id": st.referrer}
            self.consider(u, self.cand(REFERRAL, u, ts, **fields), ts)
            self.consider(u, self.cand(REFERRAL, st.referrer, ts, 1, **fields), ts)

    def reduce(self, st: User, oid: str, new: int) -> None:
        """The order's remaining falls to ``new``: spend and points follow."""
        order = st.orders.get(oid)
        if order is None or not order.in_window:
            return
        ppy = self.cfg.points_per_yuan
        take = order.remaining // 100 * ppy - new // 100 * ppy
        covered = min(take, st.points)
        st.points -= covered
        st.forgiven += take - covered
        order.remaining = new

    def on_order_cancel(self, u: str, st: User, ev: dict[str, Any], ts: int) -> None:
        self.reduce(st, ev["order_id"], 0)

    def on_refund(self, u: str, st: User, ev: dict[str, Any], ts: int) -> None:
        order = st.orders.get(ev["order_id"])
        if order is not None:
            self.reduce(st, ev["order_id"], order.remaining - min(ev["amount"], order.remaining))

    def on_review(self, u: str, st: User, ev: dict[str, Any], ts: int) -> None:
        oid = ev["order_id"]
        if oid not in st.reviewed:
            st.reviewed.add(oid)
            st.points += self.cfg.review_points
        if ev["rating"] > self.cfg.bad_rating:
            return
        if any(t.order_id == oid and t.status == "open" for t in st.tasks.values()):
            return
        tid = task_id(u, oid, ts)
        st.tasks[tid] = Task(oid, ev["rating"], ts, ts + self.cfg.ack_ms)
        self.alert(tid, "opened", "service_task", u, st.tasks[tid], ts)
        self.timer(ts + self.cfg.ack_ms, u, T_ESCALATE, (tid,), tid)

    def alert(self, tid: str, what: str, kind: str, u: str, task: Task, ts: int) -> None:
        aid = f"{tid}:{what}"
        self.res.alerts[aid] = {"alert_id": aid, "kind": kind, "task_id": tid, "user_id": u,
                                "order_id": task.order_id, "rating": task.rating,
                                "opened": task.opened, "due": task.due, "ts": ts}

    def on_check_in(self, u: str, st: User, ev: dict[str, Any], ts: int) -> None:
        day = business_day(ts)
        if day not in st.check_ins:
            st.check_ins.add(day)
            st.points += self.cfg.check_in_points

    def on_points_redeem(self, u: str, st: User, ev: dict[str, Any], ts: int) -> None:
        st.points -= ev["points"]

    def on_task_ack(self, u: str, st: User, ev: dict[str, Any], ts: int) -> None:
        task = st.tasks[ev["task_id"]]
        if task.status == "acked":
            return
        task.status = "acked"
        self.consider(u, self.cand(APOLOGY, u, ts, task_id=ev["task_id"]), ts)

    def on_referral(self, u: str, st: User, ev: dict[str, Any], ts: int) -> None:
        st.referrer = ev["referrer_id"]


def reference(log: list[dict[str, Any]], cfg: Cfg, end: int) -> Result:
    """The definitions over ``log`` (arrival order = list order), timers fired up to ``end``."""
    return Reference(cfg).run(log, end)

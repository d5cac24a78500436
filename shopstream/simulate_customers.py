"""The customer loop around simulated traffic: reviews, check-ins, referrals, group buys,
repeat purchases, refunds, points redemptions and service acks.

Shoppers' events come from ``simulate.Simulator``; this watches them and adds what customers
do after (and between) their purchases, so that the ``customers`` and ``group_buys`` capabilities
have every case to decide: paid orders reviewed (mostly 4-5 stars, some
1-2 with a short text) or left unreviewed, negative reviews' service tasks acknowledged
within the ack window, late, or never (so some escalate), daily check-ins, invitees arriving
with a referrer and paying (a few self-referrals and second referrals, which the engine
refuses), groups of three on a few SKUs that fill, that never fill and expire, and joins
after either end, repeat purchases of SKUs with a consumption cycle, refunds and
cancellations of paid orders, and redemptions, some beyond the balance. It has its own
random stream, so turning it on leaves the shoppers' events unchanged.

Durations are minutes of event time; the defaults fit the capabilities' defaults, the demo
compresses them together with its config (``demo.DEMO_CUSTOMERS``, ``demo.DEMO_CONFIG``).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shopstream.core.timeunits import MINUTE_MS, SECOND_MS

EventDict = dict[str, Any]
NEGATIVE_TEXTS = ("arrived damaged", "wrong size", "late delivery", "not as described",
                  "poor quality, returning it")
POSITIVE_TEXTS = ("great value", "fast delivery", "as described", "will buy again")
REWARDS = ("coupon-10", "free-shipping", "gift-mug")
#: Paying shoppers remembered as referrers and group members.
RECENT_PAYERS = 500


def task_id(user: str, order_id: str, ts: int) -> str:
    """The service task a negative review opens (the customers capability's id): acks name it."""
    return hashlib.sha1(f"task|{user}|{order_id}|{ts}".encode()).hexdigest()[:24]  # noqa: S324


def cycle_of(sku: str, cycles: tuple[tuple[str, float], ...]) -> float | None:
    """The SKU's consumption cycle: an exact key wins, then the longest ``prefix*`` key."""
    best: tuple[int, float] | None = None
    for key, minutes in cycles:
        if key == sku:
            return minutes
        if key.endswith("*") and sku.startswith(key[:-1]) and (best is None
                                                                or len(key) > best[0]):
            best = (len(key), minutes)
    return None if best is None else best[1]


@dataclass(frozen=True)
class CustomerPlan:
    """Shares of what customers do, and when (minutes of event time after its cause)."""

    #: Paid orders reviewed, and after how long; the share of reviews rated 1-2.
    review_share: float = 0.35
    review_after_min: tuple[float, float] = (60.0, 2_880.0)
    negative_share: float = 0.12
    #: Service tasks' ack window (the capability's ``ack_min``): of every six negative
    #: reviews four are acked within it, one after it (escalated, then acked), one never.
    ack_min: float = 60.0
    #: Users checking in on their first visit of a business day, within this many minutes.
    check_in_share: float = 0.2
    check_in_after_min: tuple[float, float] = (0.0, 5.0)
    #: An invitee arrives this often; some pay their first order after a while. A few
    #: self-referrals and second referrals of an invitee (both refused).
    referral_every_min: float = 10.0
    invitee_pays_share: float = 0.7
    invitee_pay_after_min: tuple[float, float] = (5.0, 120.0)
    self_referral_share: float = 0.08
    repeat_referral_share: float = 0.1
    #: Group buys: one opens this often on one of the SKUs; a share fill to the target
    #: within the window, the rest expire; some get a join after completion or expiry, or a
    #: second join of a member (all refused).
    group_skus: tuple[str, ...] = ("sku0", "sku5", "sku8")
    group_every_min: float = 30.0
    group_target: int = 3
    group_window_min: float = 1_440.0
    group_fill_share: float = 0.6
    late_join_share: float = 0.3
    rejoin_share: float = 0.1
    #: SKU (or ``prefix*``) -> consumption cycle; a share of buyers buy again after it.
    cycles_min: tuple[tuple[str, float], ...] = (("sku9", 43_200.0), ("sku35*", 20_160.0))
    repeat_share: float = 0.5
    #: Paid orders refunded (in full or part) or cancelled, after how long.
    refund_share: float = 0.03
    cancel_share: float = 0.01
    refund_after_min: tuple[float, float] = (60.0, 4_320.0)
    #: Payers redeeming points, after how long; the share asking for more than they hold.
    redeem_share: float = 0.05
    redeem_after_min: tuple[float, float] = (10.0, 1_440.0)
    over_balance_share: float = 0.25
    #: Zone of the business day (check-ins count once per day).
    timezone: str = "Asia/Shanghai"


@dataclass
class CustomerTraffic:
    """Watches the shoppers' events and yields the customer loop's events due by a time."""

    start_ms: int
    seed: int
    plan: CustomerPlan = field(default_factory=CustomerPlan)
    _rng: random.Random = field(init=False)
    _seq: int = field(default=0, init=False)
    _pending: list[tuple[int, int, Callable[[], EventDict]]] = field(default_factory=list,
                                                                 init=False)
    _orders: dict[str, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict,
                                                                 init=False)
    _points: dict[str, int] = field(default_factory=dict, init=False)
    _payers: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_PAYERS),
                                init=False)
    _seen_day: dict[str, int] = field(default_factory=dict, init=False)
    _day: tuple[int, int, int] = field(default=(0, 0, -1), init=False)
    _negative: int = field(default=0, init=False)
    _next_referral: int = field(default=0, init=False)
    _next_group: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed * 7_927 + 2)
        self._next_referral = self.start_ms + int(self.plan.referral_every_min * MINUTE_MS)
        self._next_group = self.start_ms + int(self.plan.group_every_min * MINUTE_MS)

    def _id(self, kind: str = "") -> str:
        self._seq += 1
        return f"c{kind}{self.seed}-{self._seq}"

    def _after(self, at: int, minutes: tuple[float, float]) -> int:
        return at + max(1, int(self._rng.uniform(*minutes) * MINUTE_MS))

    def _at(self, at: int, make: Callable[[], EventDict]) -> None:
        """Send ``make()`` at ``at`` (made then: an ack names the review as it was sent)."""
        self._seq += 1
        heapq.heappush(self._pending, (at, self._seq, make))

    def _send(self, at: int, ev: EventDict) -> None:
        self._at(at, lambda: ev)

    def observe(self, ev: EventDict) -> None:
        """Note a customer's event: first visit of the day, orders' lines, payments."""
        kind, user = ev["type"], ev.get("user_id")
        if user is None or kind in ("live_start", "live_end", "group_buy_join"):
            return
        self._visit(user, ev["ts"])
        if kind == "order_submit":
            self._orders[ev["order_id"]] = (user, ev["items"])
        elif kind == "order_cancel":
            self._orders.pop(ev["order_id"], None)
        elif kind == "payment" and ev["status"] == "success":
            order = self._orders.pop(ev["order_id"], None)
            if order is not None:
                self._paid(ev, order[1])

    def _business_day(self, ts: int) -> int:
        start, end, day = self._day
        if not start <= ts < end:
            local = datetime.fromtimestamp(ts / 1000, ZoneInfo(self.plan.timezone))
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            start = int(midnight.timestamp() * 1000)
            end = int((midnight + timedelta(days=1)).timestamp() * 1000)
            day = midnight.toordinal()
            self._day = (start, end, day)
        return day

    def _visit(self, user: str, ts: int) -> None:
        day = self._business_day(ts)
        if self._seen_day.get(user) == day:
            return
        self._seen_day[user] = day
        if self._rng.random() < self.plan.check_in_share:
            self._send(self._after(ts, self.plan.check_in_after_min),
                       {"type": "check_in", "user_id": user})
            self._points[user] = self._points.get(user, 0) + 5

    def _paid(self, pay: EventDict, items: list[dict[str, Any]]) -> None:
        r, p = self._rng, self.plan
        user, order_id, ts, amount = pay["user_id"], pay["order_id"], pay["ts"], pay["amount"]
        self._payers.append(user)
        self._points[user] = self._points.get(user, 0) + amount // 100
        if r.random() < p.review_share:
            self._review(user, order_id, self._after(ts, p.review_after_min))
        roll = r.random()
        if roll < p.refund_share:
            refund = amount if r.random() < 0.5 or amount < 2 else r.randrange(1, amount)
            self._send(self._after(ts, p.refund_after_min),
                       {"type": "refund", "user_id": user, "order_id": order_id,
                        "amount": refund})
        elif roll < p.refund_share + p.cancel_share:
            self._send(self._after(ts, p.refund_after_min),
                       {"type": "order_cancel", "user_id": user, "order_id": order_id})
        elif r.random() < p.redeem_share:
            self._redeem(user, self._after(ts, p.redeem_after_min))
        for item in items:
            cycle = cycle_of(item["sku"], p.cycles_min)
            if cycle is not None and r.random() < p.repeat_share:
                again = ts + int(cycle * r.uniform(0.9, 1.2) * MINUTE_MS)
                self._order(user, {**item, "qty": 1}, again, "push")

    def _review(self, user: str, order_id: str, at: int) -> None:
        r = self._rng
        review: EventDict = {"type": "review", "user_id": user, "order_id": order_id}
        if r.random() < self.plan.negative_share:
            review.update(rating=r.choice((1, 2)), text=r.choice(NEGATIVE_TEXTS))
            self._ack_later(review, at)
        else:
            review["rating"] = r.choices((5, 4, 3), (65, 30, 5))[0]
            if r.random() < 0.3:
                review["text"] = r.choice(POSITIVE_TEXTS)
        self._send(at, review)
        self._points[user] = self._points.get(user, 0) + 10

    def _ack_later(self, review: EventDict, at: int) -> None:
        """Four acks in six within the window, one late, one never: computed when sent from
        the review as it went out (live traffic stamps events with the clock)."""
        k, window = self._negative % 6, self.plan.ack_min
        self._negative += 1
        if k == 5:
            return
        lo, hi = (1.2, 2.0) if k == 4 else (0.1, 0.8)
        ack_at = self._after(at, (lo * window, hi * window))

        def ack() -> EventDict:
            return {"type": "task_ack", "user_id": review["user_id"],
                    "task_id": task_id(review["user_id"], review["order_id"], review["ts"])}
        self._at(ack_at, ack)

    def _redeem(self, user: str, at: int) -> None:
        r, balance = self._rng, self._points.get(user, 0)
        if r.random() < self.plan.over_balance_share or balance < 2:
            points = balance + r.randrange(500, 5_000)
        else:
            points = r.randrange(1, balance // 2 + 1)
            self._points[user] = balance - points
        self._send(at, {"type": "points_redeem", "user_id": user, "points": points,
                        "reward": r.choice(REWARDS)})

    def _order(self, user: str, item: dict[str, Any], at: int, channel: str) -> None:
        """A customer's own order of one line, paid a little later."""
        order_id, session = self._id("o"), self._id("s")
        amount = item["qty"] * item["price"]
        common = {"user_id": user, "order_id": order_id, "session_id": session,
                  "channel": channel}
        self._send(at, {"type": "order_submit", **common, "items": [item], "amount": amount})
        pay_at = at + self._rng.randrange(10, 60) * SECOND_MS
        self._send(pay_at, {"type": "payment", **common, "amount": amount, "status": "success"})

    def _referral(self, at: int) -> None:
        r, p = self._rng, self.plan
        referrer = r.choice(self._payers)
        if r.random() < p.self_referral_share:
            self._send(at, {"type": "referral", "referrer_id": referrer, "invitee_id": referrer})
            return
        invitee = self._id("n")
        self._send(at, {"type": "referral", "referrer_id": referrer, "invitee_id": invitee})
        if r.random() < p.repeat_referral_share:
            other = r.choice(self._payers)
            self._send(at + r.randrange(5, 60) * SECOND_MS,
                       {"type": "referral", "referrer_id": other, "invitee_id": invitee})
        self._send(at + SECOND_MS, {"type": "page_view", "user_id": invitee, "page": "home",
                                    "channel": "social"})
        if r.random() < p.invitee_pays_share:
            sku = f"sku{r.randrange(10, 400)}"
            item = {"sku": sku, "qty": 1, "price": r.randrange(1_990, 59_900, 10)}
            self._order(invitee, item, self._after(at, p.invitee_pay_after_min), "social")

    def _group(self, at: int) -> None:
        """A group of ``group_target`` on one SKU: filled in the window, or left to expire;
        perhaps a join after its end, or a member joining twice."""
        r, p = self._rng, self.plan
        window = int(p.group_window_min * MINUTE_MS)
        members = list(dict.fromkeys(r.choice(self._payers) for _ in range(p.group_target + 1)))
        if len(members) <= p.group_target:
            return  # too few distinct payers yet
        group, sku = self._id("g"), r.choice(p.group_skus)
        fills = r.random() < p.group_fill_share
        joining = p.group_target if fills else r.randrange(1, p.group_target)
        offsets = sorted(int(r.uniform(0.05, 0.9) * window) for _ in range(joining - 1))
        times = [at, *(at + off for off in offsets)]
        for user, ts in zip(members, times, strict=False):
            self._join(group, sku, user, ts)
        end = times[-1] if fills else at + window
        if r.random() < p.late_join_share:
            self._join(group, sku, members[-1], end + int(r.uniform(0.05, 0.3) * window))
        if r.random() < p.rejoin_share:
            self._join(group, sku, members[0], at + SECOND_MS)

    def _join(self, group: str, sku: str, user: str, at: int) -> None:
        self._send(at, {"type": "group_buy_join", "group_id": group, "sku": sku,
                        "user_id": user})

    def due(self, ts: int) -> Iterator[EventDict]:
        """The customer events whose time has come by ``ts``, in time order, stamped."""
        while True:
            times = [self._next_referral, self._next_group]
            if self._pending:
                times.append(self._pending[0][0])
            at = min(times)
            if at > ts:
                return
            if at == self._next_referral:
                if self._payers:
                    self._referral(at)
                self._next_referral += int(self.plan.referral_every_min * MINUTE_MS)
            elif at == self._next_group:
                self._group(at)
                self._next_group += int(self.plan.group_every_min * MINUTE_MS)
            else:
                _, _, make = heapq.heappop(self._pending)
                # Stamped in place: an ack reads its review's ts through the same dict.
                ev = make()
                ev.update(event_id=self._id(), ts=at)
                self.observe(ev)
                yield ev

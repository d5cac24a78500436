"""The simulator's customer loop: valid events, deterministic, the shoppers' own events
unchanged by it, and within the demo's first 20 minutes (on the demo's config) the conditions
of every nudge, a tier change, a group completed and one expired, a service task escalated,
and each case the engine refuses. The conditions are read off the stream with plain Python
from the capabilities' definitions, not with the engine."""

from __future__ import annotations

import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import orjson
import pytest

from shopstream.core.timeunits import MINUTE_MS
from shopstream.demo import DEMO_CONFIG, DEMO_CUSTOMERS, DEMO_USERS
from shopstream.schemas import decode
from shopstream.simulate import DOUBLE_11_MS, Simulator
from shopstream.simulate_customers import task_id

Event = dict[str, Any]
RATE = 2_000
DEMO_MINUTES = 20
END = DOUBLE_11_MS + DEMO_MINUTES * MINUTE_MS
CONFIG = tomllib.loads(DEMO_CONFIG)
CUSTOMERS = CONFIG["customers"]
#: The capability's default tier bands, when the config names none.
DEFAULT_BANDS = [("new", 0), ("potential", 100_000), ("loyal", 500_001)]
#: Events the conditions below read (views, carts and live events only count as visits).
KEPT = {"order_submit", "payment", "order_cancel", "refund", "review", "check_in",
        "points_redeem", "task_ack", "referral", "group_buy_join"}


def _customer_events(events: Iterator[Event]) -> list[Event]:
    return [ev for ev in events if ev["event_id"].startswith("c")]


def test_the_shoppers_events_are_the_same_with_or_without_the_customer_loop():
    plain = list(Simulator(2_000, RATE, 5).events(2 * 60 * RATE))
    mixed = list(Simulator(2_000, RATE, 5, customers=DEMO_CUSTOMERS).events(2 * 60 * RATE))
    assert [ev for ev in mixed if not ev["event_id"].startswith("c")] == plain
    added = Counter(ev["type"] for ev in mixed if ev["event_id"].startswith("c"))
    assert {"review", "check_in", "referral", "group_buy_join", "task_ack"} <= set(added)


def test_the_same_seed_gives_the_same_customer_events_and_another_seed_others():
    def run(seed: int) -> list[Event]:
        return _customer_events(Simulator(2_000, RATE, seed,
                                          customers=DEMO_CUSTOMERS).events(2 * 60 * RATE))
    first = run(3)
    assert len(first) > 500
    assert run(3) == first
    assert run(4) != first


def test_an_ack_names_its_review_as_sent_when_live_traffic_restamps_it():
    """Live traffic stamps each event with the clock as it goes out (``_produce_live``): the
    ack's task is that of the review's stamped ts, else the engine refuses it as unknown."""
    tasks: set[str] = set()
    acks: list[str] = []
    for ev in Simulator(2_000, RATE, 2, customers=DEMO_CUSTOMERS).events(4 * 60 * RATE):
        if ev["type"] == "review" and ev["rating"] <= 2:
            ev["ts"] += 7
            tasks.add(task_id(ev["user_id"], ev["order_id"], ev["ts"]))
        elif ev["type"] == "task_ack":
            acks.append(ev["task_id"])
    assert acks and set(acks) <= tasks


@dataclass
class DemoStream:
    """What the conditions read from the demo's first minutes, gathered in one pass."""

    kept: list[Event] = field(default_factory=list)
    #: (user, last seen) of every gap of at least the dormancy with no event of the user.
    idle: list[tuple[str, int]] = field(default_factory=list)
    customer_events: list[Event] = field(default_factory=list)


def _routed_user(ev: Event) -> str | None:
    """The user whose state the customers capability keeps the event in, if any."""
    if ev["type"] == "referral":
        return str(ev["invitee_id"])
    if ev["type"] == "group_buy_join":
        return None
    return ev.get("user_id")


@pytest.fixture(scope="module")
def demo() -> DemoStream:
    dormant_ms = CUSTOMERS["dormant_recall"]["minutes"] * MINUTE_MS
    out = DemoStream()
    last: dict[str, int] = {}
    for ev in Simulator(DEMO_USERS, RATE, 1, customers=DEMO_CUSTOMERS).events(
            DEMO_MINUTES * 60 * RATE):
        if ev["event_id"].startswith("c"):
            out.customer_events.append(ev)
        if ev["type"] in KEPT:
            out.kept.append(ev)
        user = _routed_user(ev)
        if user is not None:
            if user in last and ev["ts"] - last[user] >= dormant_ms:
                out.idle.append((user, last[user]))
            last[user] = ev["ts"]
    out.idle += [(u, ts) for u, ts in last.items() if ts + dormant_ms <= END]
    return out


def test_every_customer_event_is_an_event_of_the_model_unique_and_in_time_order(demo):
    for ev in demo.customer_events:
        assert msgspec.to_builtins(decode.decode_event(orjson.dumps(ev))) == ev
    ids = [ev["event_id"] for ev in demo.customer_events]
    assert len(set(ids)) == len(ids)
    times = [ev["ts"] for ev in demo.customer_events]
    assert times == sorted(times)


def test_reviews_are_mostly_good_and_the_bad_ones_say_why(demo):
    ratings = [ev for ev in demo.kept if ev["type"] == "review"]
    good = sum(ev["rating"] >= 4 for ev in ratings)
    bad = [ev for ev in ratings if ev["rating"] <= 2]
    assert good / len(ratings) > 0.75
    assert 0.05 < len(bad) / len(ratings) < 0.25
    assert all(ev.get("text") for ev in bad)


@dataclass
class Order:
    user: str
    items: list[dict[str, Any]]
    paid: int | None = None
    amount: int = 0
    #: (ts, remaining) after each cancel or refund of the paid order.
    changes: list[tuple[int, int]] = field(default_factory=list)

    def remaining(self, at: int) -> int:
        """What is left of the paid amount after the changes before ``at``."""
        left = self.amount
        for ts, value in self.changes:
            if ts < at:
                left = value
        return left


def _orders(kept: list[Event]) -> dict[str, Order]:
    """Orders by id, with their first successful payment and what cancels and refunds left."""
    orders: dict[str, Order] = {}
    for ev in kept:
        kind = ev["type"]
        if kind == "order_submit":
            orders[ev["order_id"]] = Order(ev["user_id"], ev["items"])
        order = orders.get(ev.get("order_id", ""))
        if order is None:
            continue
        if kind == "payment" and ev["status"] == "success" and order.paid is None:
            order.paid, order.amount = ev["ts"], ev["amount"]
        elif kind in ("order_cancel", "refund") and order.paid is not None:
            left = order.remaining(ev["ts"] + 1)
            left = 0 if kind == "order_cancel" else left - min(ev["amount"], left)
            order.changes.append((ev["ts"], left))
    return orders


def _paid(orders: dict[str, Order]) -> list[tuple[str, Order]]:
    return sorted(((oid, o) for oid, o in orders.items() if o.paid is not None),
                  key=lambda pair: pair[1].paid or 0)


def test_review_reminders_are_due_for_paid_orders_left_unreviewed(demo):
    after = CUSTOMERS["review_reminder"]["after_min"] * MINUTE_MS
    reviewed: dict[str, int] = {}
    for ev in demo.kept:
        if ev["type"] == "review":
            reviewed.setdefault(ev["order_id"], ev["ts"])
    due = [oid for oid, o in _paid(_orders(demo.kept))
           if o.paid is not None and o.paid + after <= END
           and reviewed.get(oid, END + 1) >= o.paid + after and o.remaining(o.paid + after) > 0]
    suppressed = [oid for oid, o in _paid(_orders(demo.kept)) if oid in reviewed
                  and o.paid is not None and reviewed[oid] < o.paid + after <= END]
    assert len(due) > 100 and len(suppressed) > 100


def _cycle(sku: str) -> float | None:
    cycles = CUSTOMERS["repurchase_reminder"]["cycles_min"]
    if sku in cycles:
        return float(cycles[sku])
    prefixes = [k for k in cycles if k.endswith("*") and sku.startswith(k[:-1])]
    return float(cycles[max(prefixes, key=len)]) if prefixes else None


def test_repurchase_reminders_fall_due_and_the_skus_are_bought_again(demo):
    lead = CUSTOMERS["repurchase_reminder"]["lead_min"]
    bought: dict[tuple[str, str], list[int]] = defaultdict(list)
    candidates: list[tuple[str, str, int, Order]] = []
    for _, o in _paid(_orders(demo.kept)):
        assert o.paid is not None
        for item in o.items:
            bought[(o.user, item["sku"])].append(o.paid)
            cycle = _cycle(item["sku"])
            if cycle is not None:
                candidates.append((o.user, item["sku"], o.paid + int((cycle - lead) * MINUTE_MS),
                                   o))
    fired = [(user, sku) for user, sku, fire, o in candidates if fire <= END
             and o.remaining(fire) > 0
             and not any(o.paid is not None and o.paid < t < fire for t in bought[(user, sku)])]
    assert fired
    assert any(len(times) > 1 for (_, sku), times in bought.items() if _cycle(sku) is not None)


def test_paying_customers_go_dormant(demo):
    payers = {ev["user_id"] for ev in demo.kept
              if ev["type"] == "payment" and ev["status"] == "success"}
    assert any(user in payers for user, _ in demo.idle)


def _negative_reviews(kept: list[Event]) -> dict[str, Event]:
    bad = CUSTOMERS.get("service", {}).get("bad_rating", 2)
    return {task_id(ev["user_id"], ev["order_id"], ev["ts"]): ev for ev in kept
            if ev["type"] == "review" and ev["rating"] <= bad}


def test_service_tasks_are_mostly_acked_in_time_one_escalates_and_acks_earn_apologies(demo):
    ack_ms = CUSTOMERS["service"]["ack_min"] * MINUTE_MS
    tasks = _negative_reviews(demo.kept)
    acks = {ev["task_id"]: ev for ev in demo.kept if ev["type"] == "task_ack"}
    assert all(tasks[t]["user_id"] == ack["user_id"] for t, ack in acks.items())
    due = {t: ev["ts"] + ack_ms for t, ev in tasks.items() if ev["ts"] + ack_ms <= END}
    in_time = [t for t, at in due.items() if t in acks and acks[t]["ts"] < at]
    escalated = [t for t, at in due.items() if t not in acks or acks[t]["ts"] >= at]
    # Some are never taken up: not acked even a whole window after they escalated.
    assert any(t not in acks for t, at in due.items() if at + ack_ms <= END)
    assert len(in_time) > len(escalated)
    assert any(ack["ts"] <= END for ack in acks.values())


def test_referred_invitees_pay_and_some_referrals_are_refused(demo):
    referrer: dict[str, str] = {}
    refused = Counter[str]()
    first_paid: dict[str, int] = {}
    rewarded: list[str] = []
    for ev in demo.kept:
        if ev["type"] == "referral":
            invitee = ev["invitee_id"]
            if ev["referrer_id"] == invitee:
                refused["self"] += 1
            elif invitee in referrer:
                refused["again"] += 1
            elif invitee not in first_paid:
                referrer[invitee] = ev["referrer_id"]
        elif ev["type"] == "payment" and ev["status"] == "success" \
                and ev["user_id"] not in first_paid:
            first_paid[ev["user_id"]] = ev["ts"]
            if ev["user_id"] in referrer and ev["ts"] <= END:
                rewarded.append(ev["user_id"])
    assert rewarded and refused["self"] and refused["again"]


def _bands() -> list[tuple[str, int]]:
    tiers = CUSTOMERS.get("tiers")
    return [(t["name"], t["min_fen"]) for t in tiers] if tiers else DEFAULT_BANDS


def _tier(spend: int) -> str:
    return [name for name, low in _bands() if low <= spend][-1]


def test_tiers_change_up_and_back_down_as_spend_leaves_the_window(demo):
    window = CUSTOMERS["spend_min"] * MINUTE_MS
    orders = _orders(demo.kept)
    by_user: dict[str, list[Order]] = defaultdict(list)
    for _, o in _paid(orders):
        by_user[o.user].append(o)

    def spend(user: str, at: int) -> int:
        return sum(o.remaining(at + 1) for o in by_user[user]
                   if o.paid is not None and o.paid <= at < o.paid + window)
    up = [(u, o.paid) for u, os in by_user.items() for o in os if o.paid is not None
          and _tier(spend(u, o.paid)) != _bands()[0][0]]
    assert up
    down = [u for u, at in up if at + window <= END and _tier(spend(u, at + window)) != _tier(
        spend(u, at))]
    assert down


def _group_setting(name: str, sku: str, first: Event, default: int) -> int:
    group_buys = CONFIG.get("group_buys", {})
    return int(first.get(name) or group_buys.get("skus", {}).get(sku, {}).get(name)
               or group_buys.get(name, default))


def test_groups_complete_expire_and_refuse_late_or_repeated_joins(demo):
    firsts: dict[str, Event] = {}
    members: dict[str, list[str]] = defaultdict(list)
    outcome: dict[str, str] = {}
    refused = Counter[str]()
    joins = [ev for ev in demo.kept if ev["type"] == "group_buy_join"]
    for ev in joins:
        group = ev["group_id"]
        first = firsts.setdefault(group, ev)
        target = _group_setting("target", ev["sku"], first, 3)
        deadline = first["ts"] + _group_setting("window_min", ev["sku"], first, 1440) * MINUTE_MS
        if group not in outcome and len(members[group]) < target and ev["ts"] >= deadline:
            outcome[group] = "expired"
        if group in outcome:
            refused[outcome[group]] += 1
        elif ev["user_id"] in members[group]:
            refused["already_joined"] += 1
        else:
            members[group].append(ev["user_id"])
            if len(members[group]) == target:
                outcome[group] = "completed"
    for group, first in firsts.items():
        deadline = first["ts"] + _group_setting("window_min", first["sku"], first,
                                                1440) * MINUTE_MS
        if group not in outcome and deadline <= END:
            outcome[group] = "expired"
    assert Counter(outcome.values())["completed"] > 5
    assert Counter(outcome.values())["expired"] > 5
    assert refused["completed"] and refused["expired"] and refused["already_joined"]


def _business_day(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, ZoneInfo("Asia/Shanghai")).date().isoformat()


def test_redemptions_mostly_fit_the_balance_and_some_go_beyond(demo):
    """The points ledger's definition: 1 a yuan paid, 10 a first review of an order, 5 a
    first check-in of the day, taken back (never below zero) as a paid order shrinks."""
    balance: Counter[str] = Counter()
    orders: dict[str, Order] = {}
    reviewed: set[str] = set()
    checked: set[tuple[str, str]] = set()
    result = Counter[str]()
    for ev in demo.kept:
        user, kind = ev.get("user_id", ""), ev["type"]
        if kind == "order_submit":
            orders[ev["order_id"]] = Order(user, ev["items"])
        elif kind == "payment" and ev["status"] == "success":
            order = orders.get(ev["order_id"])
            if order is not None and order.paid is None:
                order.paid, order.amount = ev["ts"], ev["amount"]
                balance[user] += ev["amount"] // 100
        elif kind in ("order_cancel", "refund") and ev["order_id"] in orders:
            order = orders[ev["order_id"]]
            if order.paid is not None:
                old = order.amount
                order.amount = 0 if kind == "order_cancel" else old - min(ev["amount"], old)
                balance[user] -= min(old // 100 - order.amount // 100, balance[user])
        elif kind == "review" and ev["order_id"] not in reviewed:
            reviewed.add(ev["order_id"])
            balance[user] += 10
        elif kind == "check_in" and (user, _business_day(ev["ts"])) not in checked:
            checked.add((user, _business_day(ev["ts"])))
            balance[user] += 5
        elif kind == "points_redeem":
            fits = balance[user] >= ev["points"]
            result["redeemed" if fits else "insufficient"] += 1
            balance[user] -= ev["points"] if fits else 0
    assert result["redeemed"] > result["insufficient"] > 0


def test_users_check_in_once_a_day(demo):
    days = Counter((ev["user_id"], _business_day(ev["ts"])) for ev in demo.kept
                   if ev["type"] == "check_in")
    assert len(days) > 1_000 and set(days.values()) == {1}


def test_the_demo_pushes_at_any_hour():
    """The demo runs on the wall clock: no quiet night may hold its nudges back."""
    start, end = CONFIG["coupons"]["quiet_hours"].split("-")
    assert start == end

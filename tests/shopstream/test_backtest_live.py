"""A simulated multi-day log recorded live through a worker (pushes to a loopback webhook), then
backtested: with the live config the backtest gives the live run's pushes, anomalies and
funnels; with another cart schedule and a smaller budget, what changes is what the plain-Python
reference (tests/agents/coupon_reference.py) says changes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from shopstream.backtest_collect import by_id, funnels, read_topic
from shopstream.backtest_judges import finish_all, hold_all
from shopstream.core.settings import Settings, load_settings
from shopstream.core.timeunits import DAY_MS, HOUR_MS
from shopstream.replay import replay_lines
from shopstream.simulate import DOUBLE_11_MS, Incident
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.redis_state import make_redis
from tests.agents.coupon_reference import SECTIONS, STEP_COUPON, STEPS_MIN, reference
from tests.shopstream.backtest_support import (
    SECRET,
    Receiver,
    backtest,
    pushes_file,
    report,
    simulated,
    with_clocks,
    write_config,
    write_log,
)
from tests.support import Infra, counts, wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 4
#: Three days of slow traffic, a busy half hour on the second day (orders drop, payments fail
#: 15 minutes in), and every partition's last event at END.
END = DOUBLE_11_MS + 3 * DAY_MS + 2 * HOUR_MS
SEGMENTS = [
    {"users": 1_500, "rate": 0.08, "seed": 3, "start_ms": DOUBLE_11_MS,
     "count": int(0.08 * 3 * 86_400)},
    {"users": 1_500, "rate": 10, "seed": 4, "start_ms": DOUBLE_11_MS + DAY_MS + 10 * HOUR_MS,
     "count": 10 * 60 * 30,
     "incidents": (Incident("orders-drop", 15, 5), Incident("payment-failures", 15, 5))},
]
ANOMALIES = {"window": 10, "min_history": 5, "min_volume": 3, "threshold": 3.0}
#: Another schedule: a reminder after 30 minutes, the coupon after 3 hours, a last call at 12.
OTHER_STEPS = (30, 180, 720)
ATTRIBUTION_H = 36


def _cart(steps: tuple[int, ...]) -> dict[str, Any]:
    return {"steps": [{"after_min": a, "coupon_fen": c}
                      for a, c in zip(steps, STEP_COUPON, strict=True)]}


def _coupons(budget: int | None = None) -> dict[str, Any]:
    out = dict(SECTIONS["coupons"])
    if budget is not None:
        out["cart_recovery"] = {"budget": budget}
    return out


def _push_set(pushes: list[dict[str, Any]]) -> dict[str, tuple]:
    return {p["push_id"]: (p["rule"], p["user_id"], p["ts"], p["step"], p["coupon_fen"])
            for p in pushes}


def _ref_set(ref: set[tuple]) -> set[tuple]:
    return {(pid, rule, user, ts, step) for pid, rule, user, ts, step in ref}


def _as_ref(pushes: dict[str, tuple]) -> set[tuple]:
    return {(pid, rule, user, ts, step) for pid, (rule, user, ts, step, _) in pushes.items()}


def _gmv_reference(events: list[dict[str, Any]], pushes: list[dict[str, Any]],
                   hours: int) -> tuple[int, int, Counter[str]]:
    """Orders (first successful payment each) paid within ``hours`` after a push to the
    payer, credited to the latest such push: (orders, paid fen, orders per rule)."""
    first: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["type"] == "payment" and e["status"] == "success":
            if e["order_id"] not in first or e["ts"] < first[e["order_id"]]["ts"]:
                first[e["order_id"]] = e
    orders, paid, rules = 0, 0, Counter[str]()
    for pay in first.values():
        before = [p for p in pushes if p["user_id"] == pay["user_id"]
                  and p["ts"] <= pay["ts"] <= p["ts"] + hours * HOUR_MS]
        if before:
            latest = max(before, key=lambda p: (p["ts"], p["push_id"]))
            orders += 1
            paid += pay["amount"]
            rules[latest["rule"]] += 1
    return orders, paid, rules


async def _hold_judges(live: Settings) -> None:
    r = make_redis(live)
    try:
        await hold_all(live, r)
    finally:
        await r.aclose()


async def _live_outcome(live: Settings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The live run's judges brought to the log's end (as the workers' ticks would, sooner);
    its alerts and funnels."""
    r = make_redis(live)
    try:
        await finish_all(live, r)
        return by_id(read_topic(live, live.alerts_topic), "alert_id"), await funnels(r, live, END)
    finally:
        await r.aclose()


def _unrelayed(s: Settings) -> int:
    r = redis.Redis.from_url(s.redis_url or "")
    try:
        return sum(r.hlen(k.outbox) + r.hlen(k.push_webhook)
                   for k in (coupon_keys(s.app_id, p) for p in range(s.partitions)))
    finally:
        r.close()


def test_backtest_reproduces_the_live_run_and_the_reference(infra: Infra, start_worker,
                                                            tmp_path: Path) -> None:
    events = with_clocks(simulated(SEGMENTS), PARTITIONS, END)
    log = write_log(tmp_path / "days.jsonl", events)
    assert events[-1]["ts"] - events[0]["ts"] > 3 * DAY_MS
    receiver = Receiver()
    servers = {"broker": infra.broker, "redis_url": infra.redis_url, "partitions": PARTITIONS}
    live_file = write_config(tmp_path / "live.toml", {
        "cart": _cart(STEPS_MIN), "coupons": _coupons(), "anomalies": ANOMALIES,
        "webhook": {"url": f"{receiver.url}/hook", "secret": SECRET}}, **servers)
    other = write_config(tmp_path / "schedule.toml", {
        "cart": _cart(OTHER_STEPS), "coupons": _coupons(), "anomalies": ANOMALIES}, **servers)

    # The live run: a worker (its relay calling the webhook) fed the log as it was recorded.
    settings = infra.settings(partitions=PARTITIONS)
    live = dataclasses.replace(settings, sections=load_settings(env={}, config_path=live_file)
                               .sections)
    # Live traffic keeps the partitions in step; this replay does not (one partition may be
    # applied days ahead of another), so the judges wait for the whole log, as they judge a
    # paced run's minutes once every partition is past them.
    asyncio.run(_hold_judges(live))
    start_worker(settings, SHOPSTREAM_CONFIG=live_file)
    with open(log, "rb") as fh:
        sent = replay_lines(settings, fh)
    assert sent == len(events)
    wait_until(lambda: counts(settings).get("in", 0) == sent, 240, "the live run applied")
    wait_until(lambda: _unrelayed(settings) == 0, 120, "the live pushes delivered")
    live_alerts, live_funnels = asyncio.run(_live_outcome(live))
    received = _push_set(receiver.bodies("/hook"))
    receiver.stop()

    # The coupon budget that binds: half the coupons the live run gave with its cart reminders.
    coupons_live = [pid for pid, (rule, _, _, _, fen) in received.items()
                    if rule == "cart_recovery" and fen > 0]
    budget = len(coupons_live) // 2
    tight = write_config(tmp_path / "budget.toml", {
        "cart": _cart(STEPS_MIN), "coupons": _coupons(budget), "anomalies": ANOMALIES},
        **servers)
    run = backtest(log, [live_file, other, tight], tmp_path / "out", "--workers", "2",
                   "--attribution-hours", str(ATTRIBUTION_H))
    assert run.returncode == 0, run.stderr
    got = report(tmp_path / "out")
    by_label = {c["label"]: c for c in got["configs"]}

    # The live config: the live run's pushes (ids, times, coupons), anomalies and funnels.
    ref_live, decisions = reference(events, STEPS_MIN, END)
    assert len(received) > 1_000 and len(coupons_live) > 20
    assert {rule for rule, *_ in received.values()} >= {"cart_recovery", "new_user",
                                                        "threshold_nudge", "live_followup"}
    assert _as_ref(received) == _ref_set(ref_live)
    assert _push_set(pushes_file(tmp_path / "out", "live")) == received
    assert live_alerts and by_label["live"]["anomalies"] == live_alerts
    assert by_label["live"]["funnels"] == live_funnels
    assert live_funnels["purchase"]["overall"]["page_view"] > 1_000
    for (rule, result), n in decisions.items():
        assert by_label["live"]["pushes"][rule][result] == n, (rule, result)
    sent_by_rule = Counter(rule for rule, *_ in received.values())
    assert {r: o["sent"] for r, o in by_label["live"]["pushes"].items()} == {
        r: sent_by_rule[r] for r in by_label["live"]["pushes"]}
    assert by_label["live"]["live_followups"]["total"] == sent_by_rule["live_followup"]
    docs = [{"push_id": pid, "rule": rule, "user_id": user, "ts": ts}
            for pid, (rule, user, ts, _, _) in received.items()]
    orders, paid, rules = _gmv_reference(events, docs, ATTRIBUTION_H)
    gmv = by_label["live"]["gmv_after_push"]
    assert orders > 0
    assert (gmv["orders"], gmv["paid_fen"]) == (orders, paid)
    assert {r: v["orders"] for r, v in gmv["by_rule"].items()} == dict(rules)

    hours: dict[int, list[int]] = {}
    for _, _, ts, _, fen in received.values():
        if fen > 0:
            row = hours.setdefault(ts // HOUR_MS * HOUR_MS, [0, 0])
            row[0] += 1
            row[1] += fen
    assert by_label["live"]["coupons"]["by_hour"] == [
        {"hour": h, "granted": n, "face_value_fen": fen} for h, (n, fen) in sorted(hours.items())]

    # Another cart schedule: the pushes the reference gives for it, so the same differences.
    ref_other = _ref_set(reference(events, OTHER_STEPS, END)[0])
    got_other = _as_ref(_push_set(pushes_file(tmp_path / "out", "schedule")))
    assert got_other == ref_other
    live_set = _as_ref(received)
    assert got_other - live_set == ref_other - _ref_set(ref_live) != set()
    assert live_set - got_other == _ref_set(ref_live) - ref_other != set()

    # A smaller budget: the same decisions; exactly the coupons over the budget not sent.
    tight_pushes = _push_set(pushes_file(tmp_path / "out", "budget"))
    missing = set(received) - set(tight_pushes)
    assert set(tight_pushes) <= set(received)
    assert len(missing) == len(coupons_live) - budget > 0
    assert missing <= set(coupons_live)
    outcome = by_label["budget"]["pushes"]["cart_recovery"]
    assert outcome["budget_exhausted"] == len(coupons_live) - budget
    assert by_label["budget"]["budgets"]["cart_recovery"]["budget"] == budget
    assert by_label["budget"]["budgets"]["cart_recovery"]["used"] == budget
    assert by_label["budget"]["budgets"]["cart_recovery"]["used_by_hour"][-1]["used"] == budget
    assert by_label["budget"]["anomalies"] == live_alerts

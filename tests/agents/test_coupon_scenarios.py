"""Scenario tests on real Kafka + Redis with event time (the partition watermark is the clock)."""

from __future__ import annotations

import pytest

from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.coupons.keys import budget_keys
from tests.agents.coupon_support import (
    HOUR,
    MIN,
    Events,
    at,
    metric,
    redis_sync,
    run,
    with_sections,
)
from tests.support import users_by_partition

pytestmark = pytest.mark.integration

ONLY_CART = {"coupons": {"new_user": {"enabled": False}, "threshold_nudge": {"enabled": False},
                         "live_followup": {"enabled": False}}}


def by_user(pushes: list[dict]) -> dict[str, list[tuple[str, int, int]]]:
    out: dict[str, list[tuple[str, int, int]]] = {}
    for p in pushes:
        out.setdefault(p["user_id"], []).append((p["rule"], p["step"], p["ts"]))
    return {u: sorted(v, key=lambda x: x[2]) for u, v in out.items()}


async def test_reminder_suppression_and_rearm(settings) -> None:
    s = with_sections(settings, **ONLY_CART)
    ev = Events()
    t0 = at(11, 10)
    ev.cart("fires", t0)                      # reminder due 11:00
    ev.view("fires", t0 + 61 * MIN)
    ev.cart("buys", t0)
    ev.order("buys", t0 + 59 * MIN)           # purchase at 59 min: no reminder
    ev.view("buys", t0 + 2 * HOUR)
    ev.cart("rearms", t0)
    ev.cart("rearms", t0 + 30 * MIN, sku="s2")  # re-arm: due 11:30, not 11:00
    ev.view("rearms", t0 + 65 * MIN)
    ev.view("rearms", t0 + 91 * MIN)
    m = Metrics()
    got = by_user(await run(s, ev.items, metrics=m))
    assert got == {
        "fires": [("cart_recovery", 0, t0 + HOUR)],
        "rearms": [("cart_recovery", 0, t0 + 90 * MIN)],
    }
    assert metric(m, "cart_recovery", "suppressed") == 1
    assert metric(m, "cart_recovery", "sent") == 2


async def test_quiet_hours_defer_to_eight(settings) -> None:
    s = with_sections(settings, **ONLY_CART)
    ev = Events()
    ev.cart("night", at(11, 21, 30))          # due 22:30: quiet, deferred to 08:00
    ev.view("night", at(12, 7, 59))
    m = Metrics()
    assert await run(s, ev.items, metrics=m) == []
    assert metric(m, "cart_recovery", "deferred") == 1
    ev.view("night", at(12, 8, 1))
    got = by_user(await run(s, ev.items[-1:], metrics=m))
    assert got == {"night": [("cart_recovery", 0, at(12, 8))]}


async def test_third_push_of_a_day_is_capped(settings) -> None:
    s = with_sections(settings, coupons={"live_followup": {"enabled": False}})
    ev = Events()
    ev.view("u", at(11, 10))                                  # new_user push
    ev.cart("u", at(11, 10, 1), price=17_000)                 # in band 169-199 yuan: nudge
    ev.view("u", at(11, 11, 30))                              # reminder at 11:01: third -> capped
    ev.view("u", at(12, 8, 30))
    m = Metrics()
    got = by_user(await run(s, ev.items, metrics=m))
    assert [r for r, _, _ in got["u"]] == ["new_user", "threshold_nudge"]
    assert metric(m, "cart_recovery", "capped") == 1


async def test_budget_of_100_with_150_eligible(settings) -> None:
    s = with_sections(settings, coupons={"new_user": {"budget": 100}})
    ev = Events()
    for i in range(150):
        ev.view(f"n{i}", at(11, 10) + i * 1000)
    # Every partition's watermark past the views plus the allowed lateness: their coupons are
    # final, so claimed (the closing users' own wait for a later watermark).
    for user in users_by_partition(s.partitions, "closer"):
        ev.view(user, at(11, 10) + HOUR)
    m = Metrics()
    got = await run(s, ev.items, batch_records=3, max_events=5, metrics=m)
    assert sorted(p["user_id"] for p in got) == sorted(f"n{i}" for i in range(100))
    assert metric(m, "new_user", "sent") == 100
    assert metric(m, "new_user", "budget_exhausted") == 50
    assert int(redis_sync(s).get(budget_keys(s.app_id, "new_user")[0]) or 0) == 100


async def test_cooldown_blocks_the_same_rule(settings) -> None:
    s = with_sections(settings, coupons={"new_user": {"enabled": False},
                                         "live_followup": {"enabled": False}},
                      cart={"steps": [{"after_min": 100_000}]})
    ev = Events()
    ev.cart("u", at(11, 10), price=17_000)                    # nudge sent
    ev.add("cart_remove", "u", at(11, 11), sku="s1", qty=1)
    ev.cart("u", at(11, 12), price=17_000)                    # in band again: cooldown (7 d)
    ev.add("cart_remove", "u", at(19, 9), sku="s1", qty=1)
    ev.cart("u", at(19, 10), price=17_000)                    # 8 days later: sent
    m = Metrics()
    got = by_user(await run(s, ev.items, metrics=m))
    assert got == {"u": [("threshold_nudge", 0, at(11, 10)), ("threshold_nudge", 0, at(19, 10))]}
    assert metric(m, "threshold_nudge", "capped") == 1


async def test_threshold_nudge_only_inside_band(settings) -> None:
    s = with_sections(settings, coupons={"new_user": {"enabled": False},
                                         "threshold_nudge": {"threshold_fen": 19_900,
                                                             "band_fen": 3_000}},
                      cart={"steps": [{"after_min": 100_000}]})
    ev = Events()
    totals = {"below": 16_899, "low_edge": 16_900, "inside": 18_000, "top": 19_899, "at": 19_900,
              "above": 25_000}
    for i, (user, total) in enumerate(totals.items()):
        ev.cart(user, at(11, 10) + i, price=total)
    raw = await run(s, ev.items)
    assert sorted(by_user(raw)) == ["inside", "low_edge", "top"]
    assert {p["user_id"]: p["gap_fen"] for p in raw} == {
        u: 19_900 - totals[u] for u in ("inside", "low_edge", "top")}


"""The customer loop's reference (customers_ref.py) on small logs worked out by hand, so that the
reference the engine is compared with is checked itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.agents.customers_ref import (
    APOLOGY,
    DAY,
    DEFAULT_RULES,
    DORMANT,
    HOUR,
    MIN,
    REFERRAL,
    REPURCHASE,
    REVIEW,
    SH,
    Cfg,
    Result,
    Rule,
    cfg_of,
    push_id,
    reference,
    task_id,
)


def at(day: int, h: int, mi: int = 0) -> int:
    """Epoch ms of 2026-07-<day> h:mi in Shanghai."""
    return int(datetime(2026, 7, day, h, mi, tzinfo=SH).timestamp() * 1000)


class Log(list[dict[str, Any]]):
    def add(self, typ: str, user: str | None, ts: int, **f: Any) -> str:
        eid = f"e{len(self)}"
        self.append({"event_id": eid, "type": typ, "ts": ts, **f,
                     **({"user_id": user} if user else {})})
        return eid

    def pay(self, user: str, oid: str, ts: int, amount: int, status: str = "success") -> str:
        return self.add("payment", user, ts, order_id=oid, amount=amount, status=status)


def run(log: Log, cfg: Cfg, end: int) -> Result:
    return reference(list(log), cfg, end)


def rules(**over: Rule) -> dict[str, Rule]:
    return {**DEFAULT_RULES, **over}


def test_spend_tiers_window_and_points_taken_back() -> None:
    cfg = Cfg(spend_ms=10 * DAY)
    log = Log()
    log.pay("a", "o1", at(1, 10), 120_000)            # spend 120,000: potential; 1,200 points
    log.pay("a", "o2", at(2, 10), 400_001)            # 520,001: loyal; 5,200 points
    log.pay("a", "o2", at(2, 11), 400_001)            # paid already: nothing
    log.add("refund", "a", at(3, 10), order_id="o2", amount=30_000)
    # o2 remaining 370,001 (points 3,700: 300 back): spend 490,001, potential; 4,900 points
    log.add("order_cancel", "a", at(4, 10), order_id="o1")
    # o1 remaining 0 (1,200 back): spend 370,001, 1 order; 3,700 points
    log.add("refund", "a", at(4, 11), order_id="o9", amount=5_000)   # unknown order: nothing
    log.pay("a", "o3", at(5, 10), 99_999, "failed")   # failed: nothing
    # o1 leaves at 07-11 10:00 (no change), o2 at 07-12 10:00: spend 0, new. Points stay.
    log.add("refund", "a", at(12, 11), order_id="o2", amount=100_000)  # out of the window
    res = run(log, cfg, at(13, 0))
    assert res.users["a"] == ("new", 0, 0, 3_700, 0)
    changes = sorted((d["ts"], d["from"], d["to"], d["spend_fen"]) for d in res.tier_docs.values())
    assert changes == [(at(1, 10), "new", "potential", 120_000),
                       (at(2, 10), "potential", "loyal", 520_001),
                       (at(3, 10), "loyal", "potential", 490_001),
                       (at(12, 10), "potential", "new", 0)]


def test_points_forgiven_check_ins_and_redemptions() -> None:
    cfg = Cfg()
    log = Log()
    log.pay("b", "o1", at(1, 9), 10_050)                       # 100 points
    log.add("check_in", "b", at(1, 23, 59) + 59_999)            # 105 (07-01)
    log.add("check_in", "b", at(1, 12))                         # 07-01 again: nothing
    log.add("check_in", "b", at(2, 0))                          # 07-02: 110
    refused = log.add("points_redeem", "b", at(2, 1), points=111, reward="r")  # 110 < 111
    log.add("points_redeem", "b", at(2, 2), points=100, reward="r")            # 10
    log.add("refund", "b", at(2, 3), order_id="o1", amount=5_050)
    # remaining 5,000: 50 points, 50 back of which 10 covered: balance 0, forgiven 40
    log.add("review", "b", at(2, 4), order_id="o1", rating=5)   # 10
    log.add("review", "b", at(2, 5), order_id="o1", rating=4)   # second of o1: nothing
    log.add("review", "b", at(2, 6), order_id="never-paid", rating=3)  # 20
    res = run(log, cfg, at(2, 7))
    assert res.users["b"] == ("new", 5_000, 1, 20, 40)
    assert res.refused == {refused: "insufficient_points"}


def test_review_reminders_quiet_hours_cap_cooldown_and_suppression() -> None:
    cfg = Cfg(rules=rules(**{REVIEW: Rule(500, {"potential": 700}, (), 2 * DAY)}))
    log = Log()
    log.pay("c", "o1", at(1, 10), 20_000)      # reminder 07-04 10:00: sent, 700 (potential)
    log.pay("c", "o2", at(1, 23), 150_000)     # potential; reminder 07-04 23:00: deferred
    log.pay("c", "o3", at(2, 12), 1_000)       # reminder 07-05 12:00
    log.pay("c", "o4", at(2, 13), 1_000)       # reminder 07-05 13:00
    log.add("review", "c", at(5, 11), order_id="o4", rating=5)
    log.pay("c", "o5", at(8, 9), 1_000)        # reminder 07-11 09:00
    log.add("order_cancel", "c", at(9, 9), order_id="o5")
    res = run(log, cfg, at(12, 0))
    # o2's reminder is released 07-05 08:00: cooldown (sent 07-04 10:00 + 2 d) -> capped;
    # o3's at 07-05 12:00: capped by the cooldown too; o4's: reviewed -> suppressed; o5's:
    # cancelled -> suppressed.
    assert res.pushes == {(push_id(REVIEW, "c", at(4, 10), 0, "o1"), REVIEW, "c", at(4, 10), 700)}
    assert res.decisions == {(REVIEW, "deferred"): 1, (REVIEW, "capped"): 2,
                             (REVIEW, "suppressed"): 2}


def test_daily_cap_and_deferred_order_at_release() -> None:
    cfg = Cfg(review_after_ms=DAY)
    log = Log()
    # Three reminders fall in the night of 07-02 (22:30, 23:00, 01:00): all released 07-03
    # 08:00 in trigger order; the cap (2) stops the third.
    log.pay("d", "o1", at(1, 22, 30), 1_000)
    log.pay("d", "o2", at(1, 23), 1_000)
    log.pay("d", "o3", at(2, 1), 1_000)
    res = run(log, cfg, at(4, 0))
    release = at(3, 8)
    assert res.pushes == {(push_id(REVIEW, "d", at(2, 22, 30), 0, "o1"), REVIEW, "d", release, 500),
                          (push_id(REVIEW, "d", at(2, 23), 0, "o2"), REVIEW, "d", release, 500)}
    assert res.decisions[(REVIEW, "deferred")] == 3
    assert res.decisions[(REVIEW, "capped")] == 1


def test_timers_of_one_ms_spend_expiry_first() -> None:
    """Spend leaves at the same ms the review reminder fires: the reminder sees the lower
    tier (its coupon and eligibility)."""
    cfg = Cfg(spend_ms=3 * DAY, rules=rules(**{REVIEW: Rule(500, {"potential": 900})}))
    log = Log()
    log.pay("e", "o1", at(1, 10), 150_000)
    res = run(log, cfg, at(5, 0))
    assert res.pushes == {(push_id(REVIEW, "e", at(4, 10), 0, "o1"), REVIEW, "e", at(4, 10), 500)}
    assert res.users["e"] == ("new", 0, 0, 1_500, 0)


def test_repurchase_replaced_tiers_and_prefixes() -> None:
    cfg = Cfg(cycles={"milk*": 10 * DAY, "milk-1l": 5 * DAY, "co*": 8 * DAY},
              rules=rules(**{REPURCHASE: Rule(2000, tiers=("potential", "loyal"))}))
    log = Log()
    items = [{"sku": "milk-1l", "qty": 1, "price": 100_000}, {"sku": "milk-2l", "qty": 1,
                                                               "price": 10}]
    log.add("order_submit", "f", at(1, 10), order_id="o1", items=items, amount=100_010)
    log.pay("f", "o1", at(1, 10), 100_010)
    # milk-1l at 07-03 10:00 (5-3 d), milk-2l at 07-08 10:00 (10-3 d): potential
    log.add("order_submit", "f", at(2, 10), order_id="o2",
            items=[{"sku": "milk-2l", "qty": 1, "price": 10}], amount=10)
    log.pay("f", "o2", at(2, 10), 10)         # replaces milk-2l's: suppressed; due 07-09 10:00
    log.pay("f", "o3", at(2, 11), 500)        # no submit seen: no reminder
    log.add("order_submit", "f", at(2, 12), order_id="o3",
            items=[{"sku": "cola", "qty": 1, "price": 500}], amount=500)  # after payment
    log.add("order_cancel", "f", at(5, 10), order_id="o1")
    # o1 cancelled: spend 510, new -> o2's milk-2l reminder at 07-09 10:00 is ineligible
    res = run(log, cfg, at(20, 0))
    assert {(r, t) for _, r, _, t, _ in res.pushes if r == REPURCHASE} == {
        (REPURCHASE, at(3, 10))}
    assert res.decisions[(REPURCHASE, "suppressed")] == 1
    assert res.decisions[(REPURCHASE, "ineligible")] == 1


def test_service_tasks() -> None:
    cfg = Cfg()
    log = Log()
    log.pay("g", "o1", at(1, 9), 1_000)
    log.add("review", "g", at(1, 10), order_id="o1", rating=1)     # task A, due 11:00
    log.add("review", "g", at(1, 10, 30), order_id="o1", rating=2)  # A open: no new task
    a = task_id("g", "o1", at(1, 10))
    log.add("task_ack", "g", at(1, 11), task_id=a)   # at due: escalated first, then acked
    log.add("task_ack", "g", at(1, 11, 5), task_id=a)               # acked already: nothing
    log.add("review", "g", at(1, 12), order_id="o1", rating=2)     # task B (A acked)
    b = task_id("g", "o1", at(1, 12))
    log.add("task_ack", "g", at(1, 12, 59), task_id=b)              # in time
    bad = log.add("task_ack", "g", at(1, 13), task_id="nope")
    other = log.add("task_ack", "h", at(1, 13), task_id=b)         # not h's task
    log.add("review", "g", at(1, 21, 59), order_id="o2", rating=1)  # task C, never acked
    c = task_id("g", "o2", at(1, 21, 59))
    res = run(log, cfg, at(2, 12))
    assert sorted(res.alerts) == sorted([f"{a}:opened", f"{a}:escalated", f"{b}:opened",
                                         f"{c}:opened", f"{c}:escalated"])
    assert res.alerts[f"{c}:escalated"]["ts"] == at(1, 22, 59)
    # Apologies at 11:00 and 12:59: the 07-01 cap of 2 lets both through.
    assert {(r, t) for _, r, _, t, _ in res.pushes if r == APOLOGY} == {
        (APOLOGY, at(1, 11)), (APOLOGY, at(1, 12, 59))}
    assert res.refused == {bad: "unknown_task", other: "unknown_task"}
    assert "h" not in res.users
    assert res.users["g"][3] == 10 + 20     # 10 yuan paid, first reviews of o1 and o2


def test_referrals() -> None:
    cfg = Cfg()
    log = Log()
    self_ref = log.add("referral", None, at(1, 9), referrer_id="i", invitee_id="i")
    log.add("referral", None, at(1, 10), referrer_id="r", invitee_id="i")
    again = log.add("referral", None, at(1, 11), referrer_id="s", invitee_id="i")
    log.pay("i", "o1", at(1, 23), 1_000, "failed")
    log.pay("i", "o1", at(1, 23, 30), 1_000)        # first paid order, in quiet hours
    log.pay("i", "o2", at(2, 12), 1_000)            # not the first: nothing
    log.pay("j", "o1", at(1, 12), 1_000)
    log.add("referral", None, at(1, 13), referrer_id="r", invitee_id="j")  # paid before
    res = run(log, cfg, at(3, 0))
    release = at(2, 8)
    paid = at(1, 23, 30)
    assert {p for p in res.pushes if p[1] == REFERRAL} == {
        (push_id(REFERRAL, "i", paid, 0, "i"), REFERRAL, "i", release, 2000),
        (push_id(REFERRAL, "r", paid, 1, "i"), REFERRAL, "r", release, 2000)}
    assert res.decisions[(REFERRAL, "deferred")] == 2
    assert res.refused == {self_ref: "self_referral", again: "already_referred"}
    assert "r" not in res.users


def test_dormant_recall_once_per_episode_by_tier() -> None:
    cfg = Cfg(dormant_ms=5 * DAY, dormant_by_tier={"potential": 2 * DAY})
    log = Log()
    log.add("page_view", "k", at(1, 10), page="p")         # armed 07-06 10:00
    log.add("points_redeem", "k", at(3, 10), points=5, reward="r")  # refused: not seen
    log.add("page_view", "k", at(8, 10), page="p")         # new episode: 07-13 10:00
    log.add("page_view", "k", at(9, 9), page="p")          # 07-14 09:00, then
    log.pay("k", "o1", at(9, 10), 100_000)                 # potential: 07-11 10:00
    res = run(log, cfg, at(20, 0))
    assert sorted(t for _, r, _, t, _ in res.pushes if r == DORMANT) == [at(6, 10), at(11, 10)]


def test_settings_tables_are_read_as_documented() -> None:
    cfg = cfg_of({"coupons": {"quiet_hours": "23:00-07:30"}, "customers": {
        "spend_min": 90, "tiers": [{"name": "a", "min_fen": 0}, {"name": "b", "min_fen": 5}],
        "review_reminder": {"after_min": 7, "cooldown_min": 3, "coupon_fen_by_tier": {"b": 1}},
        "repurchase_reminder": {"lead_days": 1, "cycles": {"x": 4}, "cycles_min": {"y*": 9}},
        "dormant_recall": {"minutes": 30, "minutes_by_tier": {"b": 20}},
        "service": {"ack_min": 15}}})
    assert (cfg.spend_ms, cfg.tiers, cfg.quiet) == (90 * MIN, (("a", 0), ("b", 5)),
                                                    (23 * 60, 7 * 60 + 30))
    assert (cfg.review_after_ms, cfg.rules[REVIEW].cooldown_ms, cfg.rules[REVIEW].by_tier) == (
        7 * MIN, 3 * MIN, {"b": 1})
    assert cfg.cycles == {"x": 4 * DAY, "y*": 9 * MIN} and cfg.lead_ms == DAY
    assert (cfg.dormant_ms, cfg.dormant_by_tier, cfg.ack_ms) == (30 * MIN, {"b": 20 * MIN},
                                                                 15 * MIN)
    assert HOUR == 60 * MIN

"""The customer loop's rules, batch by batch without Kafka (tests/agents/customers_support.py):
tiers and their window, points, each nudge's guards, service tasks and referrals."""

from __future__ import annotations

import pytest

from shopstream.agents.customers.config import parse_config
from shopstream.core import codec
from shopstream.core.errors import ConfigError
from shopstream.kafka_io.envelope import Reason
from tests.agents.customers_support import DAY, HOUR, MIN, SH, Loop, at, config


def tick(loop: Loop, ts: int) -> None:
    """Move the partition's watermark to ``ts`` with another user's event."""
    loop.batch(loop.ev("page_view", "clock", ts, page="home"))


# -- tiers -----------------------------------------------------------------------------


def test_spend_leaves_the_window_exactly_365_days_after_the_payment():
    loop = Loop()
    t0 = at(1, 10, 12)
    loop.batch(loop.pay("u", t0, "o1", 100_000))
    assert [(e["from"], e["to"], e["ts"]) for e in loop.run.tier_events] == [
        ("new", "potential", t0)]
    tick(loop, t0 + 365 * DAY - 1)
    assert loop.store.user("u")["tier"] == "potential"
    assert len(loop.run.tier_events) == 1
    tick(loop, t0 + 365 * DAY)
    assert loop.run.tier_events[-1] | {"event_id": ""} == {
        "event_id": "", "user_id": "u", "from": "potential", "to": "new", "spend_fen": 0,
        "ts": t0 + 365 * DAY}
    assert loop.store.hash("tiers") == {"new": 2, "potential": 0}


def test_an_event_at_the_exit_instant_sees_the_spend_gone():
    """The expiry timer fires before the user's own event of the same ms: a refund then is
    of an order out of the window and takes no points back."""
    loop = Loop()
    t0 = at(1, 10, 12)
    loop.batch(loop.pay("u", t0, "o1", 100_000))
    loop.batch(loop.ev("refund", "u", t0 + 365 * DAY, order_id="o1", amount=100_000))
    st = loop.store.user("u")
    assert st["tier"] == "new" and st["pts"] == 1000 and "pf" not in st


def test_tiers_by_bands_and_spend_sums_remaining():
    loop = Loop(config(tiers=[{"name": "normal", "min_fen": 0},
                              {"name": "silver", "min_fen": 1000},
                              {"name": "gold", "min_fen": 5000}]))
    t0 = at(3, 1, 12)
    loop.batch(loop.pay("u", t0, "o1", 600), loop.pay("u", t0 + 1, "o2", 600),
               loop.pay("u", t0 + 2, "o2", 99_999))  # a second payment of o2: ignored
    loop.batch(loop.pay("u", t0 + 3, "o3", 4000))
    loop.batch(loop.ev("refund", "u", t0 + 4, order_id="o3", amount=3000),
               loop.ev("order_cancel", "u", t0 + 5, order_id="o1"),
               loop.ev("order_cancel", "u", t0 + 6, order_id="o3"))
    assert [(e["to"], e["spend_fen"]) for e in loop.run.tier_events] == [
        ("silver", 1200), ("gold", 5200), ("silver", 2200), ("normal", 600)]


def test_tier_bands_are_validated():
    with pytest.raises(ConfigError, match=r"customers.tiers\[0\].min_fen"):
        config(tiers=[{"name": "a", "min_fen": 5}])
    with pytest.raises(ConfigError, match=r"customers.tiers\[1\].min_fen"):
        config(tiers=[{"name": "a", "min_fen": 0}, {"name": "b", "min_fen": 0}])
    with pytest.raises(ConfigError, match=r"customers.tiers\[1\].name"):
        config(tiers=[{"name": "a", "min_fen": 0}, {"name": "a", "min_fen": 9}])
    with pytest.raises(ConfigError, match=r"customers.review_reminder.tiers"):
        config(review_reminder={"tiers": ["gold"]})
    with pytest.raises(ConfigError, match=r"customers.repurchase_reminder.cycles.milk"):
        config(repurchase_reminder={"cycles": {"milk": 3}})
    with pytest.raises(ConfigError, match=r"customers.spend_days"):
        config(spend_days=0)
    with pytest.raises(ConfigError, match=r"coupons.quiet_hours"):
        parse_config({"coupons": {"quiet_hours": "25:00-08:00"}}, SH)


def test_minutes_replace_days():
    cfg = config(spend_days=10, spend_min=30, review_reminder={"after_min": 5},
                 dormant_recall={"days": 9, "minutes": 7, "days_by_tier": {"loyal": 2}},
                 service={"ack_min": 3})
    assert (cfg.spend_ms, cfg.review_after_ms, cfg.dormant_ms, cfg.ack_ms) == (
        30 * MIN, 5 * MIN, 7 * MIN, 3 * MIN)
    assert cfg.dormant_after("loyal") == 2 * DAY


# -- points ----------------------------------------------------------------------------


def test_refund_and_cancel_take_points_back_forgiving_what_was_spent():
    loop = Loop()
    t0 = at(3, 1, 12)
    loop.batch(loop.pay("u", t0, "o1", 50_099))  # 500 points
    loop.batch(loop.ev("points_redeem", "u", t0 + 1, points=450, reward="mug"))
    loop.batch(loop.ev("refund", "u", t0 + 2, order_id="o1", amount=20_000))
    st = loop.store.user("u")
    # remaining 30_099 -> 300 points: 200 taken, 50 covered by the balance, 150 forgiven
    assert (st["pts"], st["pf"]) == (0, 150)
    loop.batch(loop.ev("check_in", "u", t0 + 3))
    loop.batch(loop.ev("order_cancel", "u", t0 + 4, order_id="o1"))
    st = loop.store.user("u")
    assert (st["pts"], st["pf"]) == (0, 445)


def test_a_redemption_beyond_the_balance_is_refused_and_changes_nothing():
    loop = Loop()
    t0 = at(3, 1, 12)
    loop.batch(loop.pay("u", t0, "o1", 10_000))
    before = loop.store.user("u")
    loop.batch(loop.ev("points_redeem", "u", t0 + DAY, points=101, reward="mug"))
    assert [(r.reason, r.detail) for r in loop.run.refused] == [
        (Reason.INSUFFICIENT_POINTS, "balance 100 < 101")]
    assert loop.store.user("u") == before  # last_seen and the dormant timer untouched too
    loop.batch(loop.ev("points_redeem", "u", t0 + DAY, points=100, reward="mug"))
    assert loop.store.user("u")["pts"] == 0


def test_check_in_once_per_business_day_across_shanghai_midnight():
    loop = Loop()
    # 23:59 and 23:59:59 on the 1st, 00:00 on the 2nd (Shanghai): one UTC day.
    loop.batch(loop.ev("check_in", "u", at(3, 1, 23, 59)),
               loop.ev("check_in", "u", at(3, 1, 23, 59) + 59_000),
               loop.ev("check_in", "u", at(3, 2, 0, 0)))
    assert loop.store.user("u")["pts"] == 10


def test_first_review_of_an_order_earns_once_paid_or_not():
    loop = Loop()
    t0 = at(3, 1, 12)
    loop.batch(loop.ev("review", "u", t0, order_id="never-paid", rating=5),
               loop.ev("review", "u", t0 + 1, order_id="never-paid", rating=4),
               loop.ev("review", "u", t0 + 2, order_id="o2", rating=5))
    assert loop.store.user("u")["pts"] == 20


# -- nudges ----------------------------------------------------------------------------


def test_review_reminder_three_days_after_payment_unless_reviewed_or_cancelled():
    loop = Loop()
    t0 = at(3, 1, 12)
    loop.batch(loop.pay("a", t0, "oa", 10_000), loop.pay("b", t0, "ob", 10_000),
               loop.pay("c", t0, "oc", 10_000))
    loop.batch(loop.ev("review", "b", t0 + 3 * DAY - 1, order_id="ob", rating=5),
               loop.ev("refund", "c", t0 + DAY, order_id="oc", amount=10_000))
    tick(loop, t0 + 3 * DAY)
    sent = loop.pushes("review_reminder")
    assert [(p["user_id"], p["ts"], p["coupon_fen"], p["order_id"]) for p in sent] == [
        ("a", t0 + 3 * DAY, 500, "oa")]
    assert loop.run.decisions[("review_reminder", "suppressed")] == 2


def test_a_review_at_the_reminders_ms_comes_after_it():
    loop = Loop()
    t0 = at(3, 1, 12)
    loop.batch(loop.pay("a", t0, "oa", 10_000))
    loop.batch(loop.ev("review", "a", t0 + 3 * DAY, order_id="oa", rating=5))
    assert len(loop.pushes("review_reminder")) == 1


def test_quiet_hours_defer_to_their_end_and_decide_again():
    loop = Loop()
    t0 = at(3, 1, 23, 30)  # reminder due 23:30 on the 4th: quiet until 08:00 on the 5th
    loop.batch(loop.pay("a", t0, "oa", 10_000), loop.pay("b", t0, "ob", 10_000))
    tick(loop, t0 + 3 * DAY)
    assert loop.run.decisions[("review_reminder", "deferred")] == 2
    loop.batch(loop.ev("review", "b", at(3, 5, 7, 59), order_id="ob", rating=5))
    view = loop.store.user("a")["df"]
    assert [v[0] for v in view.values()] == [at(3, 5, 8)]
    tick(loop, at(3, 5, 8))
    sent = loop.pushes("review_reminder")
    assert [(p["user_id"], p["trigger"], p["ts"]) for p in sent] == [
        ("a", t0 + 3 * DAY, at(3, 5, 8))]
    assert loop.run.decisions[("review_reminder", "suppressed")] == 1


def test_daily_cap_over_the_loops_rules_and_cooldown_per_rule():
    loop = Loop(config(daily_cap=2, review_reminder={"cooldown_min": 120}))
    t0 = at(3, 1, 10)
    loop.batch(loop.pay("u", t0, "o1", 10_000), loop.pay("u", t0 + HOUR, "o2", 10_000),
               loop.pay("u", t0 + 3 * HOUR, "o3", 10_000), loop.pay("u", t0 + 5 * HOUR, "o4",
                                                                    10_000))
    tick(loop, t0 + 3 * DAY + 6 * HOUR)
    sent = [p["order_id"] for p in loop.pushes("review_reminder")]
    # o2 within 2 h of o1's push (cooldown), o3 sent, o4 over the day's cap of 2
    assert sent == ["o1", "o3"]
    assert loop.run.decisions[("review_reminder", "capped")] == 2
    loop2 = Loop(config(daily_cap=2))
    loop2.batch(loop2.pay("u", t0, "o1", 10_000), loop2.pay("u", t0 + 1, "o2", 10_000),
                loop2.pay("u", t0 + 2, "o3", 10_000), loop2.pay("u", t0 + DAY, "o4", 10_000))
    tick(loop2, t0 + 4 * DAY)
    assert [p["order_id"] for p in loop2.pushes("review_reminder")] == ["o1", "o2", "o4"]


def test_tier_restriction_and_coupon_per_tier():
    loop = Loop(config(review_reminder={"tiers": ["potential", "loyal"],
                                        "coupon_fen_by_tier": {"loyal": 900}}))
    t0 = at(3, 1, 12)
    loop.batch(loop.pay("small", t0, "o1", 10_000), loop.pay("mid", t0, "o2", 200_000),
               loop.pay("big", t0, "o3", 600_000))
    tick(loop, t0 + 3 * DAY)
    assert sorted((p["user_id"], p["tier"], p["coupon_fen"])
                  for p in loop.pushes("review_reminder")) == [
        ("big", "loyal", 900), ("mid", "potential", 500)]
    assert loop.run.decisions[("review_reminder", "ineligible")] == 1


def test_repurchase_cycle_by_exact_sku_then_longest_prefix():
    loop = Loop(config(repurchase_reminder={"cycles": {"milk-gold": 20, "milk*": 30, "m*": 40,
                                                       "x*": 10}}))
    t0 = at(3, 1, 12)
    loop.batch(loop.submit("u", t0 - 1, "o1", "milk-gold", "milk-1", "mask", "other"),
               loop.pay("u", t0, "o1", 4000))
    pend = loop.store.user("u")["rp"]
    assert {sku: due - t0 for sku, (due, _, _) in pend.items()} == {
        "milk-gold": 17 * DAY, "milk-1": 27 * DAY, "mask": 37 * DAY}
    tick(loop, t0 + 37 * DAY)
    assert [(p["sku"], p["ts"] - t0, p["coupon_fen"]) for p in loop.pushes()
            if p["rule"] == "repurchase_reminder"] == [
        ("milk-gold", 17 * DAY, 2000), ("milk-1", 27 * DAY, 2000), ("mask", 37 * DAY, 2000)]


def test_a_new_purchase_of_the_sku_replaces_the_pending_reminder():
    loop = Loop(config(repurchase_reminder={"cycles": {"milk": 30}}))
    t0 = at(3, 1, 12)
    loop.batch(loop.submit("u", t0 - 1, "o1", "milk"), loop.pay("u", t0, "o1", 1000))
    loop.batch(loop.submit("u", t0 + 10 * DAY - 1, "o2", "milk"),
               loop.pay("u", t0 + 10 * DAY, "o2", 1000))
    assert loop.run.decisions[("repurchase_reminder", "suppressed")] == 1
    tick(loop, t0 + 40 * DAY)
    assert [(p["order_id"], p["ts"]) for p in loop.pushes("repurchase_reminder")] == [
        ("o2", t0 + 37 * DAY)]


def test_repurchase_needs_the_submit_before_the_payment_and_a_remaining_order():
    loop = Loop(config(repurchase_reminder={"cycles": {"milk": 30}}))
    t0 = at(3, 1, 12)
    loop.batch(loop.pay("a", t0, "o1", 1000), loop.submit("a", t0 + 1, "o1", "milk"),
               loop.submit("b", t0 - 1, "o2", "milk"), loop.pay("b", t0, "o2", 1000))
    loop.batch(loop.ev("order_cancel", "b", t0 + DAY, order_id="o2"))
    tick(loop, t0 + 40 * DAY)
    assert loop.pushes("repurchase_reminder") == []
    assert loop.run.decisions[("repurchase_reminder", "suppressed")] == 1


def test_dormant_recall_rearmed_by_every_event_once_per_episode():
    loop = Loop(config(dormant_recall={"days": 30, "days_by_tier": {"potential": 10}}))
    t0 = at(3, 1, 12)
    loop.batch(loop.ev("page_view", "u", t0, page="home"))
    loop.batch(loop.ev("check_in", "u", t0 + 20 * DAY))
    tick(loop, t0 + 49 * DAY)
    assert loop.pushes("dormant_recall") == []
    tick(loop, t0 + 50 * DAY)
    tick(loop, t0 + 90 * DAY)
    recalls = [p for p in loop.pushes("dormant_recall") if p["user_id"] == "u"]
    assert [(p["ts"], p["last_seen"]) for p in recalls] == [(t0 + 50 * DAY, t0 + 20 * DAY)]
    # A payment makes the user potential: N of the tier after the event.
    loop.batch(loop.pay("u", t0 + 91 * DAY, "o1", 200_000))
    tick(loop, t0 + 101 * DAY)
    recalls = [p for p in loop.pushes("dormant_recall") if p["user_id"] == "u"]
    assert [p["ts"] for p in recalls] == [t0 + 50 * DAY, t0 + 101 * DAY]


# -- service tasks ---------------------------------------------------------------------


def _bad_review(loop: Loop, user: str, ts: int) -> str:
    loop.batch(loop.ev("review", user, ts, order_id="o1", rating=2, text="late"))
    return loop.run.alerts[-1]["task_id"]


def test_task_escalates_at_due_and_an_ack_at_that_ms_comes_after():
    loop = Loop()
    t0 = at(3, 1, 12)
    tid = _bad_review(loop, "u", t0)
    loop.batch(loop.ev("task_ack", "u", t0 + HOUR, task_id=tid))
    assert [(a["kind"], a["ts"]) for a in loop.run.alerts] == [
        ("service_task", t0), ("service_task_escalated", t0 + HOUR)]
    assert loop.run.alerts[0]["alert_id"] == tid + ":opened"
    assert loop.store.hash("tasks")[tid]
    apology = loop.pushes("service_apology")
    assert [(p["ts"], p["coupon_fen"]) for p in apology] == [(t0 + HOUR, 1000)]


def test_an_ack_before_due_prevents_the_escalation_and_a_second_ack_does_nothing():
    loop = Loop()
    t0 = at(3, 1, 12)
    tid = _bad_review(loop, "u", t0)
    loop.batch(loop.ev("task_ack", "u", t0 + HOUR - 1, task_id=tid))
    loop.batch(loop.ev("task_ack", "u", t0 + HOUR + 1, task_id=tid))
    tick(loop, t0 + 2 * HOUR)
    assert [a["kind"] for a in loop.run.alerts] == ["service_task"]
    assert len(loop.pushes("service_apology")) == 1
    assert loop.run.refused == []


def test_an_ack_of_another_users_task_is_refused():
    loop = Loop()
    t0 = at(3, 1, 12)
    tid = _bad_review(loop, "u", t0)
    loop.batch(loop.ev("task_ack", "v", t0 + 1, task_id=tid),
               loop.ev("task_ack", "u", t0 + 2, task_id="nope"))
    assert [r.reason for r in loop.run.refused] == [Reason.UNKNOWN_TASK] * 2
    assert loop.store.user("v") is None


def test_one_open_task_per_order():
    loop = Loop()
    t0 = at(3, 1, 12)
    _bad_review(loop, "u", t0)
    _bad_review(loop, "u", t0 + MIN)  # still open: no second task
    _bad_review(loop, "u", t0 + 2 * HOUR)  # escalated meanwhile: not open, a new task
    assert [a["kind"] for a in loop.run.alerts] == [
        "service_task", "service_task_escalated", "service_task"]


# -- referrals -------------------------------------------------------------------------


def test_referral_rewards_both_at_the_invitees_first_payment_once():
    loop = Loop()
    t0 = at(3, 1, 12)
    ref = {"referrer_id": "r", "invitee_id": "i"}
    loop.batch(loop.ev("referral", None, t0, **ref))
    loop.batch(loop.ev("referral", None, t0 + 1, referrer_id="r2", invitee_id="i"),
               loop.ev("referral", None, t0 + 2, referrer_id="s", invitee_id="s"))
    assert [r.reason for r in loop.run.refused] == [Reason.ALREADY_REFERRED,
                                                    Reason.SELF_REFERRAL]
    assert loop.store.user("s") is None
    loop.batch(loop.pay("i", t0 + DAY, "o1", 1000), loop.pay("i", t0 + 2 * DAY, "o2", 1000))
    assert sorted((p["user_id"], p["step"], p["coupon_fen"], p["ts"])
                  for p in loop.pushes("referral_reward")) == [
        ("i", 0, 2000, t0 + DAY), ("r", 1, 2000, t0 + DAY)]


def test_no_reward_when_the_first_payment_came_before_the_referral():
    loop = Loop()
    t0 = at(3, 1, 12)
    loop.batch(loop.pay("i", t0, "o1", 1000))
    loop.batch(loop.ev("referral", None, t0 + 1, referrer_id="r", invitee_id="i"),
               loop.pay("i", t0 + 2, "o2", 1000))
    assert loop.pushes("referral_reward") == []


def test_the_referrers_reward_waits_out_quiet_hours_but_no_cap():
    loop = Loop(config(daily_cap=1))
    t0 = at(3, 1, 23)
    loop.batch(loop.ev("referral", None, t0 - HOUR, referrer_id="r", invitee_id="i"))
    loop.batch(loop.pay("i", t0, "o1", 1000))
    assert loop.run.decisions[("referral_reward", "deferred")] == 2
    tick(loop, at(3, 2, 8))
    assert sorted((p["user_id"], p["ts"]) for p in loop.pushes("referral_reward")) == [
        ("i", at(3, 2, 8)), ("r", at(3, 2, 8))]


def test_the_referrers_reward_ignores_the_tier_restriction():
    """Decided without the referrer's state: only the invitee's tier is checked."""
    loop = Loop(config(referral_reward={"tiers": ["potential"]}))
    t0 = at(3, 1, 12)
    loop.batch(loop.ev("referral", None, t0, referrer_id="r", invitee_id="i"),
               loop.ev("referral", None, t0, referrer_id="r", invitee_id="j"))
    loop.batch(loop.pay("i", t0 + 1, "o1", 200_000), loop.pay("j", t0 + 2, "o2", 1000))
    assert sorted((p["user_id"], p["invitee_id"], p["tier"])
                  for p in loop.pushes("referral_reward")) == [
        ("i", "i", "potential"), ("r", "i", None), ("r", "j", None)]
    assert loop.run.decisions[("referral_reward", "ineligible")] == 1


def test_an_ack_in_the_batch_that_passes_the_due_time_prevents_the_escalation():
    loop = Loop()
    t0 = at(3, 1, 12)
    tid = _bad_review(loop, "u", t0)
    loop.batch(loop.ev("task_ack", "u", t0 + HOUR - 1, task_id=tid),
               loop.ev("page_view", "clock", t0 + 2 * HOUR, page="home"))
    assert [a["kind"] for a in loop.run.alerts] == ["service_task"]
    assert codec.loads(loop.store.hash("tasks")[tid])["status"] == "acked"


def test_deferred_pushes_released_together_go_by_trigger_then_rule_order():
    """Both reminders fall due at 23:00 and wait for 08:00; with one push a day the review
    reminder (first in rule order) goes, the repurchase reminder is capped."""
    loop = Loop(config(daily_cap=1, repurchase_reminder={"cycles": {"tea": 6}}))
    t0 = at(3, 1, 23)
    loop.batch(loop.submit("u", t0 - 1, "o1", "tea"), loop.pay("u", t0, "o1", 1000))
    tick(loop, at(3, 5, 8))
    assert [(p["rule"], p["ts"]) for p in loop.pushes() if p["user_id"] == "u"] == [
        ("review_reminder", at(3, 5, 8))]
    assert loop.run.decisions[("repurchase_reminder", "capped")] == 1

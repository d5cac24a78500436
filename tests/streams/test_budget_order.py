"""Campaign budgets whatever the interleaving (docs/cart-recovery.md "Budget"): a promotion day
with binding budgets (new users, the cart reminder's coupon step) applied in event-time order,
with partition 0 applied to its end first and with partition 0 applied last, grants the same
coupons to the same pushes: exactly the first N budgeted candidates by (ts, push_id), the
candidates taken from the plain-Python reference of the rules. A relay that claimed and died
before publishing, followed by a fresh one, grants nothing twice and loses nothing."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections import Counter
from typing import Any

import pytest
import redis

from shopstream.agents.lateness import DEFAULT_LATENESS_MS
from shopstream.agents.registry import build_agents, push_relay
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.coupons.keys import budget_keys, coupon_keys
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.streams.batch import BatchProcessor
from tests.agents.coupon_reference import END, generate_day, reference
from tests.agents.coupon_reference import SECTIONS as COUPON_SECTIONS
from tests.streams.test_interleaving import ORDERS, apply, decisions, ordered, topic
from tests.support import Infra

pytestmark = pytest.mark.integration

#: Coupons per budgeted rule: both bind on this day (more candidates than coupons).
BUDGETS = {"new_user": 100, "cart_recovery": 40}
#: The coupon step of the cart reminder (tests/agents/coupon_reference.STEP_COUPON).
CART_COUPON_STEP = 1
SECTIONS: dict[str, Any] = copy.deepcopy(COUPON_SECTIONS)
for _rule, _budget in BUDGETS.items():
    SECTIONS["coupons"].setdefault(_rule, {})["budget"] = _budget


#: Every partition's last event is at END: pushes decided from END less the allowed lateness
#: on are not final, so they wait in the outboxes, unclaimed.
FINAL_BEFORE = END - DEFAULT_LATENESS_MS


def candidates(events: list[dict[str, Any]]) -> tuple[dict[str, list[str]], set[str]]:
    """Per budgeted rule, the push ids of the reference's final pushes with a coupon, in (ts,
    push_id) order: the order a budget grants them in; and the ids of those not final."""
    pushes, _ = reference(events)
    out: dict[str, list[tuple[int, str]]] = {rule: [] for rule in BUDGETS}
    later = set()
    for pid, rule, _, ts, step in pushes:
        if rule == "new_user" or (rule == "cart_recovery" and step == CART_COUPON_STEP):
            if ts < FINAL_BEFORE:
                out[rule].append((ts, pid))
            else:
                later.add(pid)
    return {rule: [pid for _, pid in sorted(xs)] for rule, xs in out.items()}, later


def waiting(settings: Settings) -> set[str]:
    """The push ids left in the outboxes."""
    r = redis.Redis.from_url(settings.redis_url or "")
    out = {pid.decode() for p in range(settings.partitions)
           for pid in r.hkeys(coupon_keys(settings.app_id, p).outbox)}
    r.close()
    return out


def results(settings: Settings) -> dict[str, str]:
    """push_id -> sent | budget_exhausted, every partition's."""
    r = redis.Redis.from_url(settings.redis_url or "")
    out: dict[str, str] = {}
    for p in range(settings.partitions):
        k = coupon_keys(settings.app_id, p)
        for key in (k.push_results, k.push_results_prev):
            out.update((pid.decode(), v.decode()) for pid, v in r.hgetall(key).items())
    r.close()
    return out


def used(settings: Settings, rule: str) -> int:
    r = redis.Redis.from_url(settings.redis_url or "")
    n = int(r.get(budget_keys(settings.app_id, rule)[0]) or 0)
    r.close()
    return n


@pytest.fixture(scope="module")
def day(infra: Infra) -> tuple[Settings, list[dict[str, Any]]]:
    """The promotion day on the events topic, once for every run."""
    base = infra.settings()
    events = generate_day(users=1_500, partitions=base.partitions)
    prod = EnvelopeProducer(base, max_events=50)
    for ev in sorted(events, key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()
    return base, events


def in_namespace(infra: Infra, base: Settings) -> Settings:
    """A namespace of its own (app id, pushes topic) over the day's events topic."""
    return dataclasses.replace(infra.settings(events_topic=base.events_topic),
                               agents="coupons", sections=SECTIONS)


@pytest.fixture(scope="module")
def runs(infra: Infra, day: tuple[Settings, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    base, _ = day
    out = {}
    for order in ORDERS:
        s = in_namespace(infra, base)
        metrics = asyncio.run(apply(s, ordered(s, order), batch_records=8))
        out[order] = {"pushes": topic(s, s.pushes_topic), "results": results(s),
                      "decisions": decisions(metrics), "waiting": waiting(s),
                      "used": {rule: used(s, rule) for rule in BUDGETS}}
    return out


def granted_and_refused(run: dict[str, Any]) -> tuple[set[str], set[str]]:
    sent = {p["push_id"] for p in run["pushes"]}
    refused = {pid for pid, res in run["results"].items() if res == "budget_exhausted"}
    return sent, refused


@pytest.mark.parametrize("order", ORDERS)
def test_the_first_candidates_by_time_get_the_coupons(
        runs: dict[str, dict[str, Any]], day: tuple[Settings, list[dict[str, Any]]],
        order: str) -> None:
    """Whatever the interleaving: the first N candidates by (ts, push_id) are sent, the others
    refused, and the budget's counter is N."""
    run = runs[order]
    sent, refused = granted_and_refused(run)
    assert len(sent) == len(run["pushes"]), "a push was published twice"
    final, later = candidates(day[1])
    for rule, pids in final.items():
        n = BUDGETS[rule]
        assert len(pids) > n, (rule, len(pids))
        assert [pid for pid in pids if pid in sent] == pids[:n], rule
        assert {pid for pid in pids if pid in refused} == set(pids[n:]), rule
        assert run["used"][rule] == n
        assert run["decisions"][(rule, "budget_exhausted")] == len(pids) - n
    assert later and run["waiting"] == later


@pytest.mark.parametrize("order", ORDERS[1:])
def test_the_same_pushes_and_refusals(runs: dict[str, dict[str, Any]], order: str) -> None:
    want, got = runs["time"], runs[order]
    assert sorted(got["pushes"], key=lambda p: p["push_id"]) == \
        sorted(want["pushes"], key=lambda p: p["push_id"])
    assert granted_and_refused(got)[1] == granted_and_refused(want)[1]
    assert got["decisions"] == want["decisions"]
    assert Counter(p["rule"] for p in want["pushes"])["threshold_nudge"] > 0


async def decide(settings: Settings, batch_records: int) -> None:
    """The batch loop over the day in event-time order, the outboxes left to a relay."""
    r = make_redis(settings)
    metrics = Metrics()
    proc = BatchProcessor(settings, RedisState(r, settings.app_id, settings.events_topic),
                          build_agents(settings, r, metrics, relay_inline=False),
                          DeadLetterSink(RecordProducer(settings), settings.dead_letter_topic),
                          metrics)
    records = ordered(settings, "time")
    for i in range(0, len(records), batch_records):
        await proc.process(records[i:i + batch_records])
    await r.aclose()


async def claim_then_die_then_relay(settings: Settings) -> None:
    """A relay that claims every final budgeted push and relays partition 0 only, then dies
    (its producer and webhook never used again); a fresh relay relays everything, twice."""
    r = make_redis(settings)
    dying = push_relay(settings, r, Metrics())
    assert await dying.claimer.claim() > sum(BUDGETS.values())
    await dying.relay([0])
    fresh = push_relay(settings, r, Metrics())
    for _ in range(2):
        await fresh.relay(range(settings.partitions))
    await r.aclose()


def test_a_relay_dying_between_claim_and_publish(
        infra: Infra, day: tuple[Settings, list[dict[str, Any]]]) -> None:
    base, events = day
    s = in_namespace(infra, base)
    asyncio.run(decide(s, batch_records=8))
    asyncio.run(claim_then_die_then_relay(s))
    pushes = topic(s, s.pushes_topic)
    sent = {p["push_id"] for p in pushes}
    assert len(sent) == len(pushes), "a push was published twice"
    refused = {pid for pid, res in results(s).items() if res == "budget_exhausted"}
    final, later = candidates(events)
    for rule, pids in final.items():
        n = BUDGETS[rule]
        assert [pid for pid in pids if pid in sent] == pids[:n], rule
        assert {pid for pid in pids if pid in refused} == set(pids[n:]), rule
        assert used(s, rule) == n
    assert waiting(s) == later
    expected, _ = reference(events)
    assert sent | refused | later == {x[0] for x in expected}, "a push was lost"


async def claim_to_the_end(settings: Settings) -> None:
    r = make_redis(settings)
    relay = push_relay(settings, r, Metrics())
    await relay.claimer.claim(log_ended=True)
    await relay.relay(range(settings.partitions))
    await r.aclose()


def test_the_end_of_a_log_claims_what_is_left(
        infra: Infra, day: tuple[Settings, list[dict[str, Any]]]) -> None:
    """No event follows a backtest's log: its last budgeted pushes are claimed then, after
    the others, as a live run claims them once later events come."""
    base, events = day
    s = in_namespace(infra, base)
    asyncio.run(decide(s, batch_records=50))
    asyncio.run(claim_then_die_then_relay(s))
    assert waiting(s)
    asyncio.run(claim_to_the_end(s))
    assert waiting(s) == set()
    expected, _ = reference(events)
    sent = {p["push_id"] for p in topic(s, s.pushes_topic)}
    refused = {pid for pid, res in results(s).items() if res == "budget_exhausted"}
    assert sent | refused == {x[0] for x in expected}
    final, later = candidates(events)
    for rule, pids in final.items():
        everyone = sorted((x[3], x[0]) for x in expected if x[0] in set(pids) | later
                          and x[1] == rule)
        n = BUDGETS[rule]
        assert {pid for _, pid in everyone[:n]} <= sent and \
            {pid for _, pid in everyone[n:]} <= refused, rule

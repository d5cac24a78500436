"""The same decisions whatever the interleaving of partitions (docs/guarantees.md): one log
through the real broker, Redis and batch loop with every capability, applied in event-time
order, with partition 0 applied to its end before any other, and with partition 0 applied
last. The judges tick between batches as a worker's timer does. All three give the same push
set (ids, times, coupons) for every rule, live follow-ups from room-wide copies included, the
same anomaly, ROAS and stock alerts, and the same state in Redis (funnels, live rooms, the
pulse, ads, stock). Budgets: tests/streams/test_budget_order.py, over this machinery."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from operator import itemgetter
from typing import Any

import orjson
import pytest
import redis

from shopstream.agents.ads.agent import AdsAgent
from shopstream.agents.anomalies.agent import AnomalyJudge
from shopstream.agents.judging import EVERY_MS
from shopstream.agents.registry import build_agents
from shopstream.agents.stock.agent import StockHealth
from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.partitioner import partition_for
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.streams.batch import BatchProcessor, Record
from tests.agents import ads_ref, group_buys_ref, stock_ref
from tests.agents.coupon_reference import SECTIONS as COUPON_SECTIONS
from tests.agents.coupon_reference import generate_day
from tests.agents.coupon_support import at
from tests.agents.test_ads_agent import SECTION as ADS_SECTION
from tests.agents.test_anomalies import T0 as ANOMALY_T0
from tests.agents.test_anomalies import orders_log
from tests.support import Infra, read_records, users_by_partition

pytestmark = pytest.mark.integration

AGENTS = "event_stats,funnel,coupons,live,ops,anomalies,stock,ads,traffic,group_buys"
SECTIONS: dict[str, Any] = {
    **COUPON_SECTIONS,
    "anomalies": {"min_history": 20, "window": 30, "min_volume": 10},
    "ads": ADS_SECTION,
    "stock": {"min_history_min": 0},
    "group_buys": group_buys_ref.SECTION,
    "funnels": [{"name": "purchase", "breakdowns": ["channel"],
                 "steps": ["page_view", "cart_add", "order_submit",
                           {"type": "payment", "where": {"status": "success"}}]}],
}
ORDERS = ("time", "p0-first", "p0-last")


def tagged(log: list[dict[str, Any]], tag: str, shift_ms: int = 0) -> list[dict[str, Any]]:
    """A generator's log with ids of its own (generators number their events and orders alike)
    and its times moved by ``shift_ms``."""
    out = []
    for ev in log:
        ev = {**ev, "event_id": f"{tag}{ev['event_id']}", "ts": ev["ts"] + shift_ms}
        if "order_id" in ev:
            ev["order_id"] = f"{tag}{ev['order_id']}"
        out.append(ev)
    return out


def promotion(partitions: int) -> list[dict[str, Any]]:
    """One day on 2026-11-11: live rooms on air several times (viewers on every partition),
    carts and orders (cart recovery, threshold nudges, new users), a payment-failure burst,
    ad spend below the ROAS floor, stock counts and returns, group buys; then an event on
    every partition a day later, so every minute becomes final everywhere."""
    log = tagged(generate_day(users=1_500, partitions=partitions), "d")
    log += tagged(orders_log(3, 100, burst=range(60, 66)), "a", at(11, 12) - ANOMALY_T0)
    log += tagged(ads_ref.generate(n_users=1_500, n_campaigns=5, hours=3, seed=23,
                                   late_share=0.02), "m", at(11, 9) - ads_ref.T0)
    log += tagged(stock_ref.generate(4_000, seed=11, skus=12, users=300, days=1,
                                     start=at(11, 0)), "s")
    log += tagged(group_buys_ref.generate(groups=80, seed=5), "g",
                  at(11, 8) - group_buys_ref.T0)
    end = max(ev["ts"] for ev in log) + 24 * 3_600_000
    log += [{"event_id": f"end{p}", "type": "page_view", "ts": end, "user_id": u, "page": "home"}
            for p, u in enumerate(users_by_partition(partitions, "closer"))]
    return log


def ordered(settings: Settings, order: str) -> list[Record]:
    """The topic's records in event-time order (by each record's first event), or with
    partition 0 applied wholly before (``p0-first``) or after (``p0-last``) the others."""
    recs = [Record(p, o, v) for p, o, v, _ in read_records(settings)]
    lead = {"time": lambda r: 0, "p0-first": lambda r: r.partition != 0,
            "p0-last": lambda r: r.partition == 0}[order]
    return sorted(recs, key=lambda r: (lead(r), codec.loads(r.value)[0]["ts"], r.partition,
                                       r.offset))


async def apply(settings: Settings, records: list[Record], batch_records: int) -> Metrics:
    """The batch loop over ``records``, the agents' ticks after every batch as a worker's timer
    (judges step, alerts and pushes go out), then the judges to the end."""
    r = make_redis(settings)
    metrics = Metrics()
    agents = build_agents(settings, r, metrics)
    proc = BatchProcessor(settings, RedisState(r, settings.app_id, settings.events_topic),
                          agents, DeadLetterSink(RecordProducer(settings),
                                                 settings.dead_letter_topic), metrics)
    now = 0
    for i in range(0, len(records), batch_records):
        await proc.process(records[i:i + batch_records])
        now += EVERY_MS
        await proc.tick(now)
    for agent in agents:  # what became final with the last batch, judged to the end
        if isinstance(agent, AnomalyJudge | StockHealth):
            while await agent.step():
                pass
        elif isinstance(agent, AdsAgent):
            await agent.judge.step_all()
    await proc.tick(now + EVERY_MS)  # the alerts sent, the outboxes relayed
    for agent in agents:
        close = getattr(agent, "close", None)
        if close is not None:
            await close()
    await r.aclose()
    return metrics


def topic(settings: Settings, name: str) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, _, v, _ in read_records(settings, name)]


def redis_state(settings: Settings) -> dict[str, Any]:
    """Every key of the run's namespace and its value, the app id taken out."""
    r = redis.Redis.from_url(settings.redis_url or "")
    out: dict[bytes, Any] = {}
    app = settings.app_id.encode()
    for key in r.scan_iter(app + b":*", count=1_000):
        kind = r.type(key).decode()
        value: Any = {"string": r.get, "hash": r.hgetall, "set": r.smembers,
                      "list": lambda k: r.lrange(k, 0, -1),
                      "zset": lambda k: r.zrange(k, 0, -1, withscores=True),
                      "stream": lambda k: [v for _, v in r.xrange(k)]}[kind](key)
        out[key.replace(app, b"APP")] = value
    r.close()
    return out


#: Per-user working state and dedup checkpoints: a user's state drops what no accepted event
#: can reach any more at its batch's watermark, and checkpoints sit at batches' first offsets,
#: so both depend on where batches end, not on what is decided. Everything else is compared.
WORKING_STATE = (b":funnel:u:", b":traffic:u:", b":ckpt:")


def numbers(state: dict[bytes, Any]) -> dict[bytes, Any]:
    """The state without working state; a counter field at 0 and a missing one are alike (a
    +1 and a -1 in one batch write nothing, in two they leave a 0)."""
    out = {}
    for key, value in state.items():
        if any(part in key for part in WORKING_STATE):
            continue
        out[key] = {f: v for f, v in value.items() if v != b"0"} if isinstance(value, dict) \
            else value
    return out


def decisions(metrics: Metrics) -> dict[tuple[str, ...], float]:
    """``shopstream_pushes_total`` by rule and result."""
    return {tuple(s.labels.values()): s.value for fam in metrics.registry.collect()
            for s in fam.samples if s.name == "shopstream_pushes_total"}


@pytest.fixture(scope="module")
def runs(infra: Infra) -> dict[str, dict[str, Any]]:
    """The promotion produced once; each order applied in a namespace of its own (app id,
    pushes and alerts topics) over the same events topic."""
    base = infra.settings()
    log = promotion(base.partitions)
    prod = EnvelopeProducer(base, max_events=50)
    for ev in sorted(log, key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()
    out = {}
    for order in ORDERS:
        s = dataclasses.replace(infra.settings(events_topic=base.events_topic), agents=AGENTS,
                                sections=SECTIONS)
        metrics = asyncio.run(apply(s, ordered(s, order), batch_records=8))
        out[order] = {"pushes": topic(s, s.pushes_topic), "alerts": topic(s, s.alerts_topic),
                      "state": redis_state(s), "decisions": decisions(metrics),
                      "partitions": s.partitions}
    return out


@pytest.mark.parametrize("order", ORDERS[1:])
def test_the_same_pushes_for_every_rule(runs: dict[str, dict[str, Any]], order: str) -> None:
    want, got = runs["time"]["pushes"], runs[order]["pushes"]
    assert len({p["push_id"] for p in got}) == len(got), "a push was published twice"
    key = itemgetter("push_id")
    assert sorted(got, key=key) == sorted(want, key=key)
    assert runs[order]["decisions"] == runs["time"]["decisions"]
    rules = Counter(p["rule"] for p in want)
    assert set(rules) == {"cart_recovery", "threshold_nudge", "new_user", "live_followup",
                          "group_completed", "group_expired"}, rules
    # Follow-ups of sessions of every room, decided on every partition from its own copy.
    live = [p for p in want if p["rule"] == "live_followup"]
    assert {partition_for(p["user_id"], runs[order]["partitions"]) for p in live} == {0, 1, 2, 3}
    assert len({(p["room"], p["trigger"]) for p in live}) >= 9


@pytest.mark.parametrize("order", ORDERS[1:])
def test_the_same_alerts(runs: dict[str, dict[str, Any]], order: str) -> None:
    want, got = runs["time"]["alerts"], runs[order]["alerts"]
    key = itemgetter("alert_id")
    assert sorted(got, key=key) == sorted(want, key=key)
    kinds = Counter(a["type"] for a in want)
    assert {"ops_anomaly", "ads_roas_low"} <= set(kinds), kinds
    assert any(k.startswith("stock_") for k in kinds), kinds


@pytest.mark.parametrize("order", ORDERS[1:])
def test_the_same_numbers_in_redis(runs: dict[str, dict[str, Any]], order: str) -> None:
    """Funnels, live rooms, the pulse, traffic, ads, stock, the judges' state, outboxes and
    counters: key by key."""
    want, got = numbers(runs["time"]["state"]), numbers(runs[order]["state"])
    assert sorted(got) == sorted(want)
    differ = sorted(k for k in want if got[k] != want[k])
    assert differ == []
    assert any(b":funnel:" in k for k in want) and any(b":live:r:" in k for k in want)

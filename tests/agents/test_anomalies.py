"""Anomalies: a payment-failure burst is one episode at its first minute; a steady day with
normal noise raises none; the same log processed again raises the same anomalies."""

from __future__ import annotations

import dataclasses
import math
import random
from operator import itemgetter
from typing import Any

import pytest

from shopstream.agents.anomalies.agent import AnomalyJudge
from shopstream.agents.anomalies.rules import AnomalyConfig, Point, episodes
from shopstream.agents.registry import build_agents
from shopstream.core.settings import Settings
from shopstream.sinks.anomalies.store import AnomalyStore
from shopstream.sinks.redis_state import make_redis
from tests.agents.test_live_ops import produce
from tests.support import process_topic

MIN = 60_000
T0 = 1_795_200_000_000
RATIOS = frozenset({"payment_success_ratio"})


def poisson(rnd: random.Random, lam: float) -> int:
    """Knuth's method (lam is small here)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rnd.random()
        if p <= limit:
            return k
        k += 1


def day_series(seed: int, burst: range = range(0)) -> dict[str, dict[int, Point]]:
    """1,440 minutes of orders with a day's rise and fall and Poisson noise; 95% of payments
    succeed, 40% during ``burst`` (minute numbers)."""
    rnd = random.Random(seed)
    out: dict[str, dict[int, Point]] = {"orders": {}, "payment_success_ratio": {}}
    for i in range(1440):
        lam = 30 + 90 * math.sin(math.pi * i / 1440) ** 2
        orders = poisson(rnd, lam)
        rate = 0.4 if i in burst else 0.95
        ok = sum(rnd.random() < rate for _ in range(orders))
        m = T0 + i * MIN
        out["orders"][m] = Point(orders, orders)
        out["payment_success_ratio"][m] = Point(ok / orders if orders else 0.0, orders)
    return out


def test_a_steady_day_with_noise_raises_nothing() -> None:
    cfg = AnomalyConfig()
    for seed in range(5):
        series = day_series(seed)
        minutes = sorted(series["orders"])
        assert episodes(series, minutes, cfg.window, {}, cfg, RATIOS) == []


def test_a_payment_failure_burst_is_one_episode_at_its_first_minute() -> None:
    cfg = AnomalyConfig()
    series = day_series(1, burst=range(700, 712))
    minutes = sorted(series["orders"])
    open_: dict[str, int] = {}
    docs = episodes(series, minutes, cfg.window, open_, cfg, RATIOS)
    assert [(d["metric"], d["minute"]) for d in docs] == [
        ("payment_success_ratio", T0 + 700 * MIN)]
    assert docs[0]["severity"] == "critical" and docs[0]["score"] <= -2 * cfg.threshold
    assert docs[0]["baseline"] == pytest.approx(0.95, abs=0.03)
    assert open_ == {}  # recovered by the end of the day
    # Judged in two halves (a restart between steps), the same single episode.
    first, second = minutes[:705], minutes[705:]
    open_ = {}
    again = episodes(series, first, cfg.window, open_, cfg, RATIOS)
    again += episodes(series, second, cfg.window, open_, cfg, RATIOS)
    assert again == docs


def orders_log(seed: int, minutes: int, burst: range) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    log: list[dict[str, Any]] = []
    n = 0
    for i in range(minutes):
        for _ in range(poisson(rnd, 25)):
            n += 1
            t = T0 + i * MIN + rnd.randrange(MIN - 2_000)
            uid = f"u{rnd.randrange(3_000)}"
            amount = rnd.randrange(1_000, 30_000)
            common = {"user_id": uid, "channel": rnd.choice(["search", "ads", "live"])}
            log.append({**common, "event_id": f"o{seed}-{n}", "type": "order_submit", "ts": t,
                        "order_id": f"o{n}", "amount": amount,
                        "items": [{"sku": "s1", "qty": 1, "price": amount}]})
            ok = rnd.random() < (0.35 if i in burst else 0.96)
            log.append({**common, "event_id": f"p{seed}-{n}", "type": "payment",
                        "ts": t + 1_000, "order_id": f"o{n}", "amount": amount,
                        "status": "success" if ok else "failed"})
    return sorted(log, key=lambda e: e["ts"])


async def judged(settings: Settings, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    produce(settings, log)
    r = make_redis(settings)
    agents = build_agents(settings, r)
    await process_topic(settings, agents=agents, batch_records=30)
    judge = next(a for a in agents if isinstance(a, AnomalyJudge))
    while await judge.step():
        pass
    assert await judge.send_unsent() >= 1
    body = await AnomalyStore(r, settings.app_id).read(0, 2**62)
    await r.aclose()
    return body["anomalies"]


@pytest.mark.integration
async def test_burst_through_the_pipeline_and_again_on_a_replay(settings: Settings) -> None:
    sections = {"anomalies": {"min_history": 20, "window": 30, "min_volume": 10}}
    settings = dataclasses.replace(settings, sections=sections,
                                   agents="event_stats,funnel,ops,anomalies")
    log = orders_log(3, 100, burst=range(60, 66))
    got = await judged(settings, log)
    ratio = [a for a in got if a["metric"] == "payment_success_ratio"]
    assert [a["minute"] for a in ratio] == [T0 + 60 * MIN]
    assert {a["metric"] for a in got} <= {"payment_success_ratio", "paid_gmv"}
    assert all(a["minute"] == T0 + 60 * MIN for a in got)
    replay = dataclasses.replace(settings, app_id=settings.app_id + "-replay",
                                 events_topic=settings.events_topic + "-replay")
    assert await judged(replay, log) == got


def shifted(log: list[dict[str, Any]], by_ms: int, tag: str) -> list[dict[str, Any]]:
    """The same traffic ``by_ms`` later, with ids of its own."""
    return [{**ev, "ts": ev["ts"] + by_ms, "event_id": f"{tag}{ev['event_id']}",
             "order_id": f"{tag}{ev['order_id']}"} for ev in log]


@pytest.mark.integration
async def test_days_without_traffic_are_jumped_over_with_the_same_verdicts(
        settings: Settings) -> None:
    """Two promotions three days apart: the judge crosses the gap in one step (not one step per
    240 minutes of it) and raises exactly what judging every minute of the span raises."""
    sections = {"anomalies": {"min_history": 20, "window": 30, "min_volume": 10}}
    settings = dataclasses.replace(settings, sections=sections,
                                   agents="event_stats,funnel,ops,anomalies")
    gap = 3 * 1440 * MIN
    log = orders_log(3, 100, burst=range(60, 66)) + shifted(
        orders_log(4, 100, burst=range(70, 76)), gap, "later-")
    produce(settings, log)
    r = make_redis(settings)
    agents = build_agents(settings, r)
    await process_topic(settings, agents=agents, batch_records=30)
    judge = next(a for a in agents if isinstance(a, AnomalyJudge))
    steps = []
    while moved := await judge.step():
        steps.append(moved)
    state = await judge.store.state()
    assert len(steps) <= 3, steps
    assert state["judged"] >= T0 + gap + 90 * MIN
    # The reference: every minute of the span judged, one after the other.
    span = list(range(state["first"], state["judged"] + MIN, MIN))
    series = await judge.series(span[0], span[-1] + MIN)
    ratios = RATIOS | {k for k in series if k.startswith("funnel:")}
    dense = episodes(series, span, judge.cfg.window, {}, judge.cfg, ratios)
    got = (await AnomalyStore(r, settings.app_id).read(0, 2**62))["anomalies"]
    await r.aclose()
    key = itemgetter("minute", "metric")
    assert sorted(got, key=key) == sorted(dense, key=key)
    assert {T0 + 60 * MIN, T0 + gap + 70 * MIN} <= {a["minute"] for a in got
                                                   if a["metric"] == "payment_success_ratio"}

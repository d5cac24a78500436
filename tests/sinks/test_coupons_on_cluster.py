"""Coupon agent and outbox relay on a real Redis Cluster: same pushes, budget still exact and
granted in event-time order across partitions."""

from __future__ import annotations

import copy

import pytest

from shopstream.agents.coupons.agent import CouponAgent
from shopstream.agents.lateness import DEFAULT_LATENESS_MS
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.redis_state import make_redis
from tests.agents.coupon_reference import END, SECTIONS, generate_day, reference
from tests.agents.coupon_support import metric, pushes, with_sections
from tests.agents.test_coupon_day_replay import process_in_time_order

pytestmark = pytest.mark.integration


async def test_pushes_and_budget_on_cluster(infra, redis_cluster_url) -> None:
    sections = copy.deepcopy(SECTIONS)
    sections["coupons"]["new_user"] = {"budget": 100}
    s = with_sections(infra.settings(redis_url=redis_cluster_url, redis_cluster=True), **sections)
    events = generate_day(users=600, partitions=s.partitions, seed=5)
    prod = EnvelopeProducer(s, max_events=50)
    for ev in sorted(events, key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()
    r = make_redis(s)
    m = Metrics()
    agent = CouponAgent(s, r, m)
    await process_in_time_order(s, agent, batch_records=8)
    await agent.close()
    await r.aclose()

    expected, _ = reference(events)
    got = {(p["push_id"], p["rule"], p["user_id"], p["ts"], p["step"]) for p in pushes(s)}
    new_user = {x for x in got if x[1] == "new_user"}
    expected_new = {x for x in expected if x[1] == "new_user"}
    # Claimed once final: those decided at the last events wait for a later watermark.
    final_new = sorted((x for x in expected_new if x[3] < END - DEFAULT_LATENESS_MS),
                       key=lambda x: (x[3], x[0]))
    assert len(final_new) > 100
    assert new_user == set(final_new[:100])
    assert metric(m, "new_user", "budget_exhausted") == len(final_new) - 100
    assert got - new_user == expected - expected_new

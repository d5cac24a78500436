"""The customer loop through the real broker, batch loop and Redis, with the API beside it:
tier changes on customer-events, service tasks and their escalation on ops-alerts, an ack
through the API preventing an escalation, pushes on the pushes topic, a redemption beyond the
balance dead-lettered, the counts reconciled. Events are posted to the API."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from shopstream.agents.customers.agent import CustomersAgent
from shopstream.agents.registry import push_relay
from shopstream.api import create_api
from shopstream.core import codec
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.redis_state import make_redis
from tests.support import Infra, counts, process_topic, read_records, users_by_partition

pytestmark = pytest.mark.integration

MIN = 60_000
ADMIN = "adm-" + "k" * 20


async def _process(settings: Any, metrics: Metrics) -> None:
    r = make_redis(settings)
    agent = CustomersAgent(settings, r, metrics, relay=push_relay(settings, r, metrics))
    try:
        await process_topic(settings, agents=[agent], batch_records=3)
    finally:
        await agent.close()  # the relay's last pass
        await r.aclose()


def _docs(settings: Any, topic: str) -> list[dict[str, Any]]:
    return [codec.loads(v) for _, _, v, _ in read_records(settings, topic)]


async def _post(client: TestClient[Any, Any], events: list[dict[str, Any]]) -> None:
    resp = await client.post("/v1/events", json=events)
    assert resp.status == 200, await resp.text()


async def test_customer_loop_end_to_end(infra: Infra) -> None:
    suffix = uuid.uuid4().hex[:8]
    s = dataclasses.replace(
        infra.settings(customer_events_topic=f"customer-events-{suffix}", admin_token=ADMIN),
        sections={"coupons": {"quiet_hours": "00:00-00:00"},
                  "customers": {"service": {"ack_min": 1},
                                # the relay claims the loop's budgets: one reward of two
                                "referral_reward": {"budget": 1}}})
    a, b = users_by_partition(s.partitions)[:2]
    now = int(time.time() * 1000)
    t0 = now - 10 * MIN
    n = iter(range(1000))

    def ev(etype: str, user: str | None, ts: int, **fields: Any) -> dict[str, Any]:
        doc = {"event_id": f"c{next(n)}", "type": etype, "ts": ts, **fields}
        return doc if user is None else {**doc, "user_id": user}

    async with TestClient(TestServer(create_api(s))) as client:
        await _post(client, [
            ev("referral", None, t0 - MIN, referrer_id="r1", invitee_id=b),
            ev("order_submit", a, t0 - 1, order_id="oa", amount=200_000,
               items=[{"sku": "tea", "qty": 1, "price": 200_000}]),
            ev("payment", a, t0, order_id="oa", amount=200_000, status="success"),
            ev("review", a, t0 + 1000, order_id="oa", rating=1, text="broken"),  # due t0 + 1 min
            ev("payment", b, t0, order_id="ob", amount=1000, status="success"),
            ev("points_redeem", a, t0 + 2 * MIN, points=10**6, reward="tv"),
            ev("check_in", a, t0 + 3 * MIN),
            ev("review", b, now - 30_000, order_id="ob", rating=2),  # due now + 30 s
            # every partition's watermark past the reward plus the allowed lateness: final,
            # so its budget is claimed (the closing users are new customers)
            *(ev("page_view", u, now, page="home")
              for u in users_by_partition(s.partitions, "closer")),
        ])
        metrics = Metrics()
        await _process(s, metrics)

        tiers = _docs(s, s.customer_events_topic)
        assert [(d["user_id"], d["from"], d["to"], d["spend_fen"], d["ts"]) for d in tiers] == [
            (a, "new", "potential", 200_000, t0)]
        alerts = _docs(s, s.alerts_topic)
        assert sorted((x["kind"], x["user_id"], x["ts"]) for x in alerts) == [
            ("service_task", a, t0 + 1000), ("service_task", b, now - 30_000),
            ("service_task_escalated", a, t0 + 1000 + MIN)]
        task_b = next(x["task_id"] for x in alerts if x["user_id"] == b)
        dead = read_records(s, s.dead_letter_topic)
        assert [dict(h)["reason"] for *_, h in dead] == [b"insufficient_points"]
        assert codec.loads(dead[0][2])["type"] == "points_redeem"

        resp = await client.get("/v1/tasks", params={"status": "open"})
        assert [t["task_id"] for t in (await resp.json())["tasks"]] == [task_b]
        resp = await client.post(f"/v1/tasks/{task_b}/ack")
        assert resp.status == 401
        auth = {"Authorization": f"Bearer {ADMIN}"}
        resp = await client.post("/v1/tasks/nope/ack", headers=auth)
        assert resp.status == 404 and (await resp.json())["reason"] == "unknown_task"
        resp = await client.post(f"/v1/tasks/{task_b}/ack", headers=auth)
        assert resp.status == 202, await resp.text()
        assert await resp.json() == {"task_id": task_b, "status": "ack_sent"}
        # b's partition passes the task's due time after the ack
        await _post(client, [ev("page_view", b, now + 2 * MIN, page="home")])
        await _process(s, metrics)

        alerts = _docs(s, s.alerts_topic)
        assert [x["kind"] for x in alerts if x["user_id"] == b] == ["service_task"]
        pushes = _docs(s, s.pushes_topic)
        assert sorted((p["rule"], p["coupon_fen"]) for p in pushes) == [
            ("referral_reward", 2000), ("service_apology", 1000)]
        assert {p["user_id"] for p in pushes if p["rule"] == "referral_reward"} <= {b, "r1"}
        assert metrics.registry.get_sample_value(
            "shopstream_pushes_total", {"rule": "referral_reward", "result": "budget_exhausted"}
        ) == 1

        resp = await client.get(f"/v1/customers/{a}")
        view = await resp.json()
        assert (view["tier"], view["spend_fen"], view["orders"], view["points"]) == (
            "potential", 200_000, 1, 2000 + 10 + 5)
        assert [t["status"] for t in view["tasks"]] == ["escalated"]
        assert {p["rule"] for p in view["pending"]} == {"review_reminder", "dormant_recall"}
        resp = await client.get(f"/v1/customers/{b}")
        assert [t["status"] for t in (await resp.json())["tasks"]] == ["acked"]
        resp = await client.get("/v1/customers/nobody")
        assert resp.status == 404
        resp = await client.get("/v1/customers/tiers")
        assert await resp.json() == {"tiers": [{"tier": "new", "users": 1 + s.partitions},
                                               {"tier": "potential", "users": 1},
                                               {"tier": "loyal", "users": 0}]}
        resp = await client.get("/v1/tasks", params={"status": "closed"})
        assert resp.status == 400 and "status" in (await resp.json())["error"]

        c = counts(s)
        assert c["dead"] == c["dead:insufficient_points"] == 1
        assert c["in"] == c["processed"] + c["dead"] + c.get("duplicate", 0) == 10 + s.partitions
        assert metrics.registry.get_sample_value("shopstream_customer_tier_changes_total",
                                                 {"to": "potential"}) == 1

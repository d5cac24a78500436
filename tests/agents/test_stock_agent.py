"""Stock health through the real broker and Redis with every agent on: the API's answers and
the alerts on the ops-alerts topic equal the plain-Python reference (tests/agents/stock_ref.py);
again after a worker dies mid-stream (its batches delivered again to a new one), and a replay
of the same log under another app id raises the same alert ids. Route errors are the other
routes' JSON 400s; a stock update is produced to the partition of its SKU."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from shopstream.agents.registry import build_agents
from shopstream.agents.stock.agent import StockHealth
from shopstream.api import create_api
from shopstream.core.settings import Settings
from shopstream.core.timeunits import MINUTE_MS
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.partitioner import partition_for
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.flash_sale.store import FlashSales, SaleSpec
from shopstream.sinks.redis_state import RedisState, make_redis
from shopstream.sinks.stock.store import StockStore
from shopstream.streams.batch import BatchProcessor, Record
from tests.agents.stock_ref import Cfg, generate, reference
from tests.support import Infra, counts, read_records, users_by_partition

pytestmark = pytest.mark.integration

AGENTS = "event_stats,funnel,inventory,coupons,live,ops,anomalies,stock"
FIELDS = ("on_hand", "expected_daily_sales", "safety_stock", "days_of_cover", "state", "sold",
          "returned", "return_rate", "returns_high")


def the_log(partitions: int) -> list[dict[str, Any]]:
    """Two and a half days of activity, then a page view per partition an hour after the last
    event, so that every partition's watermark closes every minute."""
    log = generate(6_000, seed=11, skus=12, users=300, days=3)
    end = log[-1]["ts"] + 3_600_000
    log += [{"event_id": f"end{p}", "type": "page_view", "ts": end, "user_id": u,
             "page": "home"} for p, u in enumerate(users_by_partition(partitions))]
    return log


async def run(settings: Settings, records: list[Record], upto: int) -> StockHealth:
    """A worker's batch loop over ``records[:upto]`` in batches of 200, then its judge's steps
    until nothing is final and unjudged; alerts sent."""
    r = make_redis(settings)
    metrics = Metrics()
    agents = build_agents(settings, r, metrics)
    proc = BatchProcessor(settings, RedisState(r, settings.app_id, settings.events_topic),
                          agents, DeadLetterSink(RecordProducer(settings),
                                                 settings.dead_letter_topic), metrics)
    for i in range(0, upto, 200):
        await proc.process(records[i:min(i + 200, upto)])
    judge = next(a for a in agents if isinstance(a, StockHealth))
    while await judge.step():
        pass
    await judge.tick(2**53)  # as the worker's timer: nothing left to judge, alerts sent
    return judge


def ordered(settings: Settings) -> list[Record]:
    recs = [Record(p, o, v) for p, o, v, _ in read_records(settings)]
    recs.sort(key=lambda r: (r.offset, r.partition))
    return recs


@pytest.fixture(scope="module")
def world(infra: Infra) -> dict[str, Any]:
    settings = infra.settings(agents=AGENTS)
    log = the_log(settings.partitions)
    prod = EnvelopeProducer(settings, max_events=100)
    for ev in log:
        prod.add(ev)
    prod.flush()
    records = ordered(settings)
    # A worker applies two thirds and dies; a new one gets every record again.
    asyncio.run(run(settings, records, 2 * len(records) // 3))
    asyncio.run(run(settings, records, len(records)))
    replay = infra.settings(agents=AGENTS, events_topic=settings.events_topic)
    judge = asyncio.run(run(replay, records, len(records)))
    views, alerts = reference(log, Cfg())
    return {"settings": settings, "replay": replay, "log": log, "views": views,
            "alerts": alerts, "metrics": judge.metrics}


def last_views(views: dict[tuple[str, int], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, int] = {}
    for sku, m in views:
        latest[sku] = max(m, latest.get(sku, m))
    return {sku: views[(sku, m)] for sku, m in latest.items()}


async def get(settings: Settings, path: str, **params: str) -> tuple[int, Any]:
    async with TestClient(TestServer(create_api(settings))) as client:
        resp = await client.get(path, params=params)
        return resp.status, await resp.json()


@pytest.mark.parametrize("which", ["settings", "replay"])
def test_every_sku_equals_the_reference(world: dict[str, Any], which: str) -> None:
    s = world[which]
    status, body = asyncio.run(get(s, "/v1/stock", limit="500"))
    assert status == 200, body
    want = last_views(world["views"])
    got = {item["sku"]: item for item in body["skus"]}
    assert sorted(got) == sorted(want)
    for sku, view in want.items():
        for f in FIELDS:
            assert got[sku][f] == pytest.approx(view[f]), (sku, f)
        assert got[sku]["alerts"]["returns"] == view["returns_high"]
    covers = [i["days_of_cover"] for i in body["skus"] if i["state"] != "out"
              and i["days_of_cover"] is not None]
    assert covers == sorted(covers)
    assert body["late_events"] == 0
    assert body["unmatched_payments"] > 0
    c = counts(s)
    assert c["in"] == c["processed"] + c.get("dead", 0) + c.get("duplicate", 0)


def test_alerts_on_the_topic_are_the_references_once_each(world: dict[str, Any]) -> None:
    want = [a["alert_id"] for a in world["alerts"]]
    assert len(set(want)) == len(want) and {a["type"] for a in world["alerts"]} >= {
        "stock_low", "stock_out", "stock_return_rate"}
    for which in ("settings", "replay"):
        s = world[which]
        docs = [orjson.loads(v) for _, _, v, _ in read_records(s, s.alerts_topic)]
        assert sorted({d["alert_id"] for d in docs}) == sorted(want), which
        by_id = {d["alert_id"]: d for d in docs}
        for a in world["alerts"]:
            assert (by_id[a["alert_id"]]["type"], by_id[a["alert_id"]]["sku"]) == (
                a["type"], a["sku"])
    raised = world["metrics"].stock_alerts
    for kind in ("stock_low", "stock_out", "stock_over", "stock_return_rate"):
        assert raised.labels(kind)._value.get() == sum(
            a["type"] == kind for a in world["alerts"]), kind


def test_the_gauges_say_which_minute_they_judged(world: dict[str, Any]) -> None:
    """Workers take turns judging, so each one's SKU gauges are as of its own last step: the
    judged-through gauge lets the alert rules read the freshest worker's (monitoring/alerts.yml)."""
    s = world["replay"]

    async def judged() -> int:
        r = make_redis(s)
        state = await StockStore(r, s.app_id, s.partitions).state()
        await r.aclose()
        return state["judged"]

    m = world["metrics"]
    assert m.stock_judged_through._value.get() == asyncio.run(judged()) + MINUTE_MS
    assert m.stock_judged_through._value.get() > max(minute for _, minute in world["views"])
    want = Counter(v["state"] for v in last_views(world["views"]).values())
    assert {st: m.stock_skus.labels(st)._value.get() for st in want} == want


def test_one_sku_and_the_route_errors(world: dict[str, Any]) -> None:
    s = world["settings"]
    want = last_views(world["views"])
    status, body = asyncio.run(get(s, "/v1/stock/sku0"))
    assert status == 200 and body["on_hand"] == want["sku0"]["on_hand"], body
    assert body["flash_sale"] is None
    for path, params, name in [("/v1/stock", {"limit": "0"}, "limit"),
                               ("/v1/stock", {"limit": "501"}, "limit"),
                               ("/v1/stock", {"offset": "-1"}, "offset"),
                               ("/v1/stock", {"state": "gone"}, "state"),
                               ("/v1/stock/" + "s" * 129, {}, "sku")]:
        status, body = asyncio.run(get(s, path, **params))
        assert status == 400 and body["error"].startswith(f"{name}:"), (path, params, body)
    status, body = asyncio.run(get(s, "/v1/stock/never"))
    assert status == 404 and "error" in body
    status, body = asyncio.run(get(s, "/v1/stock", state="out", limit="500"))
    assert status == 200 and body["skus"] and {i["state"] for i in body["skus"]} == {"out"}


def test_a_skus_flash_sale_is_shown_beside_its_stock(world: dict[str, Any]) -> None:
    s = world["settings"]

    async def create(sku: str) -> None:
        r = make_redis(s)
        now = int(time.time() * 1000)
        await FlashSales(r, s.app_id).create(SaleSpec(f"fs-{sku}", sku, 40, 2, now - 1_000,
                                                      now + 3_600_000, 600, (50,)))
        await r.aclose()

    asyncio.run(create("sku1"))
    asyncio.run(create("only-flash"))
    status, body = asyncio.run(get(s, "/v1/stock/sku1"))
    assert status == 200 and body["on_hand"] == last_views(world["views"])["sku1"]["on_hand"]
    assert body["flash_sale"]["sale_id"] == "fs-sku1" and body["flash_sale"]["stock"] == 40
    status, body = asyncio.run(get(s, "/v1/stock/only-flash"))
    assert status == 200 and body["state"] == "unknown", body
    assert body["flash_sale"]["sale_id"] == "fs-only-flash"


def test_a_stock_update_goes_to_the_partition_of_its_sku(infra: Infra) -> None:
    settings = infra.settings()
    events = [{"event_id": f"su{i}", "type": "stock_update", "ts": 1_794_326_400_000,
               "sku": f"sku-{i}", "qty": i} for i in range(12)]

    async def post() -> tuple[int, Any]:
        async with TestClient(TestServer(create_api(settings))) as client:
            resp = await client.post("/v1/events", data=orjson.dumps(events))
            return resp.status, await resp.json()

    status, body = asyncio.run(post())
    assert status == 200 and body["accepted"] == len(events), body
    where: dict[str, int] = {}
    for p, _, v, _ in read_records(settings):
        doc = orjson.loads(v)
        for ev in doc if isinstance(doc, list) else [doc]:
            where[ev["sku"]] = p
    assert where == {e["sku"]: partition_for(e["sku"], settings.partitions) for e in events}
    assert len(set(where.values())) > 1


def test_only_unpaid_orders_keep_state_and_it_expires(world: dict[str, Any]) -> None:
    """What stays per user once orders are paid: only unpaid orders' lines (with a TTL)."""
    s = world["settings"]

    async def order_keys() -> list[tuple[bytes, int]]:
        r = make_redis(s)
        found = [(k, await r.pttl(k)) async for k in r.scan_iter(f"{s.app_id}:*:stock:o:*")]
        await r.aclose()
        return found

    keys = asyncio.run(order_keys())
    unpaid = {e["order_id"] for e in world["log"] if e["type"] == "order_submit"} - {
        e["order_id"] for e in world["log"] if e["type"] == "payment" and e["status"] == "success"}
    assert {k.decode().rsplit(":", 1)[1] for k, _ in keys} == unpaid
    assert all(0 < ttl <= 24 * 3_600_000 for _, ttl in keys)
